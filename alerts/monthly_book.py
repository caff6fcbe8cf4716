"""The monthly report as an Excel workbook (openpyxl) and as CSV files, in the deployment's
language (zh-CN by default, en) and time zone: one table per sheet, the same tables in both.

Sheets: a cover (region, month, time zone, when it was made, totals, definitions), visits
(each elder's weeks against the rule), alerts by kind and outcome, the emergencies' time to
acknowledge against the TSA standard, and false-alarm shares by kind. Kinds and outcomes are
named with the words of the notices (`alerts.notify.messages`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from alerts.care import VISITS_PER_WEEK
from alerts.model import Outcome
from alerts.monthly import TSA_WITHIN_60S, TSA_WITHIN_180S, MonthlyReport, WeekStatus
from alerts.notify import messages

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_P60 = f"{float(TSA_WITHIN_60S):.1%}"  # 97.5%
_P180 = f"{float(TSA_WITHIN_180S):.0%}"  # 99%

_WORDS: dict[str, tuple[str, str]] = {
    "sheet.cover": ("Cover", "封面"),
    "sheet.visits": ("Visits", "探访"),
    "sheet.alerts": ("Alerts", "告警"),
    "sheet.tsa": ("Emergency response", "紧急响应"),
    "sheet.false": ("False alarms", "误报"),
    "title": ("Monthly report for civil affairs", "民政月度报告"),
    "item": ("Item", "项目"),
    "value": ("Value", "内容"),
    "region": ("Region", "区域"),
    "month": ("Month", "月份"),
    "zone": ("Time zone", "时区"),
    "generated": ("Generated at", "生成时间"),
    "elders": ("Elders living alone", "独居老人数"),
    "weeks_judged": ("Elder-weeks judged", "参与评定的老人周数"),
    "weeks_met": ("Elder-weeks meeting the visit rule", "达到探访要求的老人周数"),
    "weeks_share": ("Share of judged weeks met", "达标周数占比"),
    "alerts_total": ("Alerts", "告警总数"),
    "tsa_result": ("Emergency acknowledgement (TSA standard)", "紧急告警确认时间（TSA标准）"),
    "definitions": ("Definitions", "口径说明"),
    "def.weeks": (
        "Weeks run Monday to Sunday; a week belongs to the month that holds its Thursday"
        " (ISO 8601), so each week is in one report only.",
        "每周从周一到周日；一周归入其周四所在的月份（ISO 8601），每周只计入一份月报。",
    ),
    "def.visits": (
        f"Visit rule: at least {VISITS_PER_WEEK} staff visits per elder living alone per week."
        " A week with away or hospital mode is marked away and not judged; a week that began"
        " before the home was enrolled is not judged; a week not over yet is in progress"
        " unless already met.",
        f"探访要求：每位独居老人每周至少探访{VISITS_PER_WEEK}次。该周内有外出或住院登记的标为"
        "“外出”，不参与评定；住户登记之前开始的周不参与评定；尚未结束的周标为“进行中”（已达标的除外）。",
    ),
    "def.tsa": (
        "Emergencies are alerts of category emergency (SOS, fall, smoke, gas, CO). Time to"
        " acknowledge: from the alert opening to a staff member taking it. TSA standard: at"
        f" least {_P60} within 60 s and {_P180} within 180 s."
        " Alerts the elder cancelled needed no answer and are left out; an alert never"
        " acknowledged counts as not acknowledged in time.",
        "紧急告警指类别为紧急的告警（紧急呼叫、跌倒、烟雾、燃气、一氧化碳）。确认时间：从告警产生到"
        f"工作人员确认接手。TSA标准：至少{_P60}在60秒内确认，且{_P180}"
        "在180秒内确认。老人自行取消的告警无需应答，不计入；从未被确认的告警计为未按时确认。",
    ),
    "def.false": (
        "False-alarm share: alerts resolved as a false alarm over the alerts a person resolved"
        " (not those cleared by the data or cancelled by the elder).",
        "误报比例：处理结果为误报的告警占人工处理的告警的比例（不含数据自动恢复和老人自行取消的）。",
    ),
    "def.time": ("All times are in {zone}.", "所有时间均为{zone}。"),
    "village": ("Village", "村/社区"),
    "elder_id": ("Elder ID", "老人编号"),
    "elder": ("Name", "姓名"),
    "week_from": ("Week from (Monday)", "周起（周一）"),
    "week_to": ("to (Sunday)", "周止（周日）"),
    "visits": ("Visits", "探访次数"),
    "target": ("Target", "要求次数"),
    "result": ("Result", "结果"),
    f"status.{WeekStatus.MET}": ("met", "达标"),
    f"status.{WeekStatus.NOT_MET}": ("not met", "未达标"),
    f"status.{WeekStatus.AWAY}": ("away (not judged)", "外出（不评定）"),
    f"status.{WeekStatus.NOT_ENROLLED}": ("not enrolled yet (not judged)", "尚未登记（不评定）"),
    f"status.{WeekStatus.IN_PROGRESS}": ("in progress", "进行中"),
    "kind_code": ("Kind", "类型代码"),
    "kind": ("What", "告警类型"),
    "category": ("Category", "类别"),
    "total": ("Total", "合计"),
    "unresolved": ("not resolved yet", "尚未处理完毕"),
    "measure": ("Measure", "指标"),
    "standard": ("Standard", "标准"),
    "tsa.emergencies": ("Emergency alerts", "紧急告警数"),
    "tsa.self_cancelled": ("cancelled by the elder (left out)", "老人自行取消（不计入）"),
    "tsa.answerable": ("needing an answer", "需要应答"),
    "tsa.acknowledged": ("acknowledged", "已确认"),
    "tsa.within_60": ("acknowledged within 60 s", "60秒内确认"),
    "tsa.within_180": ("acknowledged within 180 s", "180秒内确认"),
    "tsa.share_60": ("share within 60 s", "60秒内确认比例"),
    "tsa.share_180": ("share within 180 s", "180秒内确认比例"),
    "tsa.median": ("median time to acknowledge (s)", "确认时间中位数（秒）"),
    "tsa.slowest": ("slowest acknowledgement (s)", "最长确认时间（秒）"),
    "tsa.overall": ("TSA standard", "TSA标准总体结果"),
    "pass": ("pass", "达标"),
    "fail": ("fail", "未达标"),
    "none": ("no emergency needed an answer", "本月无需应答的紧急告警"),
    "resolved_by_person": ("resolved by a person", "人工处理数"),
    "false_alarms": ("false alarms", "误报数"),
    "false_share": ("false-alarm share", "误报比例"),
    "cat.emergency": ("emergency", "紧急"),
    "cat.wellbeing": ("wellbeing", "生活状况"),
    "cat.environment": ("environment", "居住环境"),
    "cat.health": ("health", "健康"),
    "cat.technical": ("technical", "设备"),
    "cat.care": ("care", "探访"),
}


def say(locale: str, key: str, **values: object) -> str:
    """The report's words for `key` in `locale` (English unless "zh")."""
    en, zh = _WORDS[key]
    text = zh if locale == "zh" else en
    return text.format(**values) if values else text


class Share(float):
    """A fraction shown as a percentage (0.0 % in the workbook, 97.5% in CSV)."""


Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Table:
    """One sheet: a file-name slug, its title and its rows (the first is the header)."""

    slug: str
    title: str
    rows: list[list[Cell]]
    verdict_column: int | None = None  # a column of pass/fail words to colour


def _verdict(locale: str, value: bool | None) -> str:
    return say(locale, "none") if value is None else say(locale, "pass" if value else "fail")


def _share(value: float | None) -> Share | None:
    return None if value is None else Share(value)


def tables(report: MonthlyReport, locale: str) -> list[Table]:
    """The report's sheets, in order, in `locale`."""

    def s(key: str, **values: object) -> str:
        return say(locale, key, **values)

    zone = report.month.zone.key
    zone_words = messages.zone_label(locale, zone)
    counts = report.week_counts()
    judged = counts[WeekStatus.MET] + counts[WeekStatus.NOT_MET]
    cover: list[list[Cell]] = [
        [s("item"), s("value")],
        [s("title"), f"{report.region_name} · {report.month.name}"],
        [s("region"), f"{report.region_name} ({report.region_id})"],
        [s("month"), report.month.name],
        [s("zone"), f"{zone} ({zone_words})" if zone_words != zone else zone],
        [s("generated"), messages.when(report.generated_at, zone, locale)],
        [s("elders"), report.elders],
        [s("weeks_judged"), judged],
        [s("weeks_met"), counts[WeekStatus.MET]],
        [s("weeks_share"), _share(None if judged == 0 else counts[WeekStatus.MET] / judged)],
        [s("alerts_total"), report.alerts],
        [s("tsa_result"), _verdict(locale, report.tsa.passed)],
        [None, None],
        [s("definitions"), None],
    ]
    cover += [[None, s(key)] for key in ("def.weeks", "def.visits", "def.tsa", "def.false")]
    cover.append([None, s("def.time", zone=zone_words)])

    visits: list[list[Cell]] = [
        [s("village"), s("elder_id"), s("elder"), s("week_from"), s("week_to"), s("visits"),
         s("target"), s("result")],
    ]  # fmt: skip
    for w in report.weeks:
        sunday = w.week_start + timedelta(days=6)
        visits.append(
            [w.village, w.elder_id, w.name, w.week_start.isoformat(), sunday.isoformat(),
             w.visits, VISITS_PER_WEEK, s(f"status.{w.status}")]
        )  # fmt: skip

    outcomes = [o.value for o in Outcome]
    alerts: list[list[Cell]] = [
        [s("kind_code"), s("kind"), s("category"), s("total"),
         *(messages.outcome(locale, o) for o in outcomes), s("unresolved")],
    ]  # fmt: skip
    for k in report.kinds:
        row: list[Cell] = [k.kind, messages.what(locale, k.kind), s(f"cat.{k.category}"), k.total]
        row += [k.by_outcome.get(o, 0) for o in outcomes]
        row.append(k.by_outcome.get(None, 0))
        alerts.append(row)

    t = report.tsa
    tsa: list[list[Cell]] = [
        [s("measure"), s("value"), s("standard"), s("result")],
        [s("tsa.emergencies"), t.emergencies, None, None],
        [s("tsa.self_cancelled"), t.self_cancelled, None, None],
        [s("tsa.answerable"), t.answerable, None, None],
        [s("tsa.acknowledged"), t.acknowledged, None, None],
        [s("tsa.within_60"), t.within_60s, None, None],
        [s("tsa.within_180"), t.within_180s, None, None],
        [s("tsa.share_60"), _share(t.share_60s), f"≥ {_P60}",
         _verdict(locale, t.pass_60s)],
        [s("tsa.share_180"), _share(t.share_180s), f"≥ {_P180}",
         _verdict(locale, t.pass_180s)],
        [s("tsa.median"), _round(t.median_s), None, None],
        [s("tsa.slowest"), _round(t.slowest_s), None, None],
        [s("tsa.overall"), None, None, _verdict(locale, t.passed)],
    ]  # fmt: skip

    false: list[list[Cell]] = [
        [s("kind_code"), s("kind"), s("resolved_by_person"), s("false_alarms"), s("false_share")]
    ]
    for f in report.false_alarms:
        false.append(
            [f.kind, messages.what(locale, f.kind), f.resolved_by_a_person, f.false_alarms,
             _share(f.share)]
        )  # fmt: skip
    return [
        Table("cover", s("sheet.cover"), cover),
        Table("visits", s("sheet.visits"), visits, verdict_column=7),
        Table("alerts", s("sheet.alerts"), alerts),
        Table("emergency_response", s("sheet.tsa"), tsa, verdict_column=3),
        Table("false_alarms", s("sheet.false"), false),
    ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


_GOOD = PatternFill("solid", fgColor="C6EFCE")
_BAD = PatternFill("solid", fgColor="FFC7CE")


def workbook(report: MonthlyReport, locale: str) -> Workbook:
    """The report as an openpyxl workbook: a header row in bold and frozen, shares as
    percentages, pass / fail (met / not met) cells coloured as well as worded."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    good = {say(locale, "pass"), say(locale, f"status.{WeekStatus.MET}")}
    bad = {say(locale, "fail"), say(locale, f"status.{WeekStatus.NOT_MET}")}
    for table in tables(report, locale):
        sheet = book.create_sheet(table.title)
        widths: dict[int, int] = {}
        for row in table.rows:
            sheet.append(list(row))
        for r, row in enumerate(table.rows, start=1):
            for c, value in enumerate(row, start=1):
                cell = sheet.cell(row=r, column=c)
                if isinstance(value, Share):
                    cell.number_format = "0.0%"
                if r == 1:
                    cell.font = Font(bold=True)
                if table.verdict_column is not None and c == table.verdict_column + 1 and r > 1:
                    if value in good:
                        cell.fill = _GOOD
                    elif value in bad:
                        cell.fill = _BAD
                text = "" if value is None else str(value)
                widths[c] = max(widths.get(c, 0), min(_width(text), 60))
        if table.slug == "cover":
            for r in range(1, len(table.rows) + 1):
                sheet.cell(row=r, column=2).alignment = Alignment(wrap_text=True, vertical="top")
        sheet.freeze_panes = "A2"
        for c, w in widths.items():
            sheet.column_dimensions[get_column_letter(c)].width = max(w + 2, 8)
    return book


def _width(text: str) -> int:
    """Display width: a CJK character takes two columns."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def xlsx_bytes(report: MonthlyReport, locale: str) -> bytes:
    """The workbook as the bytes of an .xlsx file."""
    out = io.BytesIO()
    workbook(report, locale).save(out)
    return out.getvalue()


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Share):
        return f"{value:.1%}"
    return str(value)


def write_csv(report: MonthlyReport, locale: str, directory: Path) -> list[Path]:
    """One CSV file per sheet in `directory` (``<region>-<month>-<sheet>.csv``, UTF-8 with a
    byte-order mark so that Excel reads the Chinese); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in tables(report, locale):
        path = directory / f"{report.region_id}-{report.month.name}-{table.slug}.csv"
        with path.open("w", newline="", encoding="utf-8-sig") as f:
            writer = csv.writer(f)
            writer.writerows([_csv_cell(v) for v in row] for row in table.rows)
        paths.append(path)
    return paths
