"""Alerting commands: `eldercare report`, `eldercare rota ...`, `eldercare silence`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from cli.common import URLS_FILE

rota_app = typer.Typer(help="The on-duty rota: shifts per region and tier.", no_args_is_help=True)
console = Console(stderr=True)


def _dsn() -> str:
    from runtime.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        if settings.database.url is not None:
            return settings.database.dsn()
    except (SettingsError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    state = settings.state_dir.resolve() / URLS_FILE
    if state.exists():
        import json

        return str(json.loads(state.read_text())["database"])
    console.print(
        "[red]no database: set ELDERCARE_DATABASE__URL or start `eldercare up` first[/red]"
    )
    raise typer.Exit(2)


def _zone() -> ZoneInfo:
    """The deployment's time zone (`ELDERCARE_ALERTS__TIMEZONE`): the rota is shown in it."""
    from runtime.settings import SettingsError, load_settings

    try:
        return load_settings().alerts.zone()
    except (SettingsError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def zone_label(tz: ZoneInfo, at: datetime) -> str:
    """`Asia/Shanghai, UTC+08:00`: the zone's name and its offset at `at`."""
    offset = at.astimezone(tz).strftime("%z")
    return f"{tz.key}, UTC{offset[:3]}:{offset[3:]}"


def _when(value: str) -> datetime:
    """An ISO time; without an offset, in the deployment's zone."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        console.print(f"[red]not a time: {value!r} (use e.g. 2026-11-23T08:00+08:00)[/red]")
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_zone())


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def report(
    month: Annotated[str, typer.Option(help="the month, e.g. 2026-11")],
    region: Annotated[str | None, typer.Option(help="a region id: only its subtree")] = None,
) -> None:
    """Alert KPIs of a month: time to acknowledge and resolve (p50/p90/p99), share
    acknowledged within 60 s and 180 s, false-alarm share; total, per kind and per region."""
    from alerts.kpi import report as kpi_report

    async def go() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(_dsn()) as conn:
            return await kpi_report(conn, month, region)

    try:
        rows = asyncio.run(go())
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"Alert KPIs {month}" + (f" ({region})" if region else ""))
    for col in (
        "group",
        "key",
        "alerts",
        "acked",
        "ack p50/p90/p99",
        "resolve p50/p90/p99",
        "acked <=60 s",
        "acked <=180 s",
        "false alarms",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.grouping,
            r.key,
            str(r.alerts),
            str(r.acknowledged),
            " / ".join(_fmt_s(v) for v in (r.ack_p50_s, r.ack_p90_s, r.ack_p99_s)),
            " / ".join(_fmt_s(v) for v in (r.resolve_p50_s, r.resolve_p90_s, r.resolve_p99_s)),
            _fmt_share(r.acked_within_60s),
            _fmt_share(r.acked_within_180s),
            _fmt_share(r.false_alarm_share),
        )
    Console().print(table)
    if all(r.alerts == 0 for r in rows):
        Console().print(f"no alerts opened in {month}")


@rota_app.command("show")
def rota_show(
    region: Annotated[str | None, typer.Option(help="one region only")] = None,
    hours: Annotated[float, typer.Option(help="how far ahead")] = 48,
) -> None:
    """Shifts from now, who is on duty now, and hours with nobody on duty; times in the
    deployment's zone (ELDERCARE_ALERTS__TIMEZONE), labelled."""
    from alerts.escalate import rota

    now = datetime.now(UTC)
    tz = _zone()
    label = zone_label(tz, now)

    async def go() -> tuple[list[rota.Shift], list[rota.Gap]]:
        async with await psycopg.AsyncConnection.connect(_dsn()) as conn:
            end = now + timedelta(hours=hours)
            return await rota.list_shifts(conn, now, end, region), await rota.coverage_gaps(
                conn, now, end
            )

    shifts, gaps = asyncio.run(go())
    table = Table(title=f"On-duty rota (times in {label})")
    for col in ("id", "region", "tier", "who", f"from ({tz.key})", f"to ({tz.key})", "now"):
        table.add_column(col)
    for s in shifts:
        table.add_row(
            str(s.id),
            s.region_id,
            s.tier,
            s.username,
            f"{s.starts_at.astimezone(tz):%Y-%m-%d %H:%M}",
            f"{s.ends_at.astimezone(tz):%Y-%m-%d %H:%M}",
            "on duty" if s.starts_at <= now < s.ends_at else "",
        )
    Console().print(table)
    shown = [g for g in gaps if region is None or g.region_id == region]
    for g in shown:
        console.print(
            f"[yellow]nobody on duty[/yellow] at {g.region_id} ({g.tier}):"
            f" {g.starts_at.astimezone(tz):%Y-%m-%d %H:%M} -"
            f" {g.ends_at.astimezone(tz):%Y-%m-%d %H:%M} {tz.key} ({g.hours:.1f} h)"
        )
    if not shown:
        console.print(f"covered around the clock for the next {hours:g} h")


@rota_app.command("add")
def rota_add(
    user: Annotated[str, typer.Option(help="username")],
    region: Annotated[str, typer.Option(help="region id")],
    start: Annotated[
        str, typer.Option(help="ISO time, e.g. 2026-11-23T08:00+08:00 (no offset: local)")
    ],
    end: Annotated[str, typer.Option(help="ISO time (no offset: the deployment's zone)")],
) -> None:
    """Add a shift."""
    from alerts.escalate import rota

    async def go() -> int:
        async with await psycopg.AsyncConnection.connect(_dsn()) as conn:
            return await rota.add_shift(conn, user, region, _when(start), _when(end))

    try:
        shift_id = asyncio.run(go())
    except rota.RotaError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"shift {shift_id} added")


@rota_app.command("remove")
def rota_remove(shift_id: Annotated[int, typer.Argument(help="shift id")]) -> None:
    """Remove a shift."""
    from alerts.escalate import rota

    async def go() -> bool:
        async with await psycopg.AsyncConnection.connect(_dsn()) as conn:
            return await rota.remove_shift(conn, shift_id)

    if not asyncio.run(go()):
        console.print(f"[red]no shift {shift_id}[/red]")
        raise typer.Exit(1)
    console.print(f"shift {shift_id} removed")


def register(app: typer.Typer) -> None:
    """Add the alerting commands to the `eldercare` CLI (`report` prints the KPI table
    when `eldercare report` is given no file to write: cli/report.py)."""
    app.add_typer(rota_app, name="rota")
