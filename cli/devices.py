"""CLI of devices and simulators: `devices provision`, `broker config`, `simulate` (cohorts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import MqttCaFile, MqttCertFile, MqttKeyFile, device_broker, endpoints
from devices import topics
from devices.catalogue import CATALOGUE
from devices.payload import Limits, Reading, encode
from devices.provisioning import (
    Credential,
    ServiceAccount,
    TlsListener,
    acl_file,
    device_username,
    hash_password,
    mosquitto_conf,
    new_password,
    password_file,
)
from devices.registry import DeviceRecord

console = Console(stderr=True)
devices_app = typer.Typer(help="Device registry and credentials.", no_args_is_help=True)
broker_app = typer.Typer(help="Broker configuration from the registry.", no_args_is_help=True)


def register(app: typer.Typer, simulate_app: typer.Typer) -> None:
    """Attach these commands to the main CLI."""
    from cli import device_admin

    device_admin.attach(devices_app, broker_app)
    app.add_typer(devices_app, name="devices")
    app.add_typer(broker_app, name="broker")
    simulate_app.callback(invoke_without_command=True)(simulate_cohort)


def _dsn(database_url: str | None) -> str:
    if database_url:
        return database_url
    return endpoints(None)[0]


# --------------------------------------------------------------------------- provisioning


@devices_app.command("provision")
def provision(
    home: Annotated[str, typer.Argument(help="home id, e.g. h01")],
    device: Annotated[str, typer.Argument(help="new device id, e.g. h01-pir-hall")],
    kind: Annotated[str, typer.Option(help=f"one of: {', '.join(sorted(CATALOGUE))}")],
    room: Annotated[str, typer.Option(help="where it is, e.g. hall")] = "",
    database_url: Annotated[str | None, typer.Option(envvar="ELDERCARE_DATABASE__URL")] = None,
) -> None:
    """Register a device to a home and issue its own broker credential (shown once)."""
    from ingest import device_store

    if kind not in CATALOGUE:
        console.print(f"[red]unknown kind {kind!r}[/red]; known: {', '.join(sorted(CATALOGUE))}")
        raise typer.Exit(2)
    if not (topics.valid_id(home) and topics.valid_id(device)):
        console.print("[red]ids must match ^[a-z0-9][a-z0-9_-]{0,63}$[/red]")
        raise typer.Exit(2)
    record = DeviceRecord(device, home, kind)
    password = new_password()
    credential = Credential(device_username(record), hash_password(password))

    async def go() -> None:
        dsn = _dsn(database_url)
        async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
            if not await device_store.home_exists(conn, home):
                console.print(f"[red]no home {home!r}[/red]: create the home first")
                raise typer.Exit(2)
            if not await device_store.add_device(conn, record, room):
                console.print(f"[red]device id {device!r} is taken by another home/kind[/red]")
                raise typer.Exit(2)
            await device_store.set_credential(conn, device, credential)

    asyncio.run(go())
    console.print(f"provisioned {device} ({kind}) in {home}. Broker login (shown only now):")
    typer.echo(f"username: {credential.username}\npassword: {password}")
    console.print("Run `eldercare broker config` to update the broker's password file and ACL.")


@broker_app.command("config")
def broker_config(
    out: Annotated[Path, typer.Option(help="directory for the files")] = Path("broker"),
    service: Annotated[
        list[str] | None, typer.Option(help="service accounts (created when missing)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(envvar="ELDERCARE_DATABASE__URL")] = None,
    listen: Annotated[
        str, typer.Option(help="listeners in mosquitto.conf: plain, tls, or both")
    ] = "plain",
    port: Annotated[int, typer.Option(help="the plain listener's port")] = 1883,
    tls_port: Annotated[int, typer.Option(help="the TLS listener's port")] = 8883,
    bind: Annotated[str | None, typer.Option(help="address the listeners bind to")] = None,
    cafile: Annotated[
        str | None, typer.Option(help="TLS: CA (PEM) the clients' certificates are checked against")
    ] = None,
    certfile: Annotated[str | None, typer.Option(help="TLS: the broker's certificate")] = None,
    keyfile: Annotated[str | None, typer.Option(help="TLS: the broker's private key")] = None,
    require_certificate: Annotated[
        bool, typer.Option(help="TLS: every client must present a certificate from --cafile")
    ] = True,
    tls_version: Annotated[
        str, typer.Option(help="TLS: the lowest version accepted, tlsv1.2 or tlsv1.3")
    ] = "tlsv1.2",
    data_dir: Annotated[
        str | None, typer.Option(help="the broker's persistence directory (default: --out)")
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="the user Mosquitto runs as (default: its own, mosquitto)")
    ] = None,
) -> None:
    """Write a Mosquitto password file, ACL and mosquitto.conf from the registry (devices and
    services): `--listen tls --cafile ca.pem --certfile broker.pem --keyfile broker.key` gives
    a TLS listener (8883) that wants a client certificate as well as the password."""
    from ingest import device_store

    wanted = service if service is not None else ["eldercare-ingest", "eldercare-alerts"]
    if listen not in ("plain", "tls", "both"):
        console.print(f"[red]--listen must be plain, tls or both, not {listen!r}[/red]")
        raise typer.Exit(2)
    tls: TlsListener | None = None
    if listen != "plain":
        if cafile is None or certfile is None or keyfile is None:
            files = (("cafile", cafile), ("certfile", certfile), ("keyfile", keyfile))
            missing = ", ".join(f"--{name}" for name, value in files if value is None)
            console.print(f"[red]--listen {listen} needs {missing}[/red]")
            raise typer.Exit(2)
        try:
            tls = TlsListener(cafile, certfile, keyfile, tls_port, require_certificate,
                              tls_version)  # fmt: skip
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None

    async def go() -> tuple[int, int, dict[str, str]]:
        new: dict[str, str] = {}
        dsn = _dsn(database_url)
        async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
            for name in wanted:
                password = new_password()
                account = ServiceAccount(name, hash_password(password))
                if await device_store.add_service_account(conn, account):
                    new[name] = password
            creds = await device_store.credentials(conn)
            services = await device_store.service_accounts(conn)
        out.mkdir(parents=True, exist_ok=True)
        _write_private(out / "passwd", password_file([c for _, c in creds] + list(services)))
        _write_private(out / "acl", acl_file([d for d, _ in creds], services))
        conf = mosquitto_conf(
            str(out.resolve() / "passwd"),
            str(out.resolve() / "acl"),
            plain_port=None if listen == "tls" else port,
            tls=tls,
            bind=bind,
            data_dir=data_dir or str(out.resolve()),
            user=user,
        )
        _write_private(out / "mosquitto.conf", conf)
        return len(creds), len(services), new

    n_devices, n_services, new = asyncio.run(go())
    console.print(
        f"wrote {out / 'passwd'} and {out / 'acl'}: {n_devices} devices, {n_services} services,"
        f" and {out / 'mosquitto.conf'} ({listen} listener{'s' if listen == 'both' else ''}).\n"
        f"Start Mosquitto with `mosquitto -c {out.resolve() / 'mosquitto.conf'}`, or copy its"
        " lines into yours;\nafter a change, reload Mosquitto (SIGHUP) so it reads the files"
        " again."
    )
    for name, password in new.items():
        typer.echo(f"new service account {name}: password {password} (shown only now)")


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


# --------------------------------------------------------------------------- simulate


class DatabaseSink:
    """Feeds batches through the ingest stage's decoder and COPY writer, in process.

    The decoder's clock is the simulated one (the newest event time of each send), so a
    month of readings is judged as it would have been live.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any], registry: Any, max_age: timedelta):
        from ingest.registry import RegistryCache

        async def load() -> Any:
            return registry

        self._conn = conn
        self._cache = RegistryCache(load)
        self._cache.current = registry
        self._limits = Limits(max_age=max_age)
        self.written = 0
        self.rejected = 0

    async def send(self, batches: list[list[Reading]]) -> None:
        """Encode like a device, decode like ingest, write with COPY and commit."""
        from ingest import store
        from ingest.mqtt import Message
        from ingest.service import decode_batch
        from simulators.publisher import MAX_READINGS_PER_MESSAGE

        messages = []
        newest = max(b[-1].ts for b in batches)
        for batch in batches:
            topic = topics.topic(batch[0].home_id, batch[0].device_id, topics.Channel.READINGS)
            for i in range(0, len(batch), MAX_READINGS_PER_MESSAGE):
                payload = encode(batch[i : i + MAX_READINGS_PER_MESSAGE])
                messages.append(Message(topic, payload, 1, False, 0, 0))
        readings, dead = decode_batch(messages, self._cache, newest, self._limits)
        self.written += await store.write_batch(self._conn, readings, dead, [], source="simulate")
        self.rejected += len(dead)


def simulate_cohort(
    ctx: typer.Context,
    homes: Annotated[int, typer.Option(help="homes to simulate", min=1)] = 20,
    days: Annotated[int, typer.Option(help="simulated days", min=1)] = 7,
    seed: Annotated[int, typer.Option(help="same seed, same cohort")] = 1,
    speed: Annotated[str, typer.Option(help="'max', or how many times faster than real")] = "max",
    incidents: Annotated[float, typer.Option(help="incidents per home and day", min=0)] = 0.05,
    faults: Annotated[
        float | None, typer.Option(help="device faults per home and day (default incidents/3)")
    ] = None,
    to: Annotated[str, typer.Option(help="db (in process), mqtt, or none")] = "db",
    truth: Annotated[Path, typer.Option(help="ground-truth JSON lines")] = Path(
        "ground-truth.jsonl"
    ),
    start: Annotated[
        str | None, typer.Option(help="first day (YYYY-MM-DD); default: DAYS days ago")
    ] = None,
    load: Annotated[
        bool, typer.Option(help="load mode: real time from now, from one process")
    ] = False,
    prefix: Annotated[str, typer.Option(help="home id prefix")] = "c",
    database_url: Annotated[str | None, typer.Option(envvar="ELDERCARE_DATABASE__URL")] = None,
    mqtt_url: Annotated[str | None, typer.Option(envvar="ELDERCARE_MQTT__URL")] = None,
    protocol: Annotated[str, typer.Option(help="MQTT protocol: 5 or 3.1.1")] = "5",
    ca_file: MqttCaFile = None,
    cert_file: MqttCertFile = None,
    key_file: MqttKeyFile = None,
) -> None:
    """Simulate a cohort of homes for DAYS days and write its ground truth.

    With no sub-command: `eldercare simulate --homes 200 --days 30 --speed max --seed 1`.
    Readings go into the database through the ingest decoder and COPY writer (--to db), or
    over real MQTT with their event timestamps (--to mqtt), or nowhere (--to none: timing).
    """
    if ctx.invoked_subcommand is not None:
        return
    from simulators.cohort.cohort import Cohort

    if to not in ("db", "mqtt", "none"):
        console.print("[red]--to must be db, mqtt or none[/red]")
        raise typer.Exit(2)
    try:
        pace = None if speed == "max" else float(speed)
        if pace is not None and pace <= 0:
            raise ValueError
    except ValueError:
        console.print(f"[red]--speed must be 'max' or a positive number, not {speed!r}[/red]")
        raise typer.Exit(2) from None
    now = datetime.now(UTC)
    if load:
        pace = 1.0
        first = datetime.combine(now.date(), datetime.min.time(), UTC)
    elif start is not None:
        first = datetime.fromisoformat(start).replace(tzinfo=UTC)
    else:
        first = datetime.combine((now - timedelta(days=days)).date(), datetime.min.time(), UTC)
    try:
        cohort = Cohort(
            homes, days, seed, incidents, first, faults_per_home_day=faults, home_prefix=prefix
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    truth_list = cohort.ground_truth()
    cohort.write_ground_truth(truth)
    console.print(
        f"cohort: {homes} homes x {days} days from {cohort.start:%Y-%m-%d}, seed {seed}; "
        f"{len(truth_list)} incidents -> {truth}"
    )
    run = f"seed{seed}-{prefix}-{cohort.start:%Y%m%d}-{homes}x{days}"
    t0 = time.perf_counter()
    sent = asyncio.run(
        _simulate(cohort, truth_list, to, pace, now if load else None, database_url, mqtt_url,
                  protocol, run, (ca_file, cert_file, key_file))
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    console.print(
        f"sent {sent:,} readings in {elapsed:.1f} s ({sent / max(elapsed, 1e-9):,.0f}/s) "
        f"to {to}; run {run!r}"
    )


async def _simulate(
    cohort: Any,
    truth: list[Any],
    to: str,
    pace: float | None,
    skip_before: datetime | None,
    database_url: str | None,
    mqtt_url: str | None,
    protocol: str,
    run: str,
    tls_files: tuple[Path | None, Path | None, Path | None] = (None, None, None),
) -> int:
    from devices.status import online
    from ingest import device_store, store
    from simulators.drive import BatchSink, MqttSink, drive
    from simulators.publisher import MqttPublisher

    progress = Progress(
        TextColumn("[bold]simulating[/bold] {task.fields[at]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[sent]} readings"),
        TimeElapsedColumn(),
        console=console,
    )
    total = (cohort.end - cohort.start).total_seconds()

    async with contextlib.AsyncExitStack() as stack:
        sink: BatchSink
        if to == "none":
            sink = _NullSink()
        elif to == "db":
            dsn = _dsn(database_url)
            conn = await stack.enter_async_context(await psycopg.AsyncConnection.connect(dsn))
            homes = [
                (h.home_id, f"Elder {h.home_id} ({h.persona.archetype})",
                 [(d.device_id, d.kind, d.room) for d in h.devices])
                for h in cohort.homes
            ]  # fmt: skip
            async with conn.transaction():
                await device_store.register_homes(conn, homes, village_id=f"simv-{run[:40]}"[:64])
                await device_store.write_incidents(conn, run, truth)
            await store.ensure_partitions(
                conn, cohort.start.date(), (cohort.end + timedelta(days=1)).date()
            )
            await store.prepare_writer(conn)
            sink = DatabaseSink(conn, cohort.registry(), timedelta(days=cohort.days + 2))
        else:
            if mqtt_url is None:
                _, mqtt_url, protocol = endpoints(None)
            broker = device_broker(mqtt_url, protocol, *tls_files)
            publisher = await stack.enter_async_context(
                MqttPublisher(broker, f"eldercare-sim-{run[:60]}")
            )
            for h in cohort.homes:  # retained status: every device says it is online
                for d in h.devices:
                    status_topic = topics.topic(h.home_id, d.device_id, topics.Channel.STATUS)
                    await publisher.publish(
                        status_topic, online(cohort.boot(d.device_id), cohort.start), 1, True
                    )
            sink = MqttSink(publisher)
        with progress:
            task = progress.add_task("sim", total=total, at="", sent=0)

            def on_progress(at: datetime, sent: int) -> None:
                progress.update(
                    task,
                    completed=(at - cohort.start).total_seconds(),
                    at=f"{at:%Y-%m-%d %H:%M}",
                    sent=f"{sent:,}",
                )

            sent = await drive(
                cohort.readings(), sink, speed=pace, skip_before=skip_before,
                on_progress=on_progress,
            )  # fmt: skip
            progress.update(task, completed=total)
        if isinstance(sink, DatabaseSink) and sink.rejected:
            console.print(f"[yellow]{sink.rejected} messages rejected (see dead_letters)[/yellow]")
    return sent


class _NullSink:
    async def send(self, batches: list[list[Reading]]) -> None:
        await asyncio.sleep(0)
