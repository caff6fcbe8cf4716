"""`eldercare admin staff|account|invite|import|audit`: accounts, invitation links, the bulk
import of a village's register and the audit of changes (see cli/admin.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.admin import admin_app, console, deployment_tz, links, model, options, run, show
from gateway.admin import auditlog, importing, invitations, people

staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
account_app = typer.Typer(help="Any account (staff or family).", no_args_is_help=True)
admin_app.add_typer(staff_app, name="staff")
admin_app.add_typer(account_app, name="account")


@staff_app.command("add")
def staff_add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="their sign-in name")],
    name: Annotated[str, typer.Option(help="display name")],
    role: Annotated[str, typer.Option(help="district_staff, town_staff or village_worker")],
    region: Annotated[str | None, typer.Option(help="their district, town or village")] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    locale: Annotated[str | None, typer.Option(help="zh (default) or en")] = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="sms, voice, email, console (in order; repeat)")
    ] = None,
) -> None:
    """Create a staff account; prints the link that sets its password (shown once)."""
    body = model(people.StaffCreate, {
        "username": username, "display_name": name, "role": role, "region_id": region,
        "phone": phone, "email": email, "locale": locale, "channels": channel,
    })  # fmt: skip
    signer = links()
    out = run(ctx, lambda c, a: people.create_staff(c, signer, a, body))
    acct = out.account
    show(ctx, out, f"created {acct.role} {acct.username} ({acct.region_id});"
         f" channels: {', '.join(acct.channels) or 'none'}\n"
         f"password link (until {out.invitation.expires_at:%Y-%m-%d %H:%M} UTC):"
         f" {out.invitation.url}")  # fmt: skip


@staff_app.command("update")
def staff_update(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    locale: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change a staff member's name, phone or language."""
    body = model(people.StaffUpdate, {"display_name": name, "phone": phone, "locale": locale})
    out = run(ctx, lambda c, a: people.update_staff(c, a, username, body))
    show(ctx, out, f"updated {out.username}: {out.display_name} {out.phone} {out.locale}")


@staff_app.command("password-link")
def staff_password_link(ctx: typer.Context, username: Annotated[str, typer.Argument()]) -> None:
    """A new link that sets a staff member's password (the old password stops working)."""
    signer = links()
    out = run(ctx, lambda c, a: people.reset_password(c, signer, a, username))
    show(ctx, out, f"password link for {username}: {out.url}")


@staff_app.command("list")
def staff_list(
    ctx: typer.Context,
    role: Annotated[str | None, typer.Option(help="one role, or family")] = None,
    include_closed: Annotated[bool, typer.Option()] = False,
) -> None:
    """The accounts of your region."""
    rows = run(ctx, lambda c, a: people.list_accounts(c, a, role, include_closed))
    if options(ctx).as_json:
        typer.echo("[" + ",".join(r.model_dump_json() for r in rows) + "]")
        return
    table = Table(title=f"{len(rows)} accounts")
    for col in ("username", "name", "role", "region", "phone", "channels", "password", "closed"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.username, r.display_name, r.role, r.region_id or "", r.phone, ", ".join(r.channels),
            "set" if r.password_set else "not set",
            "" if r.closed_at is None else f"{r.closed_at:%Y-%m-%d}",
        )  # fmt: skip
    Console().print(table)


@account_app.command("close")
def account_close(ctx: typer.Context, username: Annotated[str, typer.Argument()]) -> None:
    """Close a staff or family account: no more sign-in, rota shifts or notices."""
    out = run(ctx, lambda c, a: people.close_account(c, a, username))
    show(ctx, out, f"closed {out.role} account {out.username}")


@admin_app.command("invite")
def invite(
    ctx: typer.Context,
    elder: Annotated[str, typer.Argument(help="the elder's id")],
    name: Annotated[str, typer.Option(help="the family member's name")],
    relation: Annotated[str, typer.Option(help="daughter, son, carer...")],
    phone: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    locale: Annotated[str | None, typer.Option(help="zh (default) or en")] = None,
    holds_key: Annotated[bool, typer.Option(help="holds a key to the home")] = False,
    first_contact: Annotated[bool, typer.Option(help="told of alerts at once")] = True,
    hours: Annotated[int, typer.Option(help="the link expires after")] = 72,
) -> None:
    """Invite a family member of one elder: prints the link (expires, single use)."""
    body = model(invitations.FamilyInvite, {
        "elder_id": elder, "display_name": name, "relation": relation, "phone": phone,
        "email": email, "locale": locale, "holds_key": holds_key,
        "first_contact": first_contact, "expires_hours": hours,
    })  # fmt: skip
    signer = links()
    out = run(ctx, lambda c, a: invitations.invite_family(c, signer, a, body))
    show(ctx, out, f"invitation for {name} ({relation} of {elder}), until"
         f" {out.expires_at:%Y-%m-%d %H:%M} UTC:\n{out.url}")  # fmt: skip


@admin_app.command("import")
def import_file(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="the register: .csv or .xlsx", exists=True, dir_okay=False)
    ],
    village: Annotated[str, typer.Option(help="the village the homes are in")],
    dry_run: Annotated[bool, typer.Option(help="check only, write nothing")] = False,
) -> None:
    """Import a village's homes and elders (columns: docs/operations.md). Every problem is
    listed with its row and column; nothing is written unless the whole file is clean, and
    a re-run changes only what changed (rows are matched by external id)."""
    data = path.read_bytes()
    tz = deployment_tz()
    report = run(ctx, lambda c, a: importing.import_village(
        c, a, village, data, path.name, dry_run=dry_run, default_tz=tz))  # fmt: skip
    if options(ctx).as_json:
        typer.echo(report.model_dump_json(indent=2))
    elif report.problems:
        table = Table(title=f"{len(report.problems)} problems in {path.name}")
        for col in ("row", "column", "problem"):
            table.add_column(col)
        for p in report.problems:
            table.add_row(str(p.row), p.column, p.message)
        Console().print(table)
    else:
        table = Table(title=f"{path.name}: {report.rows} rows")
        for col in ("row", "external id", "name", "home", "elder", "action"):
            table.add_column(col)
        for i in report.items:
            table.add_row(str(i.row), i.external_id, i.full_name, i.home_id or "",
                          i.elder_id or "", i.action)  # fmt: skip
        Console().print(table)
    verb = "would create" if dry_run else "created"
    if report.problems:
        console.print(f"[red]{len(report.problems)} problems: nothing was written[/red]")
        raise typer.Exit(1)
    console.print(f"{verb} {report.created}, updated {report.updated},"
                  f" unchanged {report.unchanged}" + (" (dry run: nothing written)" if dry_run
                                                     else ""))  # fmt: skip


@admin_app.command("audit")
def audit(
    ctx: typer.Context,
    entity: Annotated[str | None, typer.Option(help="region, home, elder, user...")] = None,
    entity_id: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """The latest administrative changes (who, when, what)."""
    rows = run(ctx, lambda c, a: auditlog.list_audit(c, a, entity, entity_id, limit))
    if options(ctx).as_json:
        typer.echo("[" + ",".join(r.model_dump_json() for r in rows) + "]")
        return
    table = Table(title="administrative changes (UTC)")
    for col in ("at", "who", "entity", "id", "action"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"{r.at:%Y-%m-%d %H:%M:%S}", r.actor, r.entity, r.entity_id, r.action)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Attach `eldercare admin ...` to the main CLI."""
    app.add_typer(admin_app, name="admin")
