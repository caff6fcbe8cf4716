"""`eldercare care …`: staff tags and the weekly care-visit check, from the command line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from alerts.care import close_weeks, import_tag_visits
from runtime.settings import SettingsError, load_settings

care_app = typer.Typer(help="Care visits: staff tags and the weekly check.", no_args_is_help=True)
_console = Console(stderr=True)


def _dsn() -> str:
    try:
        settings = load_settings()
    except SettingsError as exc:
        _console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if settings.database.url is None:
        _console.print("[red]set ELDERCARE_DATABASE__URL to the service's database[/red]")
        raise typer.Exit(2)
    return settings.database.dsn()


@care_app.command("tag")
def tag_cmd(
    username: Annotated[str, typer.Argument(help="the staff member's username")],
    tag: Annotated[int, typer.Argument(help="the number the visit readers report", min=0)],
) -> None:
    """Give a staff member a visit tag (replaces whoever had that number)."""

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(_dsn()) as conn:
            cur = await conn.execute(
                "SELECT id FROM users WHERE username = %s"
                " AND role IN ('district_staff', 'town_staff', 'village_worker')",
                (username,),
            )
            row = await cur.fetchone()
            if row is None:
                _console.print(f"[red]no staff member {username!r}[/red]")
                raise typer.Exit(2)
            await conn.execute(
                "INSERT INTO staff_tags (tag, user_id) VALUES (%s, %s)"
                " ON CONFLICT (tag) DO UPDATE SET user_id = EXCLUDED.user_id",
                (tag, row[0]),
            )
        _console.print(f"tag {tag} → {username}")

    asyncio.run(go())


@care_app.command("check")
def check_cmd() -> None:
    """Import tag visits and close last week now (the service does this every minute)."""

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(_dsn(), autocommit=True) as conn:
            now = datetime.now(UTC)
            new = await import_tag_visits(conn, now)
            closed = await close_weeks(conn, now, timedelta(minutes=5))
        short = [c for c in closed if c.short]
        _console.print(f"{new} tag visits; {len(closed)} weeks closed, {len(short)} short")
        for c in short:
            _console.print(f"  {c.elder_id}: {c.visits} visits in the week of {c.week_start}")

    asyncio.run(go())
