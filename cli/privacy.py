"""`eldercare privacy …`: an elder's consent records, the export of everything held about
them, and their erasure when they leave the service (docs/operations.md, Personal
information). Every command names the staff member it acts for (`--by`), who is audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.table import Table

from alerts.consent import GivenBy, Method, Purpose
from cli.common import console, endpoints
from gateway.privacy import consents, erase, export
from gateway.queries.elders import audit_health_read

privacy_app = typer.Typer(
    help="Personal information: consent, export, erasure.", no_args_is_help=True
)
consent_app = typer.Typer(help="An elder's consent records.", no_args_is_help=True)
privacy_app.add_typer(consent_app, name="consent")

By = Annotated[str, typer.Option("--by", help="username of the staff member acting")]


def register(app: typer.Typer) -> None:
    """Add `privacy` to the `eldercare` command."""
    app.add_typer(privacy_app, name="privacy")


async def _staff(conn: psycopg.AsyncConnection[Any], username: str, roles: set[str]) -> int:
    cur = await conn.execute("SELECT id, role FROM users WHERE username = %s", (username,))
    row = await cur.fetchone()
    if row is None or row[1] not in roles:
        console.print(
            f"[red]--by {username!r}: not a user with role {' or '.join(sorted(roles))}[/red]"
        )
        raise typer.Exit(2)
    return int(row[0])


async def _elder_exists(conn: psycopg.AsyncConnection[Any], elder_id: str) -> None:
    cur = await conn.execute("SELECT 1 FROM elders WHERE id = %s", (elder_id,))
    if await cur.fetchone() is None:
        console.print(f"[red]no elder {elder_id!r}[/red]")
        raise typer.Exit(2)


STAFF = {"district_staff", "town_staff", "village_worker"}


@consent_app.command("record")
def consent_record(
    elder: Annotated[str, typer.Argument(help="the elder's id")],
    purpose: Annotated[Purpose, typer.Option(help="what is consented to")],
    method: Annotated[Method, typer.Option(help="how it was given")],
    by: By,
    reference: Annotated[str, typer.Option(help="e.g. the scanned form's number")] = "",
    guardian_name: Annotated[str, typer.Option(help="given by a guardian: their name")] = "",
    guardian_relation: Annotated[str, typer.Option(help="the guardian's relation")] = "",
    given_at: Annotated[
        datetime | None, typer.Option(help="when it was given (with offset; default now)")
    ] = None,
) -> None:
    """Record a consent given by the elder (or, with --guardian-name, a guardian)."""

    async def go() -> int:
        async with await psycopg.AsyncConnection.connect(endpoints(None)[0]) as conn:
            uid = await _staff(conn, by, STAFF)
            await _elder_exists(conn, elder)
            now = datetime.now(UTC)
            when = given_at if given_at is None or given_at.tzinfo else given_at.astimezone(UTC)
            try:
                return await consents.record(
                    conn,
                    elder,
                    purpose=purpose,
                    given_by=GivenBy.GUARDIAN if guardian_name else GivenBy.ELDER,
                    method=method,
                    given_at=when or now,
                    recorded_by=uid,
                    now=now,
                    guardian_name=guardian_name,
                    guardian_relation=guardian_relation,
                    reference=reference,
                )
            except consents.ConsentError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None

    cid = asyncio.run(go())
    console.print(f"consent #{cid} recorded: {elder} {purpose.value}")


@consent_app.command("list")
def consent_list(elder: Annotated[str, typer.Argument(help="the elder's id")]) -> None:
    """The elder's consent records, current first, and what has no current consent."""

    async def go() -> list[consents.Consent]:
        async with await psycopg.AsyncConnection.connect(endpoints(None)[0]) as conn:
            await _elder_exists(conn, elder)
            return await consents.consents(conn, elder, datetime.now(UTC))

    rows = asyncio.run(go())
    table = Table("id", "purpose", "given by", "method", "reference", "given", "withdrawn")
    for c in rows:
        who = "elder" if c.given_by == "elder" else f"{c.guardian_name} ({c.guardian_relation})"
        gone = "" if c.withdrawn_at is None else f"{c.withdrawn_at:%Y-%m-%d %H:%M} UTC"
        table.add_row(
            str(c.id),
            c.purpose,
            who,
            c.method,
            c.reference,
            f"{c.given_at:%Y-%m-%d %H:%M} UTC",
            gone,
        )
    console.print(table)
    lacking = sorted(
        p.value for p in Purpose if p.value not in {c.purpose for c in rows if c.current}
    )
    if lacking:
        console.print(f"[red]no current consent to: {', '.join(lacking)}[/red]")


@consent_app.command("withdraw")
def consent_withdraw(
    elder: Annotated[str, typer.Argument(help="the elder's id")],
    consent_id: Annotated[int, typer.Argument(help="the consent's id (see `consent list`)")],
    by: By,
    note: Annotated[str, typer.Option(help="how it was withdrawn")] = "",
) -> None:
    """Withdraw a current consent from now on."""

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(endpoints(None)[0]) as conn:
            uid = await _staff(conn, by, STAFF)
            try:
                await consents.withdraw(
                    conn, elder, consent_id, by=uid, now=datetime.now(UTC), note=note
                )
            except consents.ConsentError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None

    asyncio.run(go())
    console.print(f"consent #{consent_id} of {elder} withdrawn")


@privacy_app.command("export")
def export_cmd(
    elder: Annotated[str, typer.Argument(help="the elder's id")],
    out: Annotated[Path, typer.Option("--out", help="the zip file to write")],
    by: By,
) -> None:
    """Write everything held about the elder to one zip (JSON and CSV per table). Audited."""

    async def go() -> export.Exported:
        async with await psycopg.AsyncConnection.connect(endpoints(None)[0]) as conn:
            uid = await _staff(conn, by, {"district_staff", "town_staff"})
            await _elder_exists(conn, elder)
            done = await export.export_elder(
                conn,
                elder,
                out,
                generated_by=by,
                now=datetime.now(UTC),
                progress=lambda name, n: console.print(f"  {name}: {n} rows"),
            )
            await audit_health_read(conn, uid, elder, "export", {"rows": done.rows, "via": "cli"})
            return done

    done = asyncio.run(go())
    console.print(f"{out}: {sum(done.rows.values())} rows in {len(done.rows)} tables")


@privacy_app.command("erase")
def erase_cmd(
    elder: Annotated[str, typer.Argument(help="the elder's id")],
    by: By,
    reason: Annotated[erase.Reason, typer.Option(help="why")] = erase.Reason.LEFT_SERVICE,
    yes: Annotated[bool, typer.Option("--yes", help="really erase: it cannot be undone")] = False,
) -> None:
    """Erase the elder who left the service: personal data deleted, alerts anonymised (the
    KPIs still count them), one erasure record kept. Refused while an alert is unresolved."""
    if not yes:
        console.print(f"[red]erasing {elder} cannot be undone: add --yes to do it[/red]")
        raise typer.Exit(2)

    async def go() -> erase.Erasure:
        async with await psycopg.AsyncConnection.connect(endpoints(None)[0]) as conn:
            uid = await _staff(conn, by, {"district_staff"})
            try:
                return await erase.erase_elder(
                    conn, elder, by=uid, via="cli", reason=reason, now=datetime.now(UTC)
                )
            except erase.ErasureRefused as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None

    done = asyncio.run(go())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(done.counts.items()) if v)
    console.print(f"erased {elder}: erasure #{done.id} ({counts})")
