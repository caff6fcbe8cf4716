"""The family page's pure parts: presence rule, daily summary, timeline SVG, languages."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from gateway import access
from gateway.access import Area
from gateway.auth import Principal
from gateway.family import Presence, last_activity, presence, summarise, timeline_svg
from gateway.i18n import all_keys, translate, translator
from gateway.queries.readings import Event
from gateway.rendering import age_text

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def ev(kind: str, minutes_ago: float, value: float = 1.0, room: str = "living room") -> Event:
    metric = {"pir_motion": "motion", "door_contact": "open", "bed_mat": "occupied"}.get(
        kind, "temperature"
    )
    at = NOW - timedelta(minutes=minutes_ago)
    return Event(at, f"d-{kind}-{room}", kind, room, metric, value)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], Presence.UNKNOWN),
        ([ev("pir_motion", 60 * 30)], Presence.UNKNOWN),  # older than a day
        ([ev("pir_motion", 5)], Presence.HOME),
        ([ev("bed_mat", 120, 1.0), ev("pir_motion", 130)], Presence.ASLEEP),
        ([ev("bed_mat", 120, 1.0), ev("pir_motion", 30)], Presence.HOME),  # got up
        ([ev("bed_mat", 120, 0.0), ev("pir_motion", 130)], Presence.HOME),
        ([ev("door_contact", 30, 0.0), ev("pir_motion", 40)], Presence.OUT),
        ([ev("door_contact", 5, 0.0), ev("pir_motion", 40)], Presence.HOME),  # just now
        ([ev("door_contact", 30, 0.0), ev("pir_motion", 20)], Presence.HOME),  # came back
    ],
)
def test_presence_rule(events: list[Event], expected: Presence) -> None:
    assert presence(events, NOW) is expected


def test_last_activity_is_the_latest_sign_of_life() -> None:
    events = [ev("pir_motion", 50, room="kitchen"), ev("door_contact", 10, 0.0, room="hall")]
    found = last_activity([*events, ev("temperature", 1, 21.0)])
    assert found is not None
    assert (found.room, found.kind) == ("hall", "door_contact")
    # A motion sensor rearming (0, 10-30 s after the motion) ends a silence for the
    # detectors, and so it is the last activity here too; its heartbeat and battery are not.
    rearmed = last_activity([ev("pir_motion", 5, 0.0, room="kitchen")])
    assert rearmed is not None
    assert (rearmed.at, rearmed.room) == (NOW - timedelta(minutes=5), "kitchen")
    pir = "d-pir_motion-kitchen"
    upkeep = [Event(NOW, pir, "pir_motion", "kitchen", m, 90.0) for m in ("heartbeat", "battery")]
    assert last_activity(upkeep) is None


def test_summary_counts_the_day() -> None:
    start = NOW - timedelta(hours=12)
    events = sorted(
        [
            ev("bed_mat", 11 * 60, 1.0, "bedroom"),
            ev("bed_mat", 9 * 60, 0.0, "bedroom"),  # two hours in bed
            ev("pir_motion", 8 * 60, room="kitchen"),
            ev("pir_motion", 7 * 60, room="living room"),
            ev("pir_motion", 6 * 60, 0.0, room="living room"),
            ev("door_contact", 5 * 60, 1.0, "hall"),
            ev("temperature", 60, 18.5),
            ev("temperature", 30, 22.0),
        ],
        key=lambda e: e.ts,
    )
    s = summarise(events, start, NOW)
    assert s.motion_events == 2
    assert s.rooms_visited == 2
    assert s.door_openings == 1
    assert s.hours_in_bed == 2.0
    assert (s.temperature_min, s.temperature_max) == (18.5, 22.0)
    assert s.first_activity == NOW - timedelta(hours=11)


def test_timeline_is_valid_svg_and_escapes_names() -> None:
    start = NOW - timedelta(hours=12)
    events = [ev("pir_motion", 60, room="<script>"), ev("bed_mat", 300, 1.0, "bedroom")]
    svg = timeline_svg(sorted(events, key=lambda e: e.ts), start, translator("en"))
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag.endswith("svg")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    rect = ".//{http://www.w3.org/2000/svg}rect"
    assert len(root.findall(rect + "[@class='mark']")) == 2  # a movement, the bed
    assert len(root.findall(rect + "[@class='band']")) == 1  # asleep
    assert len(root.findall(rect + "[@class='key']")) == 5  # the legend
    empty = timeline_svg([], start, translator("zh"))
    assert "今天还没有数据" in empty


def test_every_message_exists_in_both_languages() -> None:
    for key in all_keys():
        en, zh = translate("en", key), translate("zh", key)
        assert en
        assert zh
        assert set(re.findall(r"{\w+}", en)) == set(re.findall(r"{\w+}", zh)), key
    assert translate("zh", "family_title", name="王") == "王今天好吗？"
    assert translate("xx", "sign_in") == "Sign in"
    assert age_text(NOW - timedelta(minutes=125), NOW, translator("zh")) == "2 小时 5 分钟"


def principal(role: str) -> Principal:
    return Principal(1, "u", "U", role, None if role in ("family", "operator") else "v1", "en")


def test_role_table() -> None:
    assert access.may(principal("village_worker"), Area.CARE)
    assert access.may(principal("family"), Area.HEALTH)
    assert not access.may(principal("family"), Area.CARE)
    assert not access.may(principal("operator"), Area.HEALTH)
    assert access.may(principal("operator"), Area.DEVICES)
    assert not access.may(principal("stranger"), Area.HOMES)
