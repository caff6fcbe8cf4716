"""The words of every notification in English and Simplified Chinese, chosen per recipient.

A notice is written in its recipient's locale (users.locale; the deployment's
`AlertSettings.locale` for someone with none): the elder's name, the home's address, what
happened (from the alert's kind, not the detector's English summary, which may follow as a
detail), when (in the deployment's time zone, labelled) and, for staff, the acknowledge link.
The table is key -> (English, Chinese), like the pages' gateway/i18n.py (which alerts may not
import); the acknowledge page uses it too.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.notify.notice import Notice

LOCALES = ("en", "zh")
"""Supported languages: English, Simplified Chinese."""

KINDS = (
    "sos", "fall", "smoke", "gas", "co",
    "inactivity", "not_up", "bathroom_too_long", "out_of_bed_night", "night_wandering",
    "no_utility_use", "not_back", "low_activity",
    "indoor_cold", "indoor_heat", "vitals",
    "low_battery", "device_silent", "hub_offline",
    "care_visits", "no_readings", "ingest_stalled",
)  # fmt: skip
"""Every alert kind the detectors, the care stage and the self-check raise."""

NOTICES = ("alert", "acknowledged", "cancelled", "cleared", "resolved")
"""Every notice type (what a notification says)."""

OUTCOMES = (
    "false_alarm", "visited_fine", "needed_help", "ambulance", "hospital", "other",
    "cleared_by_data", "cancelled_by_elder",
)  # fmt: skip

_WORDS: dict[str, tuple[str, str]] = {
    # What happened, by alert kind.
    "kind.sos": ("SOS button pressed", "按下了紧急呼叫按钮"),
    "kind.fall": ("a fall was detected", "检测到跌倒"),
    "kind.smoke": ("smoke alarm", "烟雾报警"),
    "kind.gas": ("gas leak alarm", "燃气泄漏报警"),
    "kind.co": ("carbon monoxide alarm", "一氧化碳报警"),
    "kind.inactivity": (
        "no movement for unusually long (possible collapse)",
        "长时间没有活动（可能跌倒或晕倒）",
    ),
    "kind.not_up": ("not up by the usual time", "过了平常起床时间仍未起床"),
    "kind.bathroom_too_long": ("in the bathroom unusually long", "在卫生间停留时间过长"),
    "kind.out_of_bed_night": ("out of bed too long at night", "夜间离床时间过长"),
    "kind.night_wandering": ("went out at night and has not come back", "夜间外出未归"),
    "kind.no_utility_use": ("no water or power used for unusually long", "长时间未用水或用电"),
    "kind.not_back": ("has not come back home as expected", "外出后未按时回家"),
    "kind.low_activity": ("activity far below usual today", "今日活动量远低于平常"),
    "kind.indoor_cold": ("too cold indoors for too long", "室内温度过低且持续过久"),
    "kind.indoor_heat": ("too hot indoors for too long", "室内温度过高且持续过久"),
    "kind.vitals": ("vital signs out of the usual range", "生命体征超出平常范围"),
    "kind.low_battery": ("a device's battery is low", "设备电量低"),
    "kind.device_silent": ("a device has stopped reporting", "设备已停止上报"),
    "kind.hub_offline": ("the home hub is offline", "家庭网关离线"),
    "kind.care_visits": ("fewer than three staff visits this week", "本周探访少于三次"),
    "kind.no_readings": ("no readings arrive from any home", "所有住户都没有数据上报"),
    "kind.ingest_stalled": ("the data intake has stalled", "数据接收已停止"),
    "kind.other": ("alert: {kind}", "警报：{kind}"),
    # Severities.
    "severity.critical": ("CRITICAL", "紧急"),
    "severity.warning": ("WARNING", "警告"),
    "severity.info": ("INFO", "提示"),
    # Outcomes.
    "outcome.false_alarm": ("false alarm", "误报"),
    "outcome.visited_fine": ("visited, all fine", "已探访，一切正常"),
    "outcome.needed_help": ("needed help", "需要帮助"),
    "outcome.ambulance": ("ambulance called", "已叫救护车"),
    "outcome.hospital": ("taken to hospital", "已送医院"),
    "outcome.other": ("other", "其他"),
    "outcome.cleared_by_data": ("cleared by the data", "数据显示已恢复"),
    "outcome.cancelled_by_elder": ("cancelled by the elder", "老人已取消"),
    "outcome.none": ("-", "-"),
    # Headlines, by notice type.
    "headline.alert": (
        "[{severity}] {what} - {name} ({place})",
        "【{severity}】{name}（{place}）：{what}",
    ),
    "headline.acknowledged": (
        "Acknowledged by {by}: {what} - {name}",
        "{by}已接手：{name}，{what}",
    ),
    "headline.cancelled": ("Cancelled by the elder: {what} - {name}", "老人已取消：{name}，{what}"),
    "headline.cleared": ("Cleared by the data: {what} - {name}", "数据显示已恢复：{name}，{what}"),
    "headline.resolved": (
        "Resolved ({outcome}): {what} - {name}",
        "已处理完毕（{outcome}）：{name}，{what}",
    ),
    # Short status words (SMS follow-ups).
    "status.acknowledged": ("acknowledged by {by}", "已由{by}接手"),
    "status.cancelled": ("cancelled by the elder", "老人已取消"),
    "status.cleared": ("cleared by the data", "数据显示已恢复"),
    "status.resolved": ("resolved: {outcome}", "已处理完毕：{outcome}"),
    # Body lines.
    "field.elder": ("Elder", "老人"),
    "field.address": ("Address", "地址"),
    "field.what": ("What", "情况"),
    "field.detail": ("Detail", "详情"),
    "field.when": ("When", "时间"),
    "field.alert": ("Alert", "警报"),
    "alert_ref": ("#{id}, notification round {round}", "#{id}，第{round}轮通知"),
    "ack_line": ("I'll take it (acknowledge): {url}", "我来处理（确认接手）：{url}"),
    "console_line": ("Console: {url}", "工作台：{url}"),
    "repeat_line": (
        "Until someone acknowledges, this alert is repeated and escalated.",
        "在有人确认接手之前，此警报会重复发送并逐级上报。",
    ),
    "someone": ("staff", "工作人员"),
    "the_service": ("the service", "系统"),
    "zone.beijing": ("Beijing time", "北京时间"),
    # The one-click acknowledge page.
    "ack.title": ("Acknowledge alert", "确认接手警报"),
    "ack.button": ("I'll take it", "我来处理"),
    "ack.since": ("since {time}", "发生于 {time}"),
    "ack.taken_title": ("Already taken", "已有人接手"),
    "ack.taken_by": ("{by} owns this alert ({status}).", "{by}已接手此警报（{status}）。"),
    "ack.taken_before": ("{by} already owns this alert.", "{by}已经接手了此警报。"),
    "ack.someone_else": ("someone else", "其他人"),
    "ack.done_title": ("You own this alert", "此警报由您处理"),
    "ack.done_body": (
        "The others have been told, and the home unit says help is on the way.",
        "其他人已收到通知，老人家中的设备会播报“救助人员正在赶来”。",
    ),
    "ack.invalid_title": ("Link not valid", "链接无效"),
    "ack.invalid_body": ("This link is expired or damaged.", "此链接已过期或已损坏。"),
    "ack.missing_title": ("No such alert", "没有这条警报"),
    "ack.missing_body": ("The alert does not exist.", "此警报不存在。"),
    "state.open": ("open", "未处理"),
    "state.acknowledged": ("acknowledged", "已确认"),
    "state.resolved": ("resolved", "已处理"),
}

_BEIJING = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"})


def locale_of(value: str | None, default: str) -> str:
    """A supported locale: `value` when it is one, else `default` (else Chinese)."""
    if value in LOCALES:
        return str(value)
    return default if default in LOCALES else "zh"


def say(locale: str, key: str, **values: object) -> str:
    """The text of `key` in `locale` (English unless "zh"); a missing key is a KeyError."""
    en, zh = _WORDS[key]
    text = zh if locale == "zh" else en
    return text.format(**values) if values else text


def what(locale: str, kind: str) -> str:
    """What happened, from an alert's kind (a kind not in the table is named as is)."""
    key = f"kind.{kind}"
    return say(locale, key) if key in _WORDS else say(locale, "kind.other", kind=kind)


def severity(locale: str, value: str) -> str:
    """A severity's word."""
    key = f"severity.{value}"
    return say(locale, key) if key in _WORDS else value


def outcome(locale: str, value: str | None) -> str:
    """An outcome's words ("-" when none)."""
    key = f"outcome.{value}" if value else "outcome.none"
    return say(locale, key) if key in _WORDS else str(value)


def zone_label(locale: str, timezone: str) -> str:
    """How a time zone is named after a time: 北京时间 for China's zone in Chinese, else its
    IANA name."""
    return say(locale, "zone.beijing") if locale == "zh" and timezone in _BEIJING else timezone


def when(at: datetime, timezone: str, locale: str) -> str:
    """A time in the deployment's time zone, labelled: ``2026-12-07 21:03 (北京时间)``."""
    local = at.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} ({zone_label(locale, timezone)})"


def _name(notice: Notice) -> str:
    a = notice.alert
    return a.elder_name or a.home_id or say(notice.locale, "the_service")


def _place(notice: Notice) -> str:
    parts = [p for p in (notice.address, notice.alert.village) if p]
    return ", ".join(parts) if notice.locale != "zh" else "，".join(parts)


def _by(notice: Notice) -> str:
    return notice.alert.acknowledged_by_name or say(notice.locale, "someone")


def headline(notice: Notice) -> str:
    """One line saying what happened: the alert, or the follow-up, in the notice's locale."""
    loc, a = notice.locale, notice.alert
    kind = notice.notice if notice.notice in NOTICES else "alert"
    return say(
        loc,
        f"headline.{kind}",
        severity=severity(loc, a.severity.value),
        what=what(loc, a.kind),
        name=_name(notice),
        place=_place(notice) or "-",
        by=_by(notice),
        outcome=outcome(loc, a.outcome),
    )


def status_words(notice: Notice) -> str:
    """A follow-up's state in a few words (an alert notice: its severity)."""
    loc = notice.locale
    if notice.notice == "alert" or notice.notice not in NOTICES:
        return severity(loc, notice.alert.severity.value)
    return say(
        loc, f"status.{notice.notice}", by=_by(notice), outcome=outcome(loc, notice.alert.outcome)
    )


def message_text(notice: Notice) -> str:
    """The plain-text body of a notification (e-mail, chat), in the notice's locale."""
    loc, a = notice.locale, notice.alert
    width = 0 if loc == "zh" else 9

    def field(key: str, value: str) -> str:
        label = say(loc, key) + ("：" if loc == "zh" else ":")
        return f"{label:<{width}} {value}" if width else f"{label}{value}"

    lines = [
        headline(notice),
        "",
        field("field.elder", a.elder_name or "-"),
        field("field.address", _place(notice) or "-"),
        field("field.what", f"{what(loc, a.kind)} ({severity(loc, a.severity.value)})"),
        field("field.detail", a.summary),
        field("field.when", when(a.event_at, notice.timezone, loc)),
        field("field.alert", say(loc, "alert_ref", id=a.id, round=notice.round)),
        "",
    ]
    if notice.notice == "alert":
        if notice.ack_url:
            lines.append(say(loc, "ack_line", url=notice.ack_url))
        lines += [say(loc, "console_line", url=notice.console_url), say(loc, "repeat_line")]
    else:
        lines.append(say(loc, "console_line", url=notice.console_url))
    return "\n".join(lines) + "\n"


def pieces(notice: Notice) -> dict[str, str]:
    """The localized pieces an SMS or voice template is filled with: name, address, what,
    time, link (the acknowledge link for staff, else the console's), status, by."""
    loc, a = notice.locale, notice.alert
    return {
        "name": _name(notice),
        "address": _place(notice) or "-",
        "what": what(loc, a.kind),
        "time": when(a.event_at, notice.timezone, loc),
        "link": notice.ack_url or notice.console_url,
        "status": status_words(notice),
        "by": _by(notice),
    }


def all_keys() -> tuple[str, ...]:
    """Every message key (for tests)."""
    return tuple(_WORDS)
