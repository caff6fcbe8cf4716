"""Bulk import of a village's register (CSV and .xlsx) on a real PostgreSQL with the demo
region: a dry run lists every row's problem and writes nothing; a clean file imports in one
transaction; a re-run changes nothing; a changed row is updated."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import psycopg
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.integration.helpers import assert_error, login

pytestmark = pytest.mark.integration

COUNTS = (
    "SELECT (SELECT count(*) FROM homes), (SELECT count(*) FROM elders),"
    " (SELECT count(*) FROM elder_contacts), (SELECT count(*) FROM admin_audit)"
)


def counts(db_url: str) -> tuple[Any, ...]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(COUNTS).fetchone()
    assert row is not None
    return tuple(row)


BAD_CSV = (
    "编号,姓名,地址,出生日期,性别,电话,紧急联系人,联系人电话,联系人有钥匙,独居,颜色\n"
    "A1,王秀兰,柳树村1号,1940-02-03,女,13800000001,王强,13900000001,是,是,红\n"
    "A2,,柳树村2号,1941-13-01,女,13800000002,,,,,\n"
    "A3,李建国,柳树村3号,1938/5/6,男,电话坏了,李明,123,也许,不知道,\n"
    "A1,张淑芬,柳树村4号,1939年7月8日,女,,,,,,\n"
    "A5,陈德明,,1937-01-01,未知,13800000005,,,,,\n"
)


def test_dry_run_lists_every_problem_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    before = counts(db_url)
    path = tmp_path / "willow.csv"
    path.write_bytes(BAD_CSV.encode("gb18030"))  # as Excel in China saves a CSV
    runner = CliRunner()
    env = {"ELDERCARE_DATABASE__URL": db_url}
    result = runner.invoke(
        app,
        ["admin", "--json", "import", str(path), "--village", "v1", "--dry-run"],
        env=env,
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    problems = {(p["row"], p["column"]) for p in report["problems"]}
    assert problems == {
        (1, "颜色"),  # unknown column
        (3, "姓名"),
        (3, "出生日期"),
        (4, "电话"),
        (4, "联系人电话"),
        (4, "联系人有钥匙"),
        (4, "独居"),
        (5, "编号"),  # A1 twice
        (6, "地址"),
        (6, "性别"),
    }
    messages = {(p["row"], p["column"]): p["message"] for p in report["problems"]}
    assert "row 2" in messages[(5, "编号")]
    assert report["written"] is False
    assert counts(db_url) == before
    # The real import of the same file: refused, every problem listed, nothing written.
    result = runner.invoke(app, ["admin", "import", str(path), "--village", "v1"], env=env)
    assert result.exit_code == 1
    assert "nothing was written" in result.output
    assert counts(db_url) == before


def register(rows: int, phone_of: dict[int, str] | None = None) -> bytes:
    """A village register as an .xlsx workbook, English headers."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["external_id", "full_name", "address", "home_id", "born", "sex", "phone",
                  "conditions", "contact_name", "contact_relation", "contact_phone",
                  "contact_holds_key", "lat", "lon"])  # fmt: skip
    for i in range(1, rows + 1):
        phone = (phone_of or {}).get(i, f"1380000{i:04d}")
        sheet.append([
            f"PINE-{i:03d}", f"Elder {i:03d}", f"{i} Pine Road", f"pine-{i:03d}",
            date(1930 + i % 20, 1 + i % 12, 1 + i % 28), "female" if i % 2 else "male",
            int(phone), "hypertension; diabetes" if i % 3 == 0 else "",
            f"Child {i}", "daughter", f"1390000{i:04d}", "yes" if i % 4 == 0 else "no",
            30.0 + i / 1000, 120.0 + i / 1000,
        ])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes, dry_run: bool,
    village: str = "v2",
) -> httpx.Response:  # fmt: skip
    return await client.post(
        f"/api/v1/admin/import?village={village}&dry_run={str(dry_run).lower()}",
        files={"file": ("pine.xlsx", data, "application/vnd.ms-excel")},
        headers=headers,
    )


async def test_import_fifty_elders_from_xlsx(client: httpx.AsyncClient, db_url: str) -> None:
    town = await login(client, "town-t1")
    data = register(50)
    before = counts(db_url)
    r = await upload(client, town, data, dry_run=True)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["dry_run"], report["written"], report["created"]) == (True, False, 50)
    assert report["problems"] == []
    assert counts(db_url) == before

    r = await upload(client, town, data, dry_run=False)
    assert r.status_code == 200, r.text
    assert (r.json()["written"], r.json()["created"]) == (True, 50)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT e.external_id, h.id, h.village_id, e.phone, e.born, e.conditions,"
            " c.phone, c.holds_key, h.timezone, h.lat"
            " FROM elders e JOIN homes h ON h.id = e.home_id"
            " JOIN elder_contacts c ON c.elder_id = e.id"
            " WHERE e.external_id LIKE 'PINE-%' ORDER BY e.external_id"
        ).fetchall()
        audited = conn.execute(
            "SELECT count(*) FROM admin_audit WHERE action = 'import' AND entity = 'elder'"
        ).fetchone()
    assert len(rows) == 50
    assert rows[2] == (
        "PINE-003", "pine-003", "v2", "+8613800000003", date(1933, 4, 4),
        ["hypertension", "diabetes"], "+8613900000003", False, "Asia/Shanghai", 30.003,
    )  # fmt: skip
    assert rows[3][7] is True
    assert audited == (50,)

    # Again: nothing changes (matched by external id); one changed phone: one update.
    after_import = counts(db_url)
    r = await upload(client, town, data, dry_run=False)
    assert (r.json()["unchanged"], r.json()["created"], r.json()["updated"]) == (50, 0, 0)
    homes, elders, contacts, audit = counts(db_url)
    assert (homes, elders, contacts) == after_import[:3]
    assert audit == after_import[3] + 1  # the import's own row
    r = await upload(client, town, register(50, {7: "13811112222"}), dry_run=False)
    assert (r.json()["updated"], r.json()["unchanged"]) == (1, 49)
    with psycopg.connect(db_url) as conn:
        phone = conn.execute("SELECT phone FROM elders WHERE external_id = 'PINE-007'").fetchone()
    assert phone == ("+8613811112222",)

    # Another town's village: 403; a village worker does not import.
    r = await upload(client, await login(client, "town-t2"), data, dry_run=True)
    assert_error(r, 403, "forbidden")
    r = await upload(client, await login(client, "worker-v2"), data, dry_run=True)
    assert_error(r, 403, "forbidden")


async def test_refused_import_answers_every_problem(client: httpx.AsyncClient, db_url: str) -> None:
    town = await login(client, "town-t1")
    before = counts(db_url)
    # Row 3's home id is h01's, taken by another home (found only in the database).
    book = openpyxl.load_workbook(io.BytesIO(register(3)))
    sheet = book.active
    assert sheet is not None
    sheet["D3"] = "h01"
    sheet["B4"] = None
    out = io.BytesIO()
    book.save(out)
    r = await upload(client, town, out.getvalue(), dry_run=False)
    error = assert_error(r, 422, "invalid_import")
    assert {(p["row"], p["column"]) for p in error["problems"]} == {(3, ""), (4, "full_name")}
    assert "h01" in next(p["message"] for p in error["problems"] if p["row"] == 3)
    assert counts(db_url) == before


def consent_register(guardian_relation: str) -> bytes:
    """Two elders with their consent forms (Chinese headers): one signed it, the other's
    son did, and agreed to share with the family."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["编号", "姓名", "地址", "知情同意日期", "监护人", "监护人关系", "同意家属查看",
                  "同意书编号"])  # fmt: skip
    sheet.append(["PINE-901", "王秀英", "松树路 1 号", "2026-11-02", "", "", "否", "F-0901"])
    sheet.append(["PINE-902", "李桂兰", "松树路 2 号", "2026/11/3", "李强", guardian_relation,
                  "是", "F-0902"])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_import_records_the_consent_forms(client: httpx.AsyncClient, db_url: str) -> None:
    town = await login(client, "town-t1")
    refused = await upload(client, town, consent_register(""), dry_run=False)
    error = assert_error(refused, 422, "invalid_import")
    assert [(p["row"], p["column"]) for p in error["problems"]] == [(3, "监护人关系")]
    with psycopg.connect(db_url) as conn:
        none = conn.execute(
            "SELECT count(*) FROM elders WHERE external_id LIKE 'PINE-9%'"
        ).fetchone()
    assert none == (0,)

    done = await upload(client, town, consent_register("儿子"), dry_run=False)
    assert done.json()["written"] is True, done.text
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT e.external_id, c.purpose, c.given_by, c.guardian_name, c.method, c.reference,"
            " (c.given_at AT TIME ZONE 'Asia/Shanghai')::date"
            " FROM elder_consents c JOIN elders e ON e.id = c.elder_id"
            " WHERE e.external_id LIKE 'PINE-9%' AND c.withdrawn_at IS NULL"
            " ORDER BY 1, 2"
        ).fetchall()
    assert rows == [
        ("PINE-901", "monitoring", "elder", "", "paper_form", "F-0901", date(2026, 11, 2)),
        ("PINE-902", "monitoring", "guardian", "李强", "paper_form", "F-0902", date(2026, 11, 3)),
        ("PINE-902", "share_family", "guardian", "李强", "paper_form", "F-0902", date(2026, 11, 3)),
    ]
    again = await upload(client, town, consent_register("儿子"), dry_run=False)
    assert again.json()["written"] is True  # a re-run records nothing twice
    with psycopg.connect(db_url) as conn:
        total = conn.execute(
            "SELECT count(*) FROM elder_consents c JOIN elders e ON e.id = c.elder_id"
            " WHERE e.external_id LIKE 'PINE-9%'"
        ).fetchone()
    assert total == (3,)
