"""The family page's day timeline (gateway.timeline): positions in percent of the local day,
bands for asleep and out of home, and the SVG for the API."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.usual import Event
from gateway.i18n import translator
from gateway.timeline import day_timeline, svg

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 3, 20, tzinfo=TZ)


def at(hh: int, mm: int = 0, day: int = 0) -> datetime:
    return datetime.combine(START.date() + timedelta(days=day), time(hh, mm), tzinfo=TZ)


EVENTS = [
    Event(at(21, 30, -1), "bed_mat", "bedroom", 1.0),
    Event(at(6, 0), "bed_mat", "bedroom", 0.0),
    Event(at(6, 3), "pir_motion", "kitchen", 1.0),
    Event(at(6, 7), "pir_motion", "kitchen", 1.0),
    Event(at(6, 30), "pir_motion", "kitchen", 1.0),
    Event(at(9, 0), "door_contact", "hall", 1.0),
    Event(at(12, 0), "pir_motion", "hall", 1.0),
    Event(at(13, 0), "sos_button", "living room", 1.0),
]


def test_bands_and_marks_in_percent_of_the_local_day() -> None:
    tl = day_timeline(EVENTS, START, at(18), translator("en"), rooms=("bathroom",))
    assert [r.label for r in tl.rows] == ["bedroom", "bathroom", "kitchen", "living room", "hall"]
    bands = {b.kind: (b.left, b.width) for b in tl.bands}
    assert bands["asleep"] == (0.0, 25.0)  # in bed since the evening before, up at 06:00
    assert bands["out"] == (37.5, 12.5)  # the front door at 09:00, back at 12:00
    kitchen = tl.rows[2].marks
    assert [(m.kind, m.left) for m in kitchen] == [("motion", 25.208), ("motion", 27.083)]
    assert kitchen[0].title == "kitchen 06:03–06:07"
    assert tl.rows[3].marks[0].kind == "sos"
    assert tl.rows[1].marks == ()  # the bathroom: shown, nothing today
    assert tl.now == 75.0
    assert [h.label for h in tl.hours if h.major] == ["00:00", "06:00", "12:00", "18:00", "24:00"]


def test_a_past_day_has_no_now_and_the_svg_is_valid() -> None:
    tl = day_timeline(EVENTS, START, at(10, 0, 2), translator("zh"))
    assert tl.now is None
    drawn = svg(tl, translator("zh"), width=380)
    root = ET.fromstring(drawn)  # noqa: S314 - our own output
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "厨房" in texts
    assert "不在家" in texts  # the legend
    sizes = {t.get("font-size") for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert sizes <= {"12", "13", "14"}
