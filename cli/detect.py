"""`eldercare replay`, `eldercare evaluate` and `eldercare evaluate-homes`: detection offline."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from cli.common import MqttCaFile, MqttCertFile, MqttKeyFile, device_broker, endpoints
from devices.mqtt import ConnectError

if TYPE_CHECKING:
    from alerts.detect.dataset import Dataset
    from devices.mqtt_config import MqttSettings
    from devices.recorded import RecordedDevice

console = Console(stderr=True)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `2d` as a timedelta; a clear error otherwise."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r}: give a number and s, m, h or d, e.g. 24h")
    seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return timedelta(seconds=seconds)


def replay(
    events: Annotated[Path, typer.Argument(help="events.csv (timestamp,sensor_id,value)")],
    sensors: Annotated[Path, typer.Option(help="sensors.json beside the events")],
    offline: Annotated[bool, typer.Option(help="run the detectors in-process, full speed")] = False,
    alerts_out: Annotated[Path | None, typer.Option(help="write alerts as JSON lines")] = None,
    tail: Annotated[str, typer.Option(help="run the clock on past the last event")] = "24h",
    home: Annotated[str | None, typer.Option(help="home id (default: the folder name)")] = None,
    speed: Annotated[
        float, typer.Option(help="live: times faster than recorded (1: as it happened)")
    ] = 1.0,
    start: Annotated[
        str | None, typer.Option("--from", help="live: data time to start at (local, ISO)")
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--for", help="live: how much of the recording (e.g. 6h)")
    ] = None,
    village: Annotated[str, typer.Option(help="live: village the home is registered in")] = (
        "simv-replay"
    ),
    state_dir: Annotated[
        Path | None, typer.Option(help="live: a running `eldercare up` (its broker and db)")
    ] = None,
    ca_file: MqttCaFile = None,
    cert_file: MqttCertFile = None,
    key_file: MqttKeyFile = None,
) -> None:
    """Replay a recorded home through the detectors and list the alerts they raise
    (--offline), or publish it through the broker as its devices would (live; an mqtts://
    broker with the --mqtt-* TLS files)."""
    from alerts.detect.dataset import DatasetError, load_dataset
    from alerts.detect.detectors import default_detectors
    from alerts.detect.replay import run_offline, signal_json
    from devices.recorded import as_sent

    try:
        ds = load_dataset(events, sensors, home)
    except DatasetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not ds.readings:
        console.print(f"[red]{events}: no events[/red]")
        raise typer.Exit(2)
    if not offline:
        _replay_live_cmd(ds, speed, start, duration, village, state_dir, (ca_file, cert_file,
                         key_file))  # fmt: skip
        return
    first, last = ds.readings[0].ts, ds.readings[-1].ts
    end = last + parse_duration(tail)
    # `as_sent` ends before `end`: the last event is in even with --tail 0s.
    stream_end = max(end, last + timedelta(seconds=1))
    stream = as_sent(ds.readings, recorded_devices(ds), start=first, end=stream_end)
    signals = run_offline(default_detectors(ds.layout), stream, until=end)
    lines = [json.dumps(signal_json(s)) for s in signals]
    if alerts_out is not None:
        alerts_out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        for line in lines:
            print(line)
    days = (last - first).total_seconds() / 86400
    counts: dict[str, int] = {}
    for s in signals:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    console.print(
        f"{len(ds.readings)} readings over {days:.1f} days: {len(signals)} alerts "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "")
    )


def recorded_devices(ds: Dataset) -> list[RecordedDevice]:
    """The recording's devices, as they are registered."""
    from devices.recorded import RecordedDevice

    return [RecordedDevice(d.device_id, d.home_id, d.kind, d.room) for d in ds.devices]


class ReplayError(RuntimeError):
    """A live replay that cannot start, with what is wrong."""


async def replay_live(
    ds: Dataset,
    dsn: str,
    broker: str | MqttSettings,
    protocol: str | None = None,
    *,
    speed: float = 1.0,
    start: datetime | None = None,
    end: datetime | None = None,
    village: str = "simv-replay",
    boot: int | None = None,
    on_progress: Callable[[datetime, int], None] | None = None,
    on_start: Callable[[datetime], None] | None = None,
) -> int:
    """Register the recorded home and its devices (room, time zone), then publish its
    readings and heartbeats at QoS 1 from now on, `speed` times faster than recorded,
    with the timestamps of when they are sent. Returns how many were published."""
    from alerts.detect.layout import classify
    from devices import topics
    from devices.recorded import as_sent
    from devices.status import online
    from ingest import device_store
    from ingest.registry import MISS_INTERVAL_S
    from simulators.drive import MqttSink, drive
    from simulators.publisher import MqttPublisher

    if speed <= 0:
        raise ReplayError("--speed must be positive")
    bad_ids = [
        i for i in (ds.home_id, *(d.device_id for d in ds.devices)) if not topics.valid_id(i)
    ]
    if bad_ids:
        raise ReplayError(f"ids must match ^[a-z0-9][a-z0-9_-]{{0,63}}$ (use --home): {bad_ids}")
    for d in ds.devices:  # the live registry tells an entry door by its room only
        if classify(d.kind, d.room).role is not classify(d.kind, d.room, d.entry).role:
            raise ReplayError(
                f"{d.device_id}: a {'' if d.entry else 'non-'}entry door in room {d.room!r}; the"
                " registry knows an entry door by its room (hall, entrance): rename the room"
            )
    devices = recorded_devices(ds)
    # All or nothing: a refused replay registers nothing.
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT timezone, village_id FROM homes WHERE id = %s", (ds.home_id,)
        )
        home_row = await cur.fetchone()
        if home_row is not None and tuple(home_row) != (ds.timezone, village):
            raise ReplayError(
                f"home {ds.home_id!r} exists in village {home_row[1]!r} with time zone"
                f" {home_row[0]!r}, not {village!r} / {ds.timezone!r}: use --home"
            )
        rows = [(d.device_id, d.kind, d.room) for d in devices]
        await device_store.register_homes(
            conn, [(ds.home_id, f"Replay of {ds.home_id}", rows)], village, ds.timezone
        )
        cur = await conn.execute(
            "SELECT id, home_id, kind, coalesce(room, '') FROM devices WHERE id = ANY(%s)",
            ([d.device_id for d in devices],),
        )
        have = {str(i): (str(h), str(k), str(r)) for i, h, k, r in await cur.fetchall()}
        clash = [d.device_id for d in devices if have[d.device_id] != (d.home_id, d.kind, d.room)]
        if clash:
            raise ReplayError(f"registered already as another home, kind or room: {clash}")
    # Every process checks the registry again on a message from an unknown device, at most
    # once per MISS_INTERVAL_S: after that long, the first reading is known to all of them
    # (ingest stores it, detection places it in its room) instead of being dead-lettered.
    await asyncio.sleep(MISS_INTERVAL_S + 0.5)
    first = start or ds.readings[0].ts
    last = end or ds.readings[-1].ts + timedelta(seconds=1)
    boot = int(time.time()) if boot is None else boot
    live_start = datetime.now(UTC)
    if on_start is not None:
        on_start(live_start)
    proto: Literal["5", "3.1.1"] | None = (
        None if protocol is None else "3.1.1" if protocol == "3.1.1" else "5"
    )
    async with MqttPublisher(broker, f"eldercare-replay-{ds.home_id}"[:64], proto) as pub:
        for r in devices:  # retained status, as each device publishes when it connects
            status = topics.topic(r.home_id, r.device_id, topics.Channel.STATUS)
            await pub.publish(status, online(boot, live_start), 1, True)
        stream = as_sent(
            ds.readings, devices, start=first, end=last, boot=boot, live_start=live_start,
            speed=speed,
        )  # fmt: skip
        # The stream carries live timestamps: each window goes out when its time comes.
        return await drive(
            stream, MqttSink(pub), speed=1.0, window=timedelta(seconds=0.2),
            on_progress=on_progress,
        )  # fmt: skip


def _replay_live_cmd(
    ds: Dataset, speed: float, start: str | None, duration: str | None, village: str,
    state_dir: Path | None, tls: tuple[Path | None, Path | None, Path | None],
) -> None:  # fmt: skip
    from zoneinfo import ZoneInfo

    first = None
    if start is not None:
        try:
            at = datetime.fromisoformat(start)
        except ValueError:
            console.print(
                f"[red]--from {start!r}: give a date and time, e.g. 2008-07-26T06:00[/red]"
            )
            raise typer.Exit(2) from None
        first = (at.replace(tzinfo=ZoneInfo(ds.timezone)) if at.tzinfo is None else at).astimezone(
            UTC
        )
    origin = first or ds.readings[0].ts
    last = origin + parse_duration(duration) if duration is not None else None
    dsn, mqtt_url, protocol = endpoints(state_dir)
    broker = device_broker(mqtt_url, protocol, *tls)
    span = ((last or ds.readings[-1].ts) - origin) / speed
    console.print(
        f"replaying {ds.home_id} from {origin.astimezone(ZoneInfo(ds.timezone)):%Y-%m-%d %H:%M}"
        f" ({ds.timezone}) at {speed:g}x: {span} of wall time, through"
        f" {broker.address.redacted()}"
    )
    if speed != 1:
        console.print(
            "[yellow]at a speed other than 1 the learned detectors see the elder's day "
            "compressed: use it for the path and the load, not for what they detect[/yellow]"
        )

    shown = [0.0]
    live: list[datetime] = []

    def progress(at: datetime, sent: int) -> None:  # a line every 10 s of wall time
        if time.monotonic() - shown[0] >= 10.0:
            shown[0] = time.monotonic()
            recorded = (origin + (at - live[0]) * speed).astimezone(ZoneInfo(ds.timezone))
            console.print(
                f"  {at:%H:%M:%S} (recorded {recorded:%Y-%m-%d %H:%M}): {sent} messages",
                highlight=False,
            )

    try:
        sent = asyncio.run(
            replay_live(
                ds, dsn, broker, speed=speed, start=first, end=last,
                village=village, on_progress=progress, on_start=live.append,
            )
        )  # fmt: skip
    except ReplayError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except ConnectError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"published {sent} readings and heartbeats of {len(ds.devices)} devices")


def evaluate_homes(
    homes: Annotated[list[Path], typer.Argument(help="folders with events.csv + sensors.json")],
    per_context: Annotated[
        int, typer.Option(help="injected collapses per home in each context (awake, asleep, out)")
    ] = 15,
    instants: Annotated[
        int | None,
        typer.Option(help="instead: this many per home, uniform over the annotated span"),
    ] = None,
    seed: Annotated[int, typer.Option()] = 7,
    skip_days: Annotated[float, typer.Option(help="no collapse in the first days")] = 7.0,
    loho: Annotated[
        bool,
        typer.Option(
            "--loho", help="choose the parameters on the other homes, report each held out"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """Real homes, per home and per context (awake at home, asleep, out): false alarms a day
    untouched; injected collapses missed within 12 h / 24 h, delay, and excess delay over the
    natural gap (from when the untouched recording next saw the resident to the alert)."""
    from alerts.detect.dataset import DatasetError, load_dataset
    from alerts.detect.detectors import default_detectors
    from alerts.detect.real_homes import evaluate_real_home
    from alerts.detect.rules import Rules
    from alerts.detect.scoring import RealHomeReport, score
    from alerts.detect.tuning import candidates, evaluate_grid, leave_one_home_out, training_score

    if per_context < 0 or (instants is not None and instants < 0) or (loho and len(homes) < 2):
        console.print(
            "[red]--per-context and --instants >= 0; --loho needs two homes or more[/red]"
        )
        raise typer.Exit(2)
    datasets = []
    for folder in homes:
        try:
            ds = load_dataset(folder / "events.csv", folder / "sensors.json")
        except DatasetError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        if not ds.readings:
            console.print(f"[red]{folder}: no events[/red]")
            raise typer.Exit(2)
        datasets.append(ds)

    def run(ds: Dataset, rules: Rules) -> RealHomeReport:
        return evaluate_real_home(
            ds, lambda d: default_detectors(d.layout, rules=rules), per_context, seed, skip_days,
            instants=instants,
        )  # fmt: skip

    out: dict[str, Any]
    if not loho:
        reports = [run(ds, Rules()) for ds in datasets]
        out = {"homes": [r.summary() for r in reports], "total": score(reports, "all")}
    else:
        started = time.monotonic()

        def progress(name: str, home: str, _report: RealHomeReport) -> None:
            console.print(f"  {name} on {home} ({time.monotonic() - started:.0f} s)")

        grid = evaluate_grid(datasets, run, candidates(), on_done=progress)
        chosen = leave_one_home_out(grid)
        held = [grid[chosen[ds.home_id]][ds.home_id] for ds in datasets]
        out = {
            "homes": [r.summary() | {"candidate": chosen[r.home_id]} for r in held],
            "total": score(held, "all") | {"candidate": "held out"},
            "chosen": chosen,
            "grid": {
                name: {
                    home: {
                        "false_alarms_per_day": round(s.false_alarms_per_day, 3),
                        "missed_12h_gap_le_12h": s.missed_12h,
                        "excess_mean_min": (
                            round(s.excess_mean_s / 60, 1) if s.excess_mean_s != float("inf")
                            else None
                        ),
                    }
                    for home, r in per_home.items()
                    for s in [training_score([r])]
                }
                for name, per_home in grid.items()
            },
        }  # fmt: skip
    if as_json:
        print(json.dumps(out, indent=2))
        return
    _print_homes(out, loho)


def _print_homes(out: dict[str, Any], loho: bool) -> None:
    """The table of `evaluate-homes`: per home (and in total), all contexts then each."""
    from alerts.detect.dataset import CONTEXTS

    title = "Real homes: untouched replay and injected collapse"
    table = Table(title=title + (" (each home held out)" if loho else ""))
    columns = ["home", "context", "days", "FA/day", "FA/context-day", "injected", "missed 12h",
               "missed 12h (gap ≤12h)", "gap >12h", "missed 24h", "alert before seen",
               "delay mean/median h", "excess mean/median min"]  # fmt: skip
    for col in (*columns, "candidate") if loho else columns:
        table.add_column(col)
    for x in [*out["homes"], out["total"]]:
        for ctx in ("all", *CONTEXTS):
            c = x if ctx == "all" else x["contexts"][ctx]
            cells = [
                str(x["home"]) if ctx == "all" else "",
                ctx,
                str(x["days"] if ctx == "all" else c["days"]),
                str(c["false_alarms_per_day"]),
                "" if ctx == "all" else str(c["false_alarms_per_context_day"]),
                str(c["injected"]),
                str(c["missed_12h"]),
                f"{c['missed_12h_gap_le_12h']}/{c['injected_gap_le_12h']}",
                str(c["gap_over_12h"]),
                str(c["missed_24h"]),
                str(c["alert_before_seen_again"]),
                f"{c['delay_mean_h']} / {c['delay_median_h']}",
                f"{c['excess_mean_min']} / {c['excess_median_min']}",
            ]
            table.add_row(*cells, *([x["candidate"] if ctx == "all" else ""] if loho else []))
        table.add_section()
    Console(width=220).print(table)
    for x in [*out["homes"], out["total"]]:
        unannotated = x["contexts"]["unannotated"]
        console.print(
            f"{x['home']}: false alarms {json.dumps(x['false_alarms'])} (repeats about one"
            f" episode once: {x['false_alarm_episodes_per_day']}/day); outside the annotated"
            f" span {unannotated['false_alarms']} in {unannotated['days']} days",
            highlight=False,
        )


def evaluate(
    homes: Annotated[int, typer.Option(help="simulated homes")] = 50,
    days: Annotated[int, typer.Option(help="simulated days")] = 14,
    seed: Annotated[int, typer.Option()] = 1,
    incidents: Annotated[float, typer.Option(help="incidents per home and day")] = 0.15,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
    personas: Annotated[
        bool,
        typer.Option(
            "--personas",
            help="homes cycle through the opt-in personas (goes_out_daily, napper, visited,"
            " no_bedroom_sensor, loses_sensor); the report adds a per-archetype breakdown",
        ),
    ] = False,
) -> None:
    """A simulated cohort with injected incidents through the detectors, scored per kind
    (with --personas, also per persona archetype)."""
    from alerts.detect.detectors import default_detectors
    from alerts.detect.evaluate import evaluate_cohort
    from alerts.detect.layout import Layout, PlacedDevice
    from simulators.cohort.cohort import Cohort

    if homes < 1 or days < 1 or incidents < 0:
        console.print("[red]--homes and --days must be at least 1, --incidents >= 0[/red]")
        raise typer.Exit(2)
    cohort = Cohort(homes, days, seed, incidents_per_home_day=incidents, personas=personas)
    layout = Layout(
        PlacedDevice(d.device_id, h.home_id, d.kind, d.room)
        for h in cohort.homes
        for d in h.devices
    )
    report = evaluate_cohort(
        default_detectors(layout),
        cohort.readings(),
        cohort.ground_truth(),
        homes,
        cohort.start,
        cohort.end,
        tz_hour=lambda _home, at: at.astimezone(cohort.tz).hour,
        groups={h.home_id: h.persona.archetype for h in cohort.homes} if personas else None,
    )
    report.update(seed=seed, incidents_per_home_day=incidents)
    if personas:
        report["personas"] = True
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"Simulated cohort: {homes} homes x {days} days, seed {seed}")
    for col in ("kind", "detected/injected", "on reading", "median TTD min", "p90 TTD min",
                "daytime median min", "false alarms", "FA/elder-day"):  # fmt: skip
        table.add_column(col)
    for kind, x in report["kinds"].items():
        table.add_row(
            kind,
            f"{x['detected']}/{x['injected']}",
            str(x.get("on_reading", "")),
            str(x.get("ttd_median_min", "")),
            str(x.get("ttd_p90_min", "")),
            str(x.get("daytime_ttd_median_min", "")),
            str(x["false_alarms"]),
            str(x["false_alarms_per_elder_day"]),
        )
    Console(width=160).print(table)
    console.print(
        f"{report['incidents']} incidents, {report['signals']} alerts; non-technical false"
        f" alarms {report['false_alarms']} in {report['incident_free_elder_days']} incident-free"
        f" elder-days = {report['false_alarms_per_elder_day']}/elder-day; technical alerts"
        f" outside incidents: {report['technical_unexplained']}"
    )
    if personas:
        _print_archetypes(report["by_group"])


def _print_archetypes(by_group: dict[str, Any]) -> None:
    """The per-archetype breakdown of `eldercare evaluate --personas`."""
    table = Table(title="Per persona archetype (TTD in minutes: median / mean)")
    for col in ("archetype", "kind", "detected/injected", "TTD", "daytime TTD", "night TTD",
                "night det/inj"):  # fmt: skip
        table.add_column(col)
    for archetype, g in by_group.items():
        for kind, x in g["kinds"].items():
            table.add_row(
                archetype,
                kind,
                f"{x['detected']}/{x['injected']}",
                f"{x['ttd_median_min']} / {x['ttd_mean_min']}",
                f"{x['daytime_ttd_median_min']} / {x['daytime_ttd_mean_min']}",
                f"{x['night_ttd_median_min']} / {x['night_ttd_mean_min']}",
                f"{x['night_detected']}/{x['night_injected']}",
            )
        table.add_section()
    Console(width=160).print(table)
    for archetype, g in by_group.items():
        by_kind = ", ".join(
            f"{k} {v['false_alarms']} ({v['per_elder_day']}/day)"
            for k, v in g["false_alarms_by_kind"].items()
        )
        console.print(
            f"{archetype}: {g['homes']} homes, {g['incident_free_elder_days']} incident-free"
            f" elder-days, false alarms {g['false_alarms']} ="
            f" {g['false_alarms_per_elder_day']}/elder-day (by kind: {by_kind or 'none'});"
            " technical"
            f" outside incidents: {g['technical_unexplained']}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add the detection commands to the `eldercare` CLI."""
    app.command("replay")(replay)
    app.command("evaluate")(evaluate)
    app.command("evaluate-homes")(evaluate_homes)
