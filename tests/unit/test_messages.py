"""Unit tests of the notification words (alerts.notify.messages): every kind, notice type,
severity and outcome in both languages; times in the deployment's zone, labelled."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.model import Outcome, Severity, Status
from alerts.notify import messages
from alerts.notify.channels import Notice, headline, message_text, notice_body
from tests.unit.test_channels import make_alert

CJK = re.compile(r"[\u4e00-\u9fff]")
ROOT = Path(__file__).resolve().parents[2]


def zh_notice(**changes: object) -> Notice:
    return Notice(
        make_alert(elder_name="王芳", village="小河村", **changes),
        0,
        17,
        "https://care.example/console",
        "alert",
        "https://care.example/ack/tok",
        "zh",
        "幸福路 1 号",
    )


def test_every_key_has_both_languages_and_the_chinese_is_chinese() -> None:
    for key in messages.all_keys():
        en, zh = messages.say("en", key), messages.say("zh", key)
        assert en, key
        assert zh, key
        if not key.startswith(("severity.", "outcome.none", "kind.other", "headline.alert")):
            assert CJK.search(zh), f"{key}: {zh!r} is not Chinese"


def test_every_kind_raised_in_the_code_has_words() -> None:
    """Each kind in the table is one the code raises (no invented kinds), and the kinds the
    detectors, care and the self-check name in their sources are all in the table."""
    sources = "\n".join(
        p.read_text() for p in (ROOT / "alerts").rglob("*.py") if "notify" not in p.parts
    )
    for kind in messages.KINDS:
        assert f'"{kind}"' in sources, kind
        assert messages.what("zh", kind) != messages.say("zh", "kind.other", kind=kind)
    assert messages.what("en", "brand_new_kind") == "alert: brand_new_kind"
    assert messages.what("zh", "brand_new_kind") == "警报：brand_new_kind"


def test_severities_and_outcomes() -> None:
    assert [messages.severity("zh", s.value) for s in Severity] == ["紧急", "警告", "提示"]
    assert [messages.severity("en", s.value) for s in Severity] == ["CRITICAL", "WARNING", "INFO"]
    for o in Outcome:
        assert o.value in messages.OUTCOMES
        assert CJK.search(messages.outcome("zh", o.value)), o
        assert messages.outcome("en", o.value) != o.value or o.value == "other"
    assert messages.outcome("zh", None) == "-"


def test_time_is_in_the_deployment_zone_and_labelled() -> None:
    at = datetime(2026, 12, 7, 13, 3, tzinfo=UTC)
    assert messages.when(at, "Asia/Shanghai", "zh") == "2026-12-07 21:03 (北京时间)"
    assert messages.when(at, "Asia/Shanghai", "en") == "2026-12-07 21:03 (Asia/Shanghai)"
    assert messages.when(at, "Asia/Urumqi", "zh") == "2026-12-07 19:03 (Asia/Urumqi)"
    assert messages.when(at, "Europe/London", "en") == "2026-12-07 13:03 (Europe/London)"


def test_a_chinese_alert_names_the_elder_the_address_what_and_when() -> None:
    notice = zh_notice()
    assert headline(notice) == "【紧急】王芳（幸福路 1 号，小河村）：按下了紧急呼叫按钮"
    text = message_text(notice)
    assert "老人：王芳\n" in text
    assert "地址：幸福路 1 号，小河村\n" in text
    assert "情况：按下了紧急呼叫按钮 (紧急)\n" in text
    assert "详情：SOS button pressed\n" in text  # the detector's words, as a detail
    assert "时间：2026-11-23 21:00 (北京时间)\n" in text
    assert "我来处理（确认接手）：https://care.example/ack/tok\n" in text
    assert "在有人确认接手之前" in text


@pytest.mark.parametrize("locale", ["en", "zh"])
@pytest.mark.parametrize("kind", messages.NOTICES)
def test_every_notice_type_reads_in_both_languages(kind: str, locale: str) -> None:
    base = zh_notice(
        status=Status.RESOLVED if kind in ("resolved", "cleared", "cancelled") else Status.OPEN,
        acknowledged_by_name="李强",
        outcome="visited_fine" if kind == "resolved" else None,
    )
    notice = Notice(base.alert, 1, 17, base.console_url, kind, base.ack_url, locale, base.address)
    line = headline(notice)
    assert "{" not in line
    assert "王芳" in line
    words = line
    for name in ("王芳", "李强", "幸福路 1 号", "小河村"):
        words = words.replace(name, "")
    assert bool(CJK.search(words)) == (locale == "zh")
    if kind == "acknowledged":
        assert "李强" in line
    if kind == "resolved":
        assert ("已探访，一切正常" if locale == "zh" else "visited, all fine") in line
    others = {headline(Notice(base.alert, 1, 17, "", k, None, locale)) for k in messages.NOTICES}
    assert len(others) == len(messages.NOTICES)  # each type says something of its own
    # Only an alert carries the acknowledge link and the escalation warning.
    assert ("tok" in message_text(notice)) == (kind == "alert")


def test_webhook_body_keeps_version_1_and_adds_the_localized_text() -> None:
    body = notice_body(zh_notice())
    assert body["version"] == 1
    assert body["locale"] == "zh"
    assert body["headline"].startswith("【紧急】王芳")
    assert body["text"] == message_text(zh_notice())
    assert body["alert"]["address"] == "幸福路 1 号"
    assert body["alert"]["what"] == "按下了紧急呼叫按钮"
    assert body["alert"]["summary"] == "SOS button pressed"  # unchanged field


def test_pieces_for_templates() -> None:
    p = messages.pieces(zh_notice())
    assert p == {
        "name": "王芳",
        "address": "幸福路 1 号，小河村",
        "what": "按下了紧急呼叫按钮",
        "time": "2026-11-23 21:00 (北京时间)",
        "link": "https://care.example/ack/tok",
        "status": "紧急",
        "by": "工作人员",
    }


def test_locale_falls_back_to_the_deployment() -> None:
    assert messages.locale_of("en", "zh") == "en"
    assert messages.locale_of(None, "zh") == "zh"
    assert messages.locale_of("fr", "en") == "en"
    assert messages.locale_of("", "xx") == "zh"
