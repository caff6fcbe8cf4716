"""An elder's day as a timeline, as data the page draws with HTML/CSS (text at CSS sizes,
readable on a phone) and `svg` draws for the API: an hour grid, one row per room (movement,
the front door, the SOS button, the bed), and bands for asleep (in bed) and out of home.
Positions are shares of the local day (the home's time zone, from its local midnight)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from alerts.usual import Sample, bed_spans, out_spans

EVENING_BEFORE = timedelta(hours=12)
"""Read this much before the day too: where the bed and the front door stood at midnight."""
MERGE = timedelta(minutes=6)
"""Movements closer than this in one room are drawn as one stretch."""
MIN_WIDTH = 0.5
"""The narrowest mark, in percent of the day (about 7 minutes)."""
_ROOM_ORDER = ("bedroom", "bathroom", "kitchen", "living room", "hall")
COLOURS = {
    "motion": "#1f5fbf",
    "door": "#9a5b00",
    "bed": "#6b4fa8",
    "sos": "#b42318",
    "asleep": "#e4dcf5",
    "out": "#fde7c2",
}
"""Fill of each mark and band (the page's family.css uses the same)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """Something drawn in a row (or a band across every row), in percent of the day."""

    kind: str
    left: float
    width: float
    title: str


@dataclass(frozen=True, slots=True)
class Row:
    """One room."""

    label: str
    marks: tuple[Mark, ...]


@dataclass(frozen=True, slots=True)
class Hour:
    """A grid label: every 3 hours, `major` every 6 (the ones a phone shows)."""

    left: float
    label: str
    major: bool


@dataclass(frozen=True, slots=True)
class Timeline:
    """The day: rows, bands, the hour grid and where now is (None for a past day)."""

    rows: tuple[Row, ...]
    bands: tuple[Mark, ...]
    hours: tuple[Hour, ...]
    now: float | None
    empty: bool


def _room_key(room: str) -> tuple[int, str]:
    return (_ROOM_ORDER.index(room) if room in _ROOM_ORDER else len(_ROOM_ORDER), room)


def day_timeline(
    events: Sequence[Sample],
    start: datetime,
    now: datetime,
    t: Callable[..., str],
    rooms: Sequence[str] = (),
) -> Timeline:
    """The local day beginning `start` from its readings (oldest first, from
    `EVENING_BEFORE` before it: a bed taken before midnight is an asleep band from 00:00);
    `rooms`: rooms to show even without a reading today (the home's sensors' rooms)."""
    end = start + timedelta(days=1)
    until = min(max(now, start), end)
    day_s = (end - start).total_seconds()

    def pct(at: datetime) -> float:
        return round(100 * min(max((at - start).total_seconds() / day_s, 0.0), 1.0), 3)

    def span(kind: str, a: datetime, b: datetime, title: str) -> Mark:
        left = pct(a)
        return Mark(kind, left, round(max(pct(b) - left, MIN_WIDTH), 3), title)

    def hm(at: datetime) -> str:
        return at.astimezone(start.tzinfo).strftime("%H:%M")

    todays = [e for e in events if start <= e.ts < end]
    marks: dict[str, list[Mark]] = {r: [] for r in rooms}
    run: dict[str, list[datetime]] = {}
    for e in todays:
        if e.kind == "pir_motion" and e.value >= 1.0:
            last = run.get(e.room)
            if last and e.ts - last[1] <= MERGE:
                last[1] = e.ts
            else:
                if last:
                    title = f"{t(e.room)} {hm(last[0])}–{hm(last[1])}"
                    marks.setdefault(e.room, []).append(span("motion", last[0], last[1], title))
                run[e.room] = [e.ts, e.ts]
        elif e.kind == "door_contact" and e.value >= 1.0:
            title = f"{t('legend_door')} {hm(e.ts)}"
            marks.setdefault(e.room, []).append(span("door", e.ts, e.ts, title))
        elif e.kind == "sos_button" and e.value >= 1.0:
            title = f"{t('legend_sos')} {hm(e.ts)}"
            marks.setdefault(e.room, []).append(span("sos", e.ts, e.ts, title))
    for room, (a, b) in run.items():
        marks.setdefault(room, []).append(span("motion", a, b, f"{t(room)} {hm(a)}–{hm(b)}"))
    beds = bed_spans(events, start, until)
    bed_room = next((e.room for e in todays if e.kind == "bed_mat"), "bedroom")
    for a, b in beds:
        title = f"{t('legend_asleep')} {hm(a)}–{hm(b)}"
        marks.setdefault(bed_room, []).append(span("bed", a, b, title))
    bands = [span("asleep", a, b, f"{t('legend_asleep')} {hm(a)}–{hm(b)}") for a, b in beds]
    bands += [
        span("out", a, b, f"{t('legend_out')} {hm(a)}–{hm(b)}")
        for a, b in out_spans(events, start, until)
    ]
    rows = tuple(
        Row(t(room) if room else "—", tuple(sorted(marks[room], key=lambda m: m.left)))
        for room in sorted(marks, key=_room_key)
    )
    hours = tuple(Hour(round(100 * h / 24, 3), f"{h:02d}:00", h % 6 == 0) for h in range(0, 25, 3))
    return Timeline(rows, tuple(bands), hours, pct(now) if start <= now < end else None, not todays)


LEGEND = ("motion", "door", "asleep", "out", "sos")
"""The legend's entries, in order (words: `legend_<kind>`)."""


def svg(tl: Timeline, t: Callable[..., str], width: int = 560) -> str:
    """The timeline as an SVG `width` units wide: labels above each row on narrow widths,
    at the left otherwise; 13-unit text (at `width` 380 drawn 380 px wide, 13 px)."""
    narrow = width < 500
    left = 12 if narrow else 110
    plot_w = width - left - 20
    row_h = 44 if narrow else 30
    top = 24
    height = top + row_h * max(len(tl.rows), 1) + 40  # grown below for the legend's lines

    def x(p: float) -> float:
        return left + plot_w * p / 100

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" font-family="sans-serif" role="img"'
        f' aria-label="{escape(t("timeline"))}" class="timeline">'
    ]
    body_top, body_bottom = top, top + row_h * max(len(tl.rows), 1)
    for b in tl.bands:
        out.append(
            f'<rect class="band" x="{x(b.left):.1f}" y="{body_top}"'
            f' width="{plot_w * b.width / 100:.1f}" height="{body_bottom - body_top}"'
            f' fill="{COLOURS[b.kind]}"><title>'
            f"{escape(b.title)}</title></rect>"
        )
    for h in tl.hours:
        if narrow and not h.major:
            continue
        anchor = "start" if h.left == 0 else ("end" if h.left == 100 else "middle")
        out.append(
            f'<line x1="{x(h.left):.1f}" y1="{top - 4}" x2="{x(h.left):.1f}" y2="{body_bottom}"'
            f' stroke="#c9ced6"/><text x="{x(h.left):.1f}" y="{top - 8}" font-size="13"'
            f' text-anchor="{anchor}" fill="#4a5262">{h.label}</text>'
        )
    if tl.empty:
        out.append(
            f'<text x="{left}" y="{top + 20}" font-size="14" fill="#4a5262">'
            f"{escape(t('no_readings_today'))}</text>"
        )
    for i, row in enumerate(tl.rows):
        y = top + i * row_h
        label_y, bar_y = (y + 16, y + 22) if narrow else (y + 20, y + 6)
        label_x = left if narrow else left - 8
        anchor = "start" if narrow else "end"
        out.append(
            f'<text x="{label_x}" y="{label_y}" font-size="13" text-anchor="{anchor}"'
            f' fill="#1d2330">{escape(row.label)}</text>'
        )
        for m in row.marks:
            w = max(plot_w * m.width / 100, 2.5)
            out.append(
                f'<rect class="mark" x="{x(m.left):.1f}" y="{bar_y}" width="{w:.1f}"'
                f' height="18" rx="2" fill="{COLOURS[m.kind]}">'
                f"<title>{escape(m.title)}</title></rect>"
            )
    if tl.now is not None:
        out.append(
            f'<line x1="{x(tl.now):.1f}" y1="{top - 4}" x2="{x(tl.now):.1f}" y2="{body_bottom}"'
            f' stroke="#b42318" stroke-dasharray="3 2"/>'
        )
    lx, ly = left, body_bottom + 26
    for kind in LEGEND:
        label = t(f"legend_{kind}")
        size = 16 + 7 * len(label.encode()) // (2 if not label.isascii() else 1) + 14
        if lx + size > width and lx > left:
            lx, ly = left, ly + 20
        out.append(
            f'<rect class="key" x="{lx}" y="{ly - 11}" width="12" height="12"'
            f' fill="{COLOURS[kind]}" stroke="#8b93a1" stroke-width="0.5"/>'
            f'<text x="{lx + 16}" y="{ly}"'
            f' font-size="12" fill="#1d2330">{escape(label)}</text>'
        )
        lx += size
    out[0] = out[0].replace(f' {height}"', f' {ly + 10}"', 1)
    out.append("</svg>")
    return "".join(out)
