"""`eldercare replay`, `eldercare evaluate` and `eldercare evaluate-homes`: detection offline."""

from __future__ import annotations

import json
import re
import statistics
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `2d` as a timedelta; a clear error otherwise."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r}: give a number and s, m, h or d, e.g. 24h")
    seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return timedelta(seconds=seconds)


def _mean_h(values: list[float]) -> float | None:
    return round(statistics.fmean(values) / 3600, 2) if values else None


def replay(
    events: Annotated[Path, typer.Argument(help="events.csv (timestamp,sensor_id,value)")],
    sensors: Annotated[Path, typer.Option(help="sensors.json beside the events")],
    offline: Annotated[bool, typer.Option(help="run the detectors in-process, full speed")] = False,
    alerts_out: Annotated[Path | None, typer.Option(help="write alerts as JSON lines")] = None,
    tail: Annotated[str, typer.Option(help="run the clock on past the last event")] = "24h",
    home: Annotated[str | None, typer.Option(help="home id (default: the folder name)")] = None,
) -> None:
    """Replay a recorded home through the detectors and list the alerts they raise."""
    from alerts.detect import default_detectors
    from alerts.replay import DatasetError, load_dataset, run_offline, signal_json

    if not offline:
        console.print(
            "[red]only --offline replay is available[/red]: publishing a recording through the"
            " broker needs its devices provisioned first (not built yet)"
        )
        raise typer.Exit(2)
    try:
        ds = load_dataset(events, sensors, home)
    except DatasetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not ds.readings:
        console.print(f"[red]{events}: no events[/red]")
        raise typer.Exit(2)
    signals = run_offline(default_detectors(ds.layout), ds.readings, parse_duration(tail))
    lines = [json.dumps(signal_json(s)) for s in signals]
    if alerts_out is not None:
        alerts_out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        for line in lines:
            print(line)
    days = (ds.readings[-1].ts - ds.readings[0].ts).total_seconds() / 86400
    counts: dict[str, int] = {}
    for s in signals:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    console.print(
        f"{len(ds.readings)} readings over {days:.1f} days: {len(signals)} alerts "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "")
    )


def evaluate_homes(
    homes: Annotated[list[Path], typer.Argument(help="folders with events.csv + sensors.json")],
    instants: Annotated[int, typer.Option(help="injected collapses per home")] = 40,
    seed: Annotated[int, typer.Option()] = 7,
    skip_days: Annotated[float, typer.Option(help="no collapse in the first days")] = 7.0,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """Real homes: false alarms per day untouched; time to detect an injected collapse."""
    from alerts.detect import default_detectors
    from alerts.replay import Dataset, DatasetError, evaluate_real_home, load_dataset

    def make(ds: Dataset) -> Any:
        return default_detectors(ds.layout)

    reports = []
    for folder in homes:
        try:
            ds = load_dataset(folder / "events.csv", folder / "sensors.json")
        except DatasetError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        reports.append(evaluate_real_home(ds, make, instants, seed, skip_days))
    rows = [r.summary() for r in reports]
    ttd = [t for r in reports for t in r.ttd_s]
    days = sum(r.days for r in reports)
    total = {
        "home": "all",
        "days": round(days, 1),
        "false_alarms_per_day": round(sum(r.non_technical for r in reports) / days, 3),
        "collapse_false_alarms_per_day": round(
            sum(x["collapse_false_alarms_per_day"] * x["days"] for x in rows) / days, 3
        ),
        "injected": sum(r.injected for r in reports),
        "detected": sum(r.detected for r in reports),
        "ttd_mean_h": round(statistics.fmean(ttd) / 3600, 2) if ttd else None,
        "ttd_median_h": round(statistics.median(ttd) / 3600, 2) if ttd else None,
        "injected_asleep": sum(r.injected_asleep for r in reports),
        "ttd_mean_asleep_h": _mean_h([t for r in reports for t in r.ttd_asleep_s]),
        "ttd_mean_awake_h": _mean_h(
            [t for r in reports for t in r.ttd_s if t not in set(r.ttd_asleep_s)]
        ),
    }
    if as_json:
        print(json.dumps({"homes": rows, "total": total}, indent=2))
        return
    table = Table(title="Real homes: untouched replay and injected collapse")
    for col in ("home", "days", "FA/day (all)", "FA/day (collapse kinds)", "detected",
                "mean TTD h", "median TTD h", "false alarms"):  # fmt: skip
        table.add_column(col)
    for x in [*rows, total]:
        table.add_row(
            str(x["home"]),
            str(x["days"]),
            str(x["false_alarms_per_day"]),
            str(x["collapse_false_alarms_per_day"]),
            f"{x['detected']}/{x['injected']}",
            str(x["ttd_mean_h"]),
            str(x["ttd_median_h"]),
            json.dumps(x.get("false_alarms", "")),
        )
    Console().print(table)


def evaluate(
    homes: Annotated[int, typer.Option(help="simulated homes")] = 50,
    days: Annotated[int, typer.Option(help="simulated days")] = 14,
    seed: Annotated[int, typer.Option()] = 1,
    incidents: Annotated[float, typer.Option(help="incidents per home and day")] = 0.15,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """A simulated cohort with injected incidents through the detectors, scored per kind."""
    from alerts.detect import default_detectors
    from alerts.evaluate import evaluate_cohort
    from alerts.layout import Layout, PlacedDevice
    from simulators.cohort import Cohort

    if homes < 1 or days < 1 or incidents < 0:
        console.print("[red]--homes and --days must be at least 1, --incidents >= 0[/red]")
        raise typer.Exit(2)
    cohort = Cohort(homes, days, seed, incidents_per_home_day=incidents)
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
    )
    report.update(seed=seed, incidents_per_home_day=incidents)
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


def register(app: typer.Typer) -> None:
    """Add the detection commands to the `eldercare` CLI."""
    app.command("replay")(replay)
    app.command("evaluate")(evaluate)
    app.command("evaluate-homes")(evaluate_homes)
