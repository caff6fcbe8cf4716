"""CLI of devices in service: `eldercare devices install|replace|rotate|retire|check-install`
and `eldercare broker sync`. The broker's files and reload come from `ELDERCARE_BROKER__*`
(ingest.broker_files.BrokerSettings); without them only the registry changes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console

from cli.common import endpoints, settings_or_exit
from devices.catalogue import CATALOGUE
from devices.lifecycle import DeviceRefused
from ingest import device_lifecycle
from ingest.broker_files import BrokerReloadError, BrokerSettings

console = Console(stderr=True)
Database = Annotated[str | None, typer.Option(envvar="ELDERCARE_DATABASE__URL")]
Conn = psycopg.AsyncConnection[Any]


def _broker() -> BrokerSettings:
    return settings_or_exit().broker


def _change(
    dsn: str | None, op: Callable[[Conn], Awaitable[device_lifecycle.DeviceChange]]
) -> None:
    """Run one device change and print it: the new login once, the broker's state; exit 2
    when refused (nothing changed), 1 when recorded but the broker was not reloaded."""

    async def go() -> device_lifecycle.DeviceChange:
        async with await psycopg.AsyncConnection.connect(dsn or endpoints(None)[0]) as conn:
            return await op(conn)

    code = 0
    try:
        change = asyncio.run(go())
    except DeviceRefused as exc:
        console.print(f"[red]refused ({exc.reason.value}): {exc.message}[/red]; nothing changed")
        raise typer.Exit(2) from None
    except device_lifecycle.BrokerSyncFailed as exc:
        change, code = exc.change, 1
    d = change.device
    console.print(f"{change.action}: {d.device_id} ({d.kind}) in {d.home_id}")
    if change.retired and change.retired != d.device_id:
        console.print(f"retired: {change.retired}")
    if change.password is not None:
        console.print("Broker login (shown only now):")
        typer.echo(f"username: {d.device_id}\npassword: {change.password}")
    b = change.broker
    if not b.files_written:
        console.print(
            "[yellow]broker files not written here (ELDERCARE_BROKER__PASSWORD_FILE unset):"
            " run `eldercare broker sync` where the broker runs[/yellow]"
        )
    elif b.error:
        console.print(
            f"[red]the change is recorded and the files written, but the broker was not"
            f" reloaded: {b.error}[/red]\nfix it, then run `eldercare broker sync`"
        )
    elif not b.reloaded:
        console.print("[yellow]broker files written; reload the broker (SIGHUP)[/yellow]")
    else:
        console.print("broker files written and the broker reloaded")
    if code:
        raise typer.Exit(code)


def install(
    home: Annotated[str, typer.Argument(help="home id, e.g. h01")],
    device: Annotated[str, typer.Argument(help="new device id, e.g. h01-pir-hall")],
    kind: Annotated[str, typer.Option(help=f"one of: {', '.join(sorted(CATALOGUE))}")],
    room: Annotated[str, typer.Option(help="where it is, e.g. hall")] = "",
    label: Annotated[str, typer.Option(help="a note for the installer")] = "",
    actor: Annotated[str, typer.Option(help="who does it (audit)")] = "cli",
    database_url: Database = None,
) -> None:
    """Install a device in a home: registered, its broker login issued (shown once), the
    broker's files regenerated and the broker reloaded. Then: `check-install`."""
    broker = _broker()
    _change(database_url, lambda c: device_lifecycle.install_device(
        c, broker, home, device, kind, room, label, actor=actor))  # fmt: skip


def replace(
    device: Annotated[str, typer.Argument(help="the device taken out")],
    new_id: Annotated[
        str | None, typer.Option("--new-id", help="the new unit's id (default: the same id)")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="the new unit's kind (new id only)")] = None,
    room: Annotated[str | None, typer.Option(help="its room (default: the old one's)")] = None,
    actor: Annotated[str, typer.Option(help="who does it (audit)")] = "cli",
    database_url: Database = None,
) -> None:
    """A new unit in a device's place: a new id retires the old one; the same id gets new
    credentials (and its install check starts again)."""
    broker = _broker()
    _change(database_url, lambda c: device_lifecycle.replace_device(
        c, broker, device, new_id, kind=kind, room=room, actor=actor))  # fmt: skip


def rotate(
    device: Annotated[str, typer.Argument(help="device id")],
    actor: Annotated[str, typer.Option(help="who does it (audit)")] = "cli",
    database_url: Database = None,
) -> None:
    """New broker credentials for a device; the old password is refused after the reload."""
    broker = _broker()
    _change(database_url, lambda c: device_lifecycle.rotate_credentials(
        c, broker, device, actor=actor))  # fmt: skip


def retire(
    device: Annotated[str, typer.Argument(help="device id")],
    actor: Annotated[str, typer.Option(help="who does it (audit)")] = "cli",
    database_url: Database = None,
) -> None:
    """Take a device out of service (its readings are kept)."""
    broker = _broker()
    _change(database_url, lambda c: device_lifecycle.retire_device(
        c, broker, device, actor=actor))  # fmt: skip


def check_install(
    device: Annotated[str, typer.Argument(help="device id")],
    wait: Annotated[float, typer.Option(help="seconds to wait for it to be heard", min=0)] = 0,
    database_url: Database = None,
) -> None:
    """Whether a device was heard since its install; with --wait, wait for it. Exit 0 when
    heard, 1 when not (waiting or overdue), 2 when there is no such device or it is retired."""
    check_s = _broker().install_check_s

    async def go() -> device_lifecycle.InstallState | None:
        async with await psycopg.AsyncConnection.connect(database_url or endpoints(None)[0]) as c:
            return await device_lifecycle.wait_until_heard(c, device, wait, check_s)

    state = asyncio.run(go())
    if state is None:
        console.print(f"[red]no device {device!r}[/red]")
        raise typer.Exit(2)
    when = f"{state.first_heard_at:%Y-%m-%d %H:%M:%S%z}" if state.first_heard_at else "-"
    typer.echo(
        f"{state.device_id}: {state.status} (installed {state.installed_at:%Y-%m-%d %H:%M:%S%z},"
        f" first heard {when}, due by {state.due_at:%H:%M:%S%z})"
    )
    if state.status != "heard":
        if state.status == "overdue":
            console.print(
                "[red]not heard within the install check[/red]: check its power, network and"
                " login (username = device id, the password shown at install)"
            )
        raise typer.Exit(2 if state.status == "retired" else 1)


def sync(database_url: Database = None) -> None:
    """Write the broker's password file and ACL from the registry and reload the broker."""
    broker = _broker()
    if not broker.manages_files:
        console.print("[red]set ELDERCARE_BROKER__PASSWORD_FILE and __ACL_FILE first[/red]")
        raise typer.Exit(2)

    async def go() -> Any:
        async with await psycopg.AsyncConnection.connect(database_url or endpoints(None)[0]) as c:
            return await device_lifecycle.sync_broker(c, broker)

    try:
        result = asyncio.run(go())
    except BrokerReloadError as exc:
        console.print(f"[red]files written, reload failed: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"wrote {broker.password_file} and {broker.acl_file}"
        + ("; broker reloaded" if result.reloaded else "; reload the broker (SIGHUP)")
    )


def attach(devices_app: typer.Typer, broker_app: typer.Typer) -> None:
    """Add these commands to the `devices` and `broker` groups."""
    devices_app.command("install")(install)
    devices_app.command("replace")(replace)
    devices_app.command("rotate")(rotate)
    devices_app.command("retire")(retire)
    devices_app.command("check-install")(check_install)
    broker_app.command("sync")(sync)
