"""Validation of the administration's inputs (gateway.admin): phones, ids, time zones,
per-elder limits, staff channels, the spreadsheet's cells and headers, invitation tokens."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest
from pydantic import ValidationError

from gateway.admin import spreadsheet
from gateway.admin.common import check_timezone, normalize_phone
from gateway.admin.elders import ElderCreate, ElderUpdate
from gateway.admin.importing import parse_row
from gateway.admin.invitations import sign, verify
from gateway.admin.limits import ElderLimits
from gateway.admin.people import StaffCreate
from gateway.admin.regions import RegionCreate


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+86 138 0013 8000", "+8613800138000"),
        ("13800138000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("0571-88880000", "+8657188880000"),
        ("008613800138000", "+8613800138000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("", ""),
    ],
)
def test_phones_are_stored_in_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["12", "call me", "+0123456789", "1380013800", "+86 138 abc"])
def test_bad_phones_are_refused_with_what_to_write(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number: write it as"):
        normalize_phone(raw)


def test_time_zones() -> None:
    assert check_timezone("Asia/Shanghai") == "Asia/Shanghai"
    with pytest.raises(ValueError, match="Mars/Base"):
        check_timezone("Mars/Base")


def fields(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}


def test_region_fields_are_named() -> None:
    with pytest.raises(ValidationError) as exc:
        RegionCreate.model_validate({"id": "Bad Id", "name": "", "tier": "hamlet", "x": 1})
    assert fields(exc) == {"id", "name", "tier", "x"}


def test_limits_know_their_keys_and_order() -> None:
    assert ElderLimits(temperature_min_c=18, spo2_low=88).stored() == {
        "temperature_min_c": 18.0,
        "spo2_low": 88.0,
    }
    with pytest.raises(ValidationError) as exc:
        ElderLimits.model_validate({"pulse_max": 3, "spo2_low": 120})
    assert fields(exc) == {"pulse_max", "spo2_low"}
    with pytest.raises(ValidationError, match="temperature_min_c must be below"):
        ElderLimits(temperature_min_c=25, temperature_max_c=20)
    with pytest.raises(ValidationError, match="heart_rate_low must be below"):
        ElderLimits(heart_rate_low=100, heart_rate_high=90)


def test_elder_needs_exactly_one_home_and_a_past_birth() -> None:
    with pytest.raises(ValidationError) as exc:
        ElderCreate.model_validate({"full_name": "A"})
    assert fields(exc) == {"home"}
    with pytest.raises(ValidationError) as exc:
        ElderCreate.model_validate(
            {"home_id": "h1", "home": {"village_id": "v", "address": "x"}, "full_name": "A"}
        )
    assert fields(exc) == {"home"}
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    with pytest.raises(ValidationError) as exc:
        ElderUpdate.model_validate({"born": tomorrow, "language": "Chinese!"})
    assert fields(exc) == {"born", "language"}
    with pytest.raises(ValidationError) as exc:
        ElderCreate.model_validate(
            {"home": {"village_id": "v", "address": "x", "lat": 30}, "full_name": "A"}
        )
    assert fields(exc) == {"home.lon"}


def test_staff_channels_need_their_targets() -> None:
    ok = StaffCreate(username="li-na", display_name="Li", role="village_worker", region_id="v1")
    assert ok.channels == ["sms", "email", "console"]  # each used when its target exists
    with pytest.raises(ValidationError) as exc:
        StaffCreate.model_validate({"username": "li-na", "display_name": "Li",
                                    "role": "village_worker", "channels": ["voice"]})  # fmt: skip
    assert fields(exc) == {"region_id", "channels"}
    with pytest.raises(ValidationError) as exc:
        StaffCreate.model_validate({"username": "Li Na", "display_name": "Li",
                                    "role": "operator", "region_id": "v1"})  # fmt: skip
    assert fields(exc) == {"username", "region_id"}


def test_invitation_tokens_are_signed() -> None:
    secret = b"k" * 32
    token = sign(secret, 42, datetime.now(UTC) + timedelta(hours=1))
    assert verify(secret, token) == 42
    assert verify(b"other" * 8, token) is None
    assert verify(secret, token.replace("42.", "43.", 1)) is None
    assert verify(secret, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert verify(secret, "garbage") is None
    assert sign(secret, 42, datetime.now(UTC)) != sign(secret, 42, datetime.now(UTC))


def test_cells() -> None:
    assert spreadsheet.yes_no("是", False) is True
    assert spreadsheet.yes_no("No", True) is False
    assert spreadsheet.yes_no("", True) is True
    with pytest.raises(ValueError, match="not yes or no"):
        spreadsheet.yes_no("maybe", False)
    assert spreadsheet.a_date("1942年3月1日") == date(1942, 3, 1)
    assert spreadsheet.a_date("1942/3/1") == date(1942, 3, 1)
    assert spreadsheet.a_date(datetime(1942, 3, 1)) == date(1942, 3, 1)
    with pytest.raises(ValueError, match="not a date"):
        spreadsheet.a_date("1942-02-30")
    assert spreadsheet.sex("女") == "female"
    with pytest.raises(ValueError, match="not 女 / 男"):
        spreadsheet.sex("x")
    assert spreadsheet.text(13800138000.0) == "13800138000"
    assert spreadsheet.conditions("高血压；糖尿病、关节炎") == ["高血压", "糖尿病", "关节炎"]


def test_headers_in_chinese_or_english_and_gb18030() -> None:
    csv = "编号,Full Name,地址,颜色\nA1,王秀兰,1号,红\n,,,\n"
    sheet = spreadsheet.read_sheet(csv.encode("gb18030"), "v.csv")
    assert sheet.headers == {"external_id": "编号", "full_name": "Full Name", "address": "地址"}
    assert [(p.row, p.column) for p in sheet.problems] == [(1, "颜色")]
    assert sheet.rows == [(2, {"external_id": "A1", "full_name": "王秀兰", "address": "1号"})]
    missing = spreadsheet.read_sheet(b"full_name\nA\n", "v.csv")
    assert {p.column for p in missing.problems} == {"external_id / 编号", "address / 地址"}
    assert spreadsheet.read_sheet(b"PK\x03\x04broken", "v.xlsx").problems[0].row == 0


def test_xlsx_cells_keep_their_types() -> None:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.append(["external_id", "full_name", "address", "born", "phone", "lives_alone"])
    ws.append(["A1", "Wang", "1 Lane", datetime(1940, 5, 6), 13800138000, False])
    out = io.BytesIO()
    book.save(out)
    sheet = spreadsheet.read_sheet(out.getvalue(), "v.xlsx")
    body, problems = parse_row(sheet.rows[0][1], "v1")
    assert problems == {}
    assert body is not None
    assert (body.born, body.phone, body.lives_alone) == (date(1940, 5, 6), "+8613800138000", False)


def test_a_row_reports_every_cell() -> None:
    body, problems = parse_row(
        {"external_id": "", "full_name": "", "address": "x", "born": "yesterday", "sex": "?",
         "contact_name": "Li", "contact_phone": "1", "contact_holds_key": "maybe"},
        "v1",
    )  # fmt: skip
    assert body is None
    assert set(problems) == {
        "external_id", "full_name", "born", "sex", "contact_phone", "contact_holds_key",
    }  # fmt: skip
