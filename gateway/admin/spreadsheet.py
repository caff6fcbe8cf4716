"""Reading a village's register: a CSV (UTF-8 or GB18030, as Excel in China saves it) or an
Excel workbook (.xlsx, its first sheet, with openpyxl), with English or Chinese headers,
into one typed row per elder and the problems of each cell (row number, column, message)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the import file: its key, English and Chinese headers, whether every
    row needs it, and what it holds."""

    key: str
    en: str
    zh: str
    required: bool
    help: str


COLUMNS: tuple[Column, ...] = (
    Column("external_id", "external_id", "编号", True, "the office's own id of the elder"),
    Column("full_name", "full_name", "姓名", True, "the elder's name"),
    Column("address", "address", "地址", True, "the home's address"),
    Column("home_id", "home_id", "住户编号", False, "device topic id of the home (made up)"),
    Column("born", "born", "出生日期", False, "date of birth, 1942-03-01"),
    Column("sex", "sex", "性别", False, "女 / 男 / female / male"),
    Column("phone", "phone", "电话", False, "the elder's phone"),
    Column("language", "language", "语言", False, "zh (default), en, yue..."),
    Column("lives_alone", "lives_alone", "独居", False, "是 / 否 / yes / no (default yes)"),
    Column("conditions", "conditions", "健康状况", False, "separated by ; or 、"),
    Column("notes", "notes", "备注", False, "what a visitor should know"),
    Column("lat", "lat", "纬度", False, "latitude, with lon"),
    Column("lon", "lon", "经度", False, "longitude, with lat"),
    Column("timezone", "timezone", "时区", False, "default: the deployment's"),
    Column("contact_name", "contact_name", "紧急联系人", False, "first emergency contact"),
    Column("contact_relation", "contact_relation", "联系人关系", False, "son, neighbour..."),
    Column("contact_phone", "contact_phone", "联系人电话", False, "needed with a contact"),
    Column("contact_holds_key", "contact_holds_key", "联系人有钥匙", False, "是 / 否"),
    Column("contact2_name", "contact2_name", "紧急联系人2", False, "second contact"),
    Column("contact2_relation", "contact2_relation", "联系人2关系", False, ""),
    Column("contact2_phone", "contact2_phone", "联系人2电话", False, ""),
    Column("contact2_holds_key", "contact2_holds_key", "联系人2有钥匙", False, ""),
    Column("consent_date", "consent_date", "知情同意日期", False,
           "the day the signed consent form was given (records consent to monitoring)"),
    Column("consent_guardian", "consent_guardian", "监护人", False,
           "empty: the elder signed; else the guardian who signed"),
    Column("consent_guardian_relation", "consent_guardian_relation", "监护人关系", False,
           "needed with a guardian: son, daughter..."),
    Column("consent_family", "consent_family", "同意家属查看", False,
           "是 / 否: consent to share with the family (default no)"),
    Column("consent_reference", "consent_reference", "同意书编号", False,
           "the paper form's number"),
)  # fmt: skip
_BY_HEADER = {_h: c for c in COLUMNS for _h in (c.en.lower(), c.zh, c.en.lower().replace("_", " "))}


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong in one cell (or row, or the header when row is 1)."""

    row: int
    column: str
    message: str


@dataclass(frozen=True, slots=True)
class Sheet:
    """The rows of a file: each data row's number and its cells by column key, the header
    as written (key -> header) and the problems found reading it."""

    rows: list[tuple[int, dict[str, Any]]]
    headers: dict[str, str]
    problems: list[Problem]


def _cells(data: bytes, filename: str) -> list[list[Any]]:
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith((".xlsx", ".xlsm")):
        import openpyxl  # lazily: only imports need it

        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            return [list(r) for r, _ in zip(sheet.iter_rows(values_only=True),
                                            range(MAX_ROWS + 2), strict=False)]  # fmt: skip
        finally:
            book.close()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError("the file is neither UTF-8 nor GB18030 text")
    return [list(r) for r, _ in zip(csv.reader(io.StringIO(text)), range(MAX_ROWS + 2),
                                    strict=False)]  # fmt: skip


def read_sheet(data: bytes, filename: str) -> Sheet:
    """The rows of a CSV or .xlsx file (row 1 the header), with every problem of the header
    and the file itself; cells are checked later (`gateway.admin.importing`)."""
    if len(data) > MAX_BYTES:
        return Sheet([], {}, [Problem(0, "", f"the file is over {MAX_BYTES // 1024 // 1024} MB")])
    try:
        cells = _cells(data, filename)
    except Exception as exc:  # a broken workbook raises many kinds of error
        return Sheet([], {}, [Problem(0, "", f"not a readable .xlsx or CSV file: {exc}")])
    if not cells:
        return Sheet([], {}, [Problem(1, "", "the file is empty: row 1 must hold the headers")])
    problems: list[Problem] = []
    index: dict[int, str] = {}
    headers: dict[str, str] = {}
    for i, raw in enumerate(cells[0]):
        header = "" if raw is None else str(raw).strip()
        if not header:
            continue
        column = _BY_HEADER.get(header.lower()) or _BY_HEADER.get(header)
        if column is None:
            problems.append(Problem(1, header, "unknown column (see the list of columns)"))
        elif column.key in headers:
            problems.append(Problem(1, header, "this column appears twice"))
        else:
            index[i] = column.key
            headers[column.key] = header
    for c in COLUMNS:
        if c.required and c.key not in headers:
            problems.append(Problem(1, f"{c.en} / {c.zh}", "required column missing"))
    if len(cells) > MAX_ROWS + 1:
        problems.append(Problem(MAX_ROWS + 2, "", f"more than {MAX_ROWS} rows: split the file"))
    rows = []
    for number, raw_row in enumerate(cells[1 : MAX_ROWS + 1], start=2):
        values = {key: raw_row[i] for i, key in index.items() if i < len(raw_row)}
        if all(v is None or str(v).strip() == "" for v in values.values()):
            continue  # blank line
        rows.append((number, values))
    return Sheet(rows, headers, problems)


def text(value: Any) -> str:
    """A cell as text: a number without a spurious ".0" (phones typed as numbers)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    return str(value).strip()


_YES = {"yes", "y", "true", "1", "是", "有", "√", "✓"}
_NO = {"no", "n", "false", "0", "否", "无", "没有"}


def yes_no(value: Any, default: bool) -> bool:
    """是 / 否, yes / no, true / false, 1 / 0 (empty: `default`)."""
    if isinstance(value, bool):
        return value
    t = text(value).lower()
    if not t:
        return default
    if t in _YES:
        return True
    if t in _NO:
        return False
    raise ValueError(f"{t!r} is not yes or no (是 / 否)")


_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def a_date(value: Any) -> date | None:
    """A date cell, or text like 1942-03-01, 1942/3/1, 1942.3.1 or 1942年3月1日."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = _DATE.match(text(value))
    if match is None:
        raise ValueError(f"{text(value)!r} is not a date: write 1942-03-01")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise ValueError(f"{text(value)!r} is not a date: {exc}") from None


_SEX = {"女": "female", "f": "female", "female": "female", "男": "male", "m": "male",
        "male": "male", "": ""}  # fmt: skip


def sex(value: Any) -> str:
    """女 / 男, female / male, f / m, or empty."""
    found = _SEX.get(text(value).lower())
    if found is None:
        raise ValueError(f"{text(value)!r} is not 女 / 男 / female / male")
    return found


def conditions(value: Any) -> list[str]:
    """Conditions separated by ; ； 、 or a line break."""
    return [c.strip() for c in re.split(r"[;；、\n]", text(value)) if c.strip()]
