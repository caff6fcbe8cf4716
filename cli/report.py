"""`eldercare report`: the monthly report for civil affairs, as an Excel workbook and CSV."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
import typer

from alerts import monthly, monthly_book
from cli.alerting import report as kpi_table
from cli.common import console, settings_or_exit


async def _top_region(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute("SELECT id FROM regions WHERE parent_id IS NULL ORDER BY id")
    tops = [str(r[0]) for r in await cur.fetchall()]
    if len(tops) != 1:
        raise monthly.UnknownRegion(
            "pass --region ID: "
            + (f"the districts are {', '.join(tops)}" if tops else "no regions")
        )
    return tops[0]


def register(app: typer.Typer) -> None:
    """Add `report` to the CLI."""

    @app.command("report")
    def report_cmd(
        month: Annotated[str, typer.Option("--month", help="the month, e.g. 2026-11")],
        region: Annotated[
            str | None, typer.Option("--region", help="region id (default: the district)")
        ] = None,
        xlsx: Annotated[Path | None, typer.Option("--xlsx", help="write the workbook here")] = None,
        csv_dir: Annotated[
            Path | None,
            typer.Option("--csv", help="write one CSV file per sheet in this directory"),
        ] = None,
        locale: Annotated[
            str | None,
            typer.Option("--locale", help="zh or en (default: ELDERCARE_ALERTS__LOCALE)"),
        ] = None,
    ) -> None:
        """The month's report for civil affairs (visits against the 3-a-week rule, alerts by
        kind and outcome, emergencies against the TSA standard, false alarms), in the
        deployment's language and time zone, as a workbook (--xlsx) and CSV (--csv). With
        neither, the alert KPI table of the month (in UTC)."""
        if xlsx is None and csv_dir is None:
            kpi_table(month, region)
            return
        settings = settings_or_exit()
        language: Literal["zh", "en"] = settings.alerts.locale
        if locale is not None:
            if locale not in ("zh", "en"):
                console.print(f"--locale must be zh or en, not {locale!r}", style="red")
                raise typer.Exit(2)
            language = "zh" if locale == "zh" else "en"
        try:
            period = monthly.month_in(month, settings.alerts.zone())
            dsn = settings.database.dsn()
        except ValueError as exc:
            console.print(str(exc), style="red", markup=False)
            raise typer.Exit(2) from None

        async def build() -> monthly.MonthlyReport:
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                chosen = region or await _top_region(conn)
                return await monthly.fetch(conn, chosen, period, datetime.now(UTC))

        try:
            report = asyncio.run(build())
        except monthly.UnknownRegion as exc:
            console.print(str(exc), style="red", markup=False)
            raise typer.Exit(2) from None
        except psycopg.OperationalError as exc:
            console.print(f"cannot connect to the database: {exc}", style="red", markup=False)
            raise typer.Exit(1) from None
        if xlsx is not None:
            xlsx.parent.mkdir(parents=True, exist_ok=True)
            xlsx.write_bytes(monthly_book.xlsx_bytes(report, language))
            typer.echo(f"workbook: {xlsx}")
        if csv_dir is not None:
            for path in monthly_book.write_csv(report, language, csv_dir):
                typer.echo(f"csv: {path}")
        t = report.tsa
        verdict = "n/a" if t.passed is None else ("pass" if t.passed else "FAIL")
        typer.echo(
            f"{report.region_name} ({report.region_id}) {report.month.name}: "
            f"{report.elders} elders, {report.alerts} alerts, "
            f"{t.answerable} emergencies needing an answer, TSA {verdict}"
        )
