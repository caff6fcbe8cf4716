"""The monthly report on a real PostgreSQL: alerts through their real lifecycle, visits and an
away window in March 2025 (Asia/Shanghai), the workbook made by `eldercare report` and by
the console's download, reopened with openpyxl and read cell by cell, and the CSV files."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from alerts import kpi, monthly, store
from alerts.model import Category, Outcome, Severity, Signal
from cli.main import app
from devstack.seed import DEMO_PASSWORD
from tests.integration.helpers import login

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 4, 2, 12, 0, tzinfo=SHANGHAI)


def sh(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=SHANGHAI)


# (home, kind, category, opened, seconds to acknowledge or None, outcome or None)
ALERTS: list[tuple[str, str, Category, datetime, float | None, Outcome | None]] = [
    ("h01", "sos", Category.EMERGENCY, sh(3, 9), 30, Outcome.VISITED_FINE),
    ("h01", "sos", Category.EMERGENCY, sh(5, 9), 45, Outcome.AMBULANCE),
    ("h02", "sos", Category.EMERGENCY, sh(6, 22), 60, Outcome.FALSE_ALARM),  # exactly 60 s
    ("h02", "fall", Category.EMERGENCY, sh(12, 3), 200, Outcome.HOSPITAL),  # late
    ("h05", "sos", Category.EMERGENCY, sh(14, 8), None, Outcome.CANCELLED_BY_ELDER),
    ("h05", "fall", Category.EMERGENCY, sh(15, 8), 50, Outcome.FALSE_ALARM),
    ("h06", "inactivity", Category.WELLBEING, sh(20, 14), 900, Outcome.FALSE_ALARM),
    ("h06", "inactivity", Category.WELLBEING, sh(22, 14), None, None),  # still open
    # 1 March 04:00 in Shanghai is still February in UTC: in this report.
    ("h01", "smoke", Category.EMERGENCY, sh(1, 4), 20, Outcome.FALSE_ALARM),
    # 1 April 01:00 in Shanghai is 31 March in UTC: not in this report.
    ("h01", "gas", Category.EMERGENCY, sh(1, 1, month=4), 20, Outcome.FALSE_ALARM),
    # Town t2's village v3: not in t1's report.
    ("h03", "sos", Category.EMERGENCY, sh(10, 10), 500, Outcome.VISITED_FINE),
]


async def populate(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("UPDATE homes SET created_at = '2025-01-01'")
        cur = await conn.execute("SELECT id FROM users WHERE username = 'worker-v1'")
        row = await cur.fetchone()
        assert row is not None
        worker = int(row[0])
        for i, (home, kind, category, opened, ack, outcome) in enumerate(ALERTS):
            signal = Signal(
                home_id=home, kind=kind, category=category, severity=Severity.CRITICAL,
                event_at=opened, summary=f"{kind} in {home}", device_id=f"{home}-sos",
                boot=1, seq=i + 1,
            )  # fmt: skip
            raised = await store.raise_signal(conn, signal, opened, timedelta(minutes=5))
            if ack is not None:
                at = opened + timedelta(seconds=ack)
                assert await store.acknowledge(conn, raised.alert_id, worker, "console", at)
            if outcome is not None:
                by = None if outcome is Outcome.CANCELLED_BY_ELDER else worker
                done = opened + timedelta(minutes=30)
                assert await store.resolve(conn, raised.alert_id, by, outcome, "", done)
        visits = {
            "e01": [sh(3, 10), sh(4, 10), sh(9, 23, 30),  # week of 3 March: 3 (met)
                    sh(10, 10), sh(12, 10), sh(13, 10),  # week of 10 March: 3 (met)
                    sh(18, 10),  # week of 17 March: 1 (not met)
                    sh(24, 10), sh(26, 10), sh(30, 23)],  # week of 24 March: 3 (met)
            "e05": [sh(4, 10), sh(5, 10), sh(17, 0, 30), sh(18, 10), sh(19, 10)],
        }  # fmt: skip
        for elder, times in visits.items():
            for at in times:
                await conn.execute(
                    "INSERT INTO care_visits (elder_id, user_id, visited_at, source)"
                    " VALUES (%s, %s, %s, 'console')",
                    (elder, worker, at),
                )
        # Home h05 was away from 11 to 13 March: its week of 10 March is not judged.
        await conn.execute(
            "INSERT INTO home_modes (home_id, mode, since, until, reason)"
            " VALUES ('h05', 'hospital', %s, %s, 'hip')",
            (sh(11, 9), sh(13, 18)),
        )


def sheet_rows(path_or_bytes: Path | bytes, title: str) -> list[list[Any]]:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    book = load_workbook(source)
    return [list(r) for r in book[title].iter_rows(values_only=True)]


async def test_the_report_from_the_command_line_and_the_console(
    db_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    await populate(db_url)
    runner = CliRunner()
    out = tmp_path / "t1-2025-03.xlsx"
    # In a thread of its own: the command runs its own event loop.
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        ["report", "--month", "2025-03", "--region", "t1", "--xlsx", str(out),
         "--csv", str(tmp_path / "csv")],
        env={"ELDERCARE_DATABASE__URL": db_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "TSA FAIL" in result.stdout

    book = load_workbook(out)
    assert book.sheetnames == ["封面", "探访", "告警", "紧急响应", "误报"]
    cover = {r[0]: r[1] for r in sheet_rows(out, "封面") if r[0]}
    assert cover["区域"] == "East Town (t1)"
    assert cover["月份"] == "2025-03"
    assert cover["时区"] == "Asia/Shanghai (北京时间)"
    assert str(cover["生成时间"]).endswith("(北京时间)")
    assert cover["独居老人数"] == 4  # e01, e02, e05, e06 in v1 and v2
    assert cover["告警总数"] == 9  # 11 less April's and town t2's
    assert cover["紧急告警确认时间（TSA标准）"] == "未达标"

    visits = sheet_rows(out, "探访")
    assert visits[0] == ["村/社区", "老人编号", "姓名", "周起（周一）", "周止（周日）",
                         "探访次数", "要求次数", "结果"]  # fmt: skip
    weeks = {(r[1], r[3]): (r[5], r[7]) for r in visits[1:]}
    assert weeks[("e01", "2025-03-03")] == (3, "达标")
    assert weeks[("e01", "2025-03-10")] == (3, "达标")
    assert weeks[("e01", "2025-03-17")] == (1, "未达标")
    assert weeks[("e01", "2025-03-24")] == (3, "达标")  # 30 March 23:00 is still that week
    assert weeks[("e05", "2025-03-03")] == (2, "未达标")
    assert weeks[("e05", "2025-03-10")] == (0, "外出（不评定）")
    assert weeks[("e05", "2025-03-17")] == (3, "达标")  # 17 March 00:30 Shanghai: Monday
    assert weeks[("e02", "2025-03-17")] == (0, "未达标")
    assert len(visits) == 1 + 4 * 4
    sheet = book["探访"]
    colours = {
        (sheet.cell(r, 2).value, sheet.cell(r, 4).value): sheet.cell(r, 8).fill.fgColor.rgb
        for r in range(2, sheet.max_row + 1)
    }
    assert colours[("e01", "2025-03-03")] == "00C6EFCE"  # met: green
    assert colours[("e01", "2025-03-17")] == "00FFC7CE"  # not met: red
    assert colours[("e05", "2025-03-10")] == "00000000"  # away: not coloured

    alerts = sheet_rows(out, "告警")
    header = alerts[0]
    by_kind = {r[0]: dict(zip(header, r, strict=True)) for r in alerts[1:]}
    assert by_kind["sos"]["合计"] == 4
    assert by_kind["sos"]["告警类型"] == "按下了紧急呼叫按钮"
    assert by_kind["sos"]["误报"] == 1
    assert by_kind["sos"]["老人已取消"] == 1
    assert by_kind["fall"]["合计"] == 2
    assert by_kind["inactivity"]["尚未处理完毕"] == 1
    assert by_kind["inactivity"]["类别"] == "生活状况"
    assert by_kind["smoke"]["合计"] == 1
    assert "gas" not in by_kind

    tsa = {r[0]: r for r in sheet_rows(out, "紧急响应")}
    assert tsa["紧急告警数"][1] == 7  # 4 sos + 2 fall + 1 smoke
    assert tsa["老人自行取消（不计入）"][1] == 1
    assert tsa["需要应答"][1] == 6
    assert tsa["60秒内确认"][1] == 5  # 30, 45, 60 (the limit), 50, 20; not 200
    assert tsa["180秒内确认"][1] == 5
    assert tsa["60秒内确认比例"][1] == pytest.approx(5 / 6)
    assert tsa["60秒内确认比例"][2] == "≥ 97.5%"
    assert tsa["60秒内确认比例"][3] == "未达标"
    assert tsa["180秒内确认比例"][3] == "未达标"
    assert tsa["确认时间中位数（秒）"][1] == 47.5
    assert tsa["最长确认时间（秒）"][1] == 200
    assert tsa["TSA标准总体结果"][3] == "未达标"
    assert book["紧急响应"]["B8"].number_format == "0.0%"

    false = {r[0]: r for r in sheet_rows(out, "误报")}
    assert false["sos"][2:] == [3, 1, pytest.approx(1 / 3)]  # cancelled one not by a person
    assert false["fall"][2:] == [2, 1, 0.5]
    assert false["inactivity"][2:] == [1, 1, 1.0]
    assert false["smoke"][2:] == [1, 1, 1.0]

    # The CSV files: the same tables, UTF-8 with a byte-order mark, shares as percentages.
    files = sorted(p.name for p in (tmp_path / "csv").iterdir())
    sheets = ("alerts", "cover", "emergency_response", "false_alarms", "visits")
    assert files == [f"t1-2025-03-{n}.csv" for n in sheets]
    raw = (tmp_path / "csv" / "t1-2025-03-visits.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows == [["" if v is None else str(v) for v in r] for r in visits]
    tsa_csv = {r[0]: r for r in csv.reader((tmp_path / "csv" / "t1-2025-03-emergency_response.csv")
               .read_text(encoding="utf-8-sig").splitlines())}  # fmt: skip
    assert tsa_csv["60秒内确认比例"][1:] == ["83.3%", "≥ 97.5%", "未达标"]

    # The same definitions as alerts.kpi: in UTC its per-kind false-alarm shares agree.
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        in_utc = await monthly.fetch(conn, "t1", monthly.month_in("2025-03", ZoneInfo("UTC")), NOW)
        kpis = {r.key: r for r in await kpi.report(conn, "2025-03", "t1") if r.grouping == "kind"}
    assert {f.kind: f.share for f in in_utc.false_alarms} == {
        k: r.false_alarm_share for k, r in kpis.items()
    }
    assert "smoke" not in kpis  # 1 March 04:00 Shanghai is February in UTC

    # From the console: staff download their region's workbook, in English when asked.
    district = await login(client, "district")
    r = await client.get(
        "/api/v1/reports/monthly.xlsx",
        params={"month": "2025-03", "region": "t1", "locale": "en"},
        headers=district,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="eldercare-t1-2025-03.xlsx"' in r.headers["content-disposition"]
    assert load_workbook(io.BytesIO(r.content)).sheetnames == [
        "Cover", "Visits", "Alerts", "Emergency response", "False alarms"
    ]  # fmt: skip
    tsa_en = {row[0]: row for row in sheet_rows(r.content, "Emergency response")}
    assert tsa_en["share within 60 s"][1:] == [pytest.approx(5 / 6), "≥ 97.5%", "fail"]
    cover_en = {row[0]: row[1] for row in sheet_rows(r.content, "Cover") if row[0]}
    assert cover_en["Region"] == "East Town (t1)"

    worker = await login(client, "worker-v1")
    own = await client.get("/api/v1/reports/monthly.xlsx?month=2025-03", headers=worker)
    assert own.status_code == 200
    assert {row[0]: row[1] for row in sheet_rows(own.content, "封面") if row[0]}["区域"] == (
        "Willow Village (v1)"
    )
    outside = await client.get(
        "/api/v1/reports/monthly.xlsx?month=2025-03&region=t1", headers=worker
    )
    assert outside.status_code == 404
    family = await login(client, "family-h01")
    denied = await client.get("/api/v1/reports/monthly.xlsx?month=2025-03", headers=family)
    assert denied.status_code == 403
    bad = await client.get("/api/v1/reports/monthly.xlsx?month=2025-13", headers=district)
    assert bad.status_code == 422
    assert "month must look like" in bad.text
    anonymous = await client.get("/api/v1/reports/monthly.xlsx?month=2025-03")
    assert anonymous.status_code == 401

    # The visits page links to it (signed in with the session cookie).
    signed_in = await client.post(
        "/api/v1/auth/login", json={"username": "worker-v1", "password": DEMO_PASSWORD}
    )
    assert signed_in.status_code == 200
    page = await client.get("/console/visits")
    assert page.status_code == 200
    assert 'action="/api/v1/reports/monthly.xlsx"' in page.text
    assert 'name="month"' in page.text
    by_cookie = await client.get("/api/v1/reports/monthly.xlsx?month=2025-03&locale=zh")
    assert by_cookie.status_code == 200


def test_report_errors_are_clear(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"ELDERCARE_DATABASE__URL": db_url}
    # No file asked for: the KPI table of the month, as before the workbook existed.
    table = runner.invoke(app, ["report", "--month", "2025-03"], env=env)
    assert table.exit_code == 0, table.output
    assert "Alert KPIs 2025-03" in table.output
    bad_month = runner.invoke(
        app, ["report", "--month", "March", "--xlsx", str(tmp_path / "x.xlsx")], env=env
    )
    assert bad_month.exit_code == 2
    assert "month must look like 2026-11" in bad_month.output
    unknown = runner.invoke(
        app,
        ["report", "--month", "2025-03", "--region", "zz", "--xlsx", str(tmp_path / "x.xlsx")],
        env=env,
    )
    assert unknown.exit_code == 2
    assert "no region 'zz'" in unknown.output
    assert not (tmp_path / "x.xlsx").exists()
    whole = runner.invoke(
        app, ["report", "--month", "2025-03", "--xlsx", str(tmp_path / "d1.xlsx"),
              "--locale", "en"], env=env,
    )  # fmt: skip
    assert whole.exit_code == 0, whole.output
    cover = {r[0]: r[1] for r in sheet_rows(tmp_path / "d1.xlsx", "Cover") if r[0]}
    assert cover["Region"] == "Riverside District (d1)"
    assert cover["Elders living alone"] == 8
