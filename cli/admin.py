"""`eldercare admin ...`: enrolment and administration from the command line (regions,
homes, elders and contacts here; accounts, invitations, import and audit in
cli/admin_people.py). Every command calls `gateway.admin`, like the API and the pages.

The command line holds the database, so it acts everywhere, audited as `cli:<login>`;
`--as USERNAME` acts with that person's role and region instead."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import psycopg
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from cli.common import endpoints, settings_or_exit
from gateway.admin import elders, homes, leaving, regions
from gateway.admin.common import Actor, AdminError, Conn, Invalid, plain
from gateway.admin.invitations import Links
from ingest.broker_files import BrokerReloadError

console = Console(stderr=True)
admin_app = typer.Typer(help="Enrolment and administration (audited).", no_args_is_help=True)
region_app = typer.Typer(help="The region tree: districts, towns, villages.", no_args_is_help=True)
home_app = typer.Typer(help="Homes: address, location, time zone.", no_args_is_help=True)
elder_app = typer.Typer(help="Elders: enrol, change, close.", no_args_is_help=True)
contact_app = typer.Typer(help="An elder's emergency contacts.", no_args_is_help=True)
admin_app.add_typer(region_app, name="region")
admin_app.add_typer(home_app, name="home")
admin_app.add_typer(elder_app, name="elder")
admin_app.add_typer(contact_app, name="contact")

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


@dataclass(slots=True)
class Options:
    """What every admin command shares: whom it acts as, the database, the output."""

    acting_as: str | None
    database_url: str | None
    as_json: bool


@admin_app.callback()
def admin_options(
    ctx: typer.Context,
    acting_as: Annotated[
        str | None, typer.Option("--as", help="act as this user (their role and region)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(envvar="ELDERCARE_DATABASE__URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print results as JSON")] = False,
) -> None:
    """Options of every admin command."""
    ctx.obj = Options(acting_as, database_url, as_json)


def options(ctx: typer.Context) -> Options:
    """The admin group's options."""
    found = ctx.find_object(Options)
    assert found is not None
    return found


def model(cls: type[M], values: dict[str, Any]) -> M:
    """An operation's input from the options; exits 2 naming each bad field."""
    try:
        return cls.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "input"
            console.print(f"[red]{field}[/red]: {plain(str(err['msg']))}")
        raise typer.Exit(2) from None


async def _actor(conn: Conn, acting_as: str | None) -> Actor:
    if acting_as is None:
        return Actor.system(f"cli:{getpass.getuser()}")
    cur = await conn.execute(
        "SELECT id, username, role, region_id FROM users WHERE username = %s AND closed_at IS NULL",
        (acting_as,),
    )
    row = await cur.fetchone()
    if row is None:
        console.print(f"[red]--as: no open account {acting_as!r}[/red]")
        raise typer.Exit(2)
    return Actor(int(row[0]), str(row[1]), str(row[2]), row[3])


def run(ctx: typer.Context, operation: Callable[[Conn, Actor], Awaitable[R]]) -> R:
    """Run one operation in its own connection (committed when it succeeds); a refusal is
    printed with what to fix and exits 2."""
    opts = options(ctx)
    dsn = opts.database_url or endpoints(None)[0]

    async def go() -> R:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            result = await operation(conn, await _actor(conn, opts.acting_as))
            await conn.commit()
            return result

    try:
        return asyncio.run(go())
    except Invalid as exc:
        for p in exc.problems:
            console.print(f"[red]{p.field}[/red]: {p.message}")
        raise typer.Exit(2) from None
    except AdminError as exc:
        console.print(f"[red]refused ({exc.code})[/red]: {exc.message}")
        raise typer.Exit(2) from None


def show(ctx: typer.Context, result: BaseModel, text: str) -> None:
    """Print a result: as JSON with --json, else `text`."""
    if options(ctx).as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        typer.echo(text)


def links() -> Links:
    """Invitation links as the gateway makes them (ELDERCARE_GATEWAY__SESSION_SECRET,
    ELDERCARE_GATEWAY__PUBLIC_URL)."""
    gateway = settings_or_exit().gateway
    return Links(gateway.session_secret.get_secret_value().encode(), gateway.base_url())


def deployment_tz() -> str:
    """The deployment's time zone (ELDERCARE_ALERTS__TIMEZONE), the default of new homes."""
    return settings_or_exit().alerts.timezone


# --------------------------------------------------------------------------- regions


@region_app.command("add")
def region_add(
    ctx: typer.Context,
    region_id: Annotated[str, typer.Argument(help="new id, e.g. v-willow")],
    name: Annotated[str, typer.Option(help="its name")],
    tier: Annotated[str, typer.Option(help="district, town or village")],
    parent: Annotated[
        str | None, typer.Option(help="the town of a village, district of a town")
    ] = None,
) -> None:
    """Create a district, a town in a district or a village in a town."""
    body = model(
        regions.RegionCreate, {"id": region_id, "name": name, "tier": tier, "parent_id": parent}
    )
    out = run(ctx, lambda c, a: regions.create_region(c, a, body))
    show(ctx, out, f"created {out.tier} {out.id} ({out.name})")


@region_app.command("rename")
def region_rename(
    ctx: typer.Context,
    region_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Rename a region."""
    body = model(regions.RegionRename, {"name": name})
    out = run(ctx, lambda c, a: regions.rename_region(c, a, region_id, body))
    show(ctx, out, f"renamed {out.id}: {out.name}")


@region_app.command("close")
def region_close(ctx: typer.Context, region_id: Annotated[str, typer.Argument()]) -> None:
    """Remove an empty region (refused while it holds regions, homes, accounts or shifts)."""
    out = run(ctx, lambda c, a: regions.close_region(c, a, region_id))
    show(ctx, out, f"closed {out.tier} {out.id}")


# --------------------------------------------------------------------------- homes


@home_app.command("add")
def home_add(
    ctx: typer.Context,
    village: Annotated[str, typer.Option(help="the village's id")],
    address: Annotated[str, typer.Option()],
    home_id: Annotated[str | None, typer.Option("--id", help="id (made up when absent)")] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    timezone: Annotated[str | None, typer.Option(help="default: the deployment's")] = None,
) -> None:
    """Create a home in a village."""
    body = model(homes.HomeCreate, {
        "id": home_id, "village_id": village, "address": address, "lat": lat, "lon": lon,
        "timezone": timezone,
    })  # fmt: skip
    tz = deployment_tz()
    out = run(ctx, lambda c, a: homes.create_home(c, a, body, tz))
    show(ctx, out, f"created home {out.id} in {out.village_id} ({out.timezone})")


@home_app.command("update")
def home_update(
    ctx: typer.Context,
    home_id: Annotated[str, typer.Argument()],
    address: Annotated[str | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    timezone: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change a home's address, location or time zone."""
    body = model(homes.HomeUpdate, {"address": address, "lat": lat, "lon": lon,
                                    "timezone": timezone})  # fmt: skip
    out = run(ctx, lambda c, a: homes.update_home(c, a, home_id, body))
    show(ctx, out, f"home {out.id}: {out.address} ({out.timezone})")


# --------------------------------------------------------------------------- elders


def _contacts(values: list[str]) -> list[dict[str, Any]]:
    out = []
    for value in values:
        parts = [p.strip() for p in value.split(",")]
        if len(parts) not in (3, 4):
            console.print(f"[red]--contact[/red]: {value!r}: write NAME,RELATION,PHONE[,key]")
            raise typer.Exit(2)
        holds = len(parts) == 4 and parts[3].lower() in ("key", "yes", "holds_key", "是")
        out.append({"name": parts[0], "relation": parts[1], "phone": parts[2], "holds_key": holds})
    return out


def _limits(values: list[str]) -> dict[str, str] | None:
    if not values:
        return None
    pairs = [v.partition("=") for v in values]
    if any(not sep for _, sep, _ in pairs):
        console.print("[red]--limit[/red]: write KEY=VALUE, e.g. temperature_min_c=18")
        raise typer.Exit(2)
    return {k.strip(): v.strip() for k, _, v in pairs}


@elder_app.command("add")
def elder_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="full name")],
    home: Annotated[str | None, typer.Option(help="an existing home")] = None,
    village: Annotated[str | None, typer.Option(help="a new home in this village")] = None,
    address: Annotated[str | None, typer.Option(help="the new home's address")] = None,
    born: Annotated[str | None, typer.Option(help="1942-03-01")] = None,
    sex: Annotated[str | None, typer.Option(help="female or male")] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option(help="zh (default), en, yue...")] = None,
    condition: Annotated[list[str] | None, typer.Option(help="repeat for each")] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    contact: Annotated[list[str] | None, typer.Option(help="NAME,RELATION,PHONE[,key]")] = None,
    limit: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, e.g. spo2_low=88")] = None,
    elder_id: Annotated[str | None, typer.Option("--id")] = None,
    external_id: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Enrol an elder, in an existing home (--home) or a new one (--village, --address)."""
    new_home = None if village is None else {"village_id": village, "address": address or ""}
    body = model(elders.ElderCreate, {
        "id": elder_id, "home_id": home, "home": new_home, "full_name": name, "born": born,
        "sex": sex, "phone": phone, "language": language, "conditions": condition,
        "notes": notes, "contacts": _contacts(contact or []), "thresholds": _limits(limit or []),
        "external_id": external_id,
    })  # fmt: skip
    tz = deployment_tz()
    out = run(ctx, lambda c, a: elders.create_elder(c, a, body, tz))
    show(ctx, out, f"enrolled {out.id} ({out.full_name}) in home {out.home_id}, {out.village_id}")


@elder_app.command("update")
def elder_update(
    ctx: typer.Context,
    elder_id: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option()] = None,
    born: Annotated[str | None, typer.Option()] = None,
    sex: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option()] = None,
    condition: Annotated[list[str] | None, typer.Option(help="replaces the list")] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[list[str] | None, typer.Option(help="replaces the limits")] = None,
) -> None:
    """Change an elder's file."""
    body = model(elders.ElderUpdate, {
        "full_name": name, "born": born, "sex": sex, "phone": phone, "language": language,
        "conditions": condition, "notes": notes, "thresholds": _limits(limit or []),
    })  # fmt: skip
    out = run(ctx, lambda c, a: elders.update_elder(c, a, elder_id, body))
    show(ctx, out, f"updated {out.id} ({out.full_name})")


@elder_app.command("close")
def elder_close(
    ctx: typer.Context,
    elder_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="why the elder leaves the service")],
) -> None:
    """The elder leaves the service: monitoring ends, the records are kept."""
    body = model(elders.ElderClose, {"reason": reason})
    broker = settings_or_exit().broker
    try:
        out = run(ctx, lambda c, a: leaving.close_and_lock_out(c, a, elder_id, body, broker))
    except BrokerReloadError as exc:
        console.print(f"[red]closed; broker files written, reload failed: {exc}[/red]")
        raise typer.Exit(1) from None
    show(ctx, out, f"closed {out.id} ({out.full_name}): {out.closed_reason}")


@elder_app.command("list")
def elder_list(
    ctx: typer.Context,
    village: Annotated[str | None, typer.Option()] = None,
    include_closed: Annotated[bool, typer.Option(help="closed files too")] = False,
) -> None:
    """The elders of your region (or of one village)."""
    rows = run(ctx, lambda c, a: elders.list_elders(c, a, village, include_closed, 10_000))
    if options(ctx).as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} elders")
    for col in ("id", "name", "home", "village", "address", "contacts", "family", "closed"):
        table.add_column(col)
    for r in rows:
        closed = "" if r.closed_at is None else f"{r.closed_at:%Y-%m-%d}"
        table.add_row(r.id, r.full_name, r.home_id, r.village, r.address, str(r.contacts),
                      str(r.family), closed)  # fmt: skip
    Console().print(table)


@contact_app.command("add")
def contact_add(
    ctx: typer.Context,
    elder_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option()],
    phone: Annotated[str, typer.Option()],
    relation: Annotated[str, typer.Option()] = "",
    holds_key: Annotated[bool, typer.Option(help="holds a key to the home")] = False,
) -> None:
    """Add an emergency contact."""
    body = model(elders.ContactIn, {"name": name, "phone": phone, "relation": relation,
                                    "holds_key": holds_key})  # fmt: skip
    out = run(ctx, lambda c, a: elders.add_contact(c, a, elder_id, body))
    show(ctx, out, f"contact {out.id}: {out.name} {out.phone}{' (key)' if out.holds_key else ''}")


@contact_app.command("remove")
def contact_remove(
    ctx: typer.Context,
    elder_id: Annotated[str, typer.Argument()],
    contact_id: Annotated[int, typer.Argument()],
) -> None:
    """Remove an emergency contact."""
    out = run(ctx, lambda c, a: elders.remove_contact(c, a, elder_id, contact_id))
    show(ctx, out, f"removed contact {out.id} ({out.name})")
