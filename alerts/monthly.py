"""The monthly report for civil affairs, as numbers: per region and month (in the deployment's
time zone), each elder's weeks against the visit rule, alerts by kind and outcome, the time
to acknowledge emergencies against the TSA standard, and false-alarm shares by kind.

The definitions are those of `alerts.kpi` (an alert cancelled by the elder needed no answer
and is left out of the acknowledgement shares; one never acknowledged was not acknowledged in
time; the false-alarm share is over alerts a person resolved) and of `alerts.care` (the visit
target per Monday-Sunday week, away / hospital mode excuses a week, a home newer than the
week is not judged on it). `fetch` reads the database; everything else is pure.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from alerts.care import VISITS_PER_WEEK, away_during, week_start
from alerts.kpi import month_bounds
from alerts.model import Category, Outcome

Conn = psycopg.AsyncConnection[Any]

TSA_WITHIN_60S = Fraction(975, 1000)
"""TSA standard: at least 97.5 % of emergency calls answered within 60 seconds..."""
TSA_WITHIN_180S = Fraction(99, 100)
"""... and at least 99 % within 180 seconds (exact fractions: 39 of 40 is 97.5 %, no float
rounding decides a pass)."""
NOT_ANSWERABLE = frozenset({Outcome.CANCELLED_BY_ELDER.value})
"""Outcomes that needed nobody's answer (left out of the acknowledgement shares)."""
NOT_BY_A_PERSON = frozenset({Outcome.CANCELLED_BY_ELDER.value, Outcome.CLEARED_BY_DATA.value})
"""Outcomes not decided by a person (left out of the false-alarm share)."""


# ------------------------------------------------------------------- the month


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in a time zone: [start, end) as aware datetimes, and its weeks
    (the Mondays of the weeks whose Thursday falls in it, as ISO 8601 counts weeks, so
    every week belongs to exactly one month)."""

    name: str
    zone: ZoneInfo
    start: datetime
    end: datetime
    weeks: tuple[date, ...]


def month_in(name: str, zone: ZoneInfo) -> Month:
    """`2026-11` in `zone`; ValueError (from `alerts.kpi.month_bounds`) if malformed."""
    utc_start, utc_end = month_bounds(name)
    first, nxt = utc_start.date(), utc_end.date()
    start = datetime(first.year, first.month, 1, tzinfo=zone)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=zone)
    monday = week_start(first)
    weeks: list[date] = []
    while monday < nxt:
        if first <= monday + timedelta(days=3) < nxt:
            weeks.append(monday)
        monday += timedelta(days=7)
    return Month(name, zone, start, end, tuple(weeks))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of `day` in `zone`."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


# ------------------------------------------------------------------- visits


class WeekStatus(enum.StrEnum):
    """How an elder's week stands against the visit rule."""

    MET = "met"
    NOT_MET = "not_met"
    AWAY = "away"  # away / hospital mode during the week: not judged
    NOT_ENROLLED = "not_enrolled"  # the home is newer than the week: not judged
    IN_PROGRESS = "in_progress"  # the week has not ended when the report is made


@dataclass(frozen=True, slots=True)
class ElderFact:
    """An elder living alone, as the visit rule needs them."""

    elder_id: str
    name: str
    village_id: str
    village: str
    home_created: datetime
    mode_since: datetime | None
    mode_until: datetime | None


@dataclass(frozen=True, slots=True)
class ElderWeek:
    """One elder's visits in one week."""

    elder_id: str
    name: str
    village: str
    week_start: date
    visits: int
    status: WeekStatus


def elder_weeks(
    month: Month,
    elders: Iterable[ElderFact],
    visits: Iterable[tuple[str, datetime]],
    now: datetime,
) -> list[ElderWeek]:
    """Every elder's weeks of `month` with their visits (`(elder_id, visited_at)`) and
    status, by village, name and week."""
    counts: Counter[tuple[str, date]] = Counter()
    for elder_id, at in visits:
        counts[(elder_id, week_start(at.astimezone(month.zone).date()))] += 1
    rows: list[ElderWeek] = []
    for e in sorted(elders, key=lambda e: (e.village, e.name, e.elder_id)):
        for monday in month.weeks:
            starts = local_midnight(monday, month.zone)
            ends = local_midnight(monday + timedelta(days=7), month.zone)
            n = counts[(e.elder_id, monday)]
            if away_during(e.mode_since, e.mode_until, starts, ends):
                status = WeekStatus.AWAY
            elif e.home_created > starts:
                status = WeekStatus.NOT_ENROLLED
            elif n >= VISITS_PER_WEEK:
                status = WeekStatus.MET  # met already, even in a week not yet over
            elif ends > now:
                status = WeekStatus.IN_PROGRESS
            else:
                status = WeekStatus.NOT_MET
            rows.append(ElderWeek(e.elder_id, e.name, e.village, monday, n, status))
    return rows


# ------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class AlertFact:
    """An alert of the month, as the report needs it."""

    id: int
    kind: str
    category: str
    outcome: str | None
    opened_at: datetime
    acknowledged_at: datetime | None

    @property
    def ack_s(self) -> float | None:
        """Seconds from opening to acknowledgement (None: never acknowledged)."""
        if self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.opened_at).total_seconds()


@dataclass(frozen=True, slots=True)
class KindOutcomes:
    """One kind's alerts of the month by outcome (None: not resolved yet)."""

    kind: str
    category: str
    total: int
    by_outcome: dict[str | None, int]


@dataclass(frozen=True, slots=True)
class FalseAlarms:
    """One kind's false alarms among the alerts a person resolved."""

    kind: str
    resolved_by_a_person: int
    false_alarms: int
    share: float | None


@dataclass(frozen=True, slots=True)
class TsaResult:
    """Time to acknowledge of the month's emergencies against the TSA standard."""

    emergencies: int
    self_cancelled: int
    answerable: int
    acknowledged: int
    within_60s: int
    within_180s: int
    share_60s: float | None
    share_180s: float | None
    median_s: float | None
    slowest_s: float | None

    @property
    def pass_60s(self) -> bool | None:
        """At least 97.5 % within 60 s (None: no emergency needed an answer)."""
        return _meets(self.within_60s, self.answerable, TSA_WITHIN_60S)

    @property
    def pass_180s(self) -> bool | None:
        """At least 99 % within 180 s (None: no emergency needed an answer)."""
        return _meets(self.within_180s, self.answerable, TSA_WITHIN_180S)

    @property
    def passed(self) -> bool | None:
        """Both parts of the standard met."""
        if self.pass_60s is None or self.pass_180s is None:
            return None
        return self.pass_60s and self.pass_180s


def _meets(part: int, whole: int, standard: Fraction) -> bool | None:
    return None if whole == 0 else Fraction(part, whole) >= standard


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def by_kind_and_outcome(alerts: Iterable[AlertFact]) -> list[KindOutcomes]:
    """The alerts per kind (most first) and outcome."""
    groups: dict[str, list[AlertFact]] = {}
    for a in alerts:
        groups.setdefault(a.kind, []).append(a)
    rows = [
        KindOutcomes(kind, g[0].category, len(g), dict(Counter(a.outcome for a in g)))
        for kind, g in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r.total, r.kind))


def false_alarms(alerts: Iterable[AlertFact]) -> list[FalseAlarms]:
    """Per kind: false alarms over the alerts a person resolved (as `alerts.kpi`)."""
    resolved: Counter[str] = Counter()
    false: Counter[str] = Counter()
    kinds: set[str] = set()
    for a in alerts:
        kinds.add(a.kind)
        if a.outcome is not None and a.outcome not in NOT_BY_A_PERSON:
            resolved[a.kind] += 1
            false[a.kind] += a.outcome == Outcome.FALSE_ALARM.value
    return [
        FalseAlarms(k, resolved[k], false[k], _share(false[k], resolved[k])) for k in sorted(kinds)
    ]


def tsa(alerts: Iterable[AlertFact]) -> TsaResult:
    """Emergencies only (category emergency): the share acknowledged within 60 s and 180 s
    of those that needed an answer (an acknowledgement at exactly 60 s is within 60 s)."""
    emergencies = [a for a in alerts if a.category == Category.EMERGENCY.value]
    answerable = [a for a in emergencies if a.outcome not in NOT_ANSWERABLE]
    times = [s for a in answerable if (s := a.ack_s) is not None]
    within_60 = sum(1 for s in times if s <= 60)
    within_180 = sum(1 for s in times if s <= 180)
    return TsaResult(
        emergencies=len(emergencies),
        self_cancelled=len(emergencies) - len(answerable),
        answerable=len(answerable),
        acknowledged=len(times),
        within_60s=within_60,
        within_180s=within_180,
        share_60s=_share(within_60, len(answerable)),
        share_180s=_share(within_180, len(answerable)),
        median_s=_median(times),
        slowest_s=max(times) if len(times) == len(answerable) and times else None,
    )


# ------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    """Everything the workbook and the CSV files show."""

    region_id: str
    region_name: str
    month: Month
    generated_at: datetime
    weeks: list[ElderWeek]
    kinds: list[KindOutcomes]
    tsa: TsaResult
    false_alarms: list[FalseAlarms]
    alerts: int

    @property
    def elders(self) -> int:
        """Elders living alone in the report."""
        return len({w.elder_id for w in self.weeks})

    def week_counts(self) -> Counter[WeekStatus]:
        """How many elder-weeks have each status."""
        return Counter(w.status for w in self.weeks)


def build(
    region_id: str,
    region_name: str,
    month: Month,
    now: datetime,
    elders: Iterable[ElderFact],
    visits: Iterable[tuple[str, datetime]],
    alerts: Sequence[AlertFact],
) -> MonthlyReport:
    """The report from its facts (pure)."""
    return MonthlyReport(
        region_id=region_id,
        region_name=region_name,
        month=month,
        generated_at=now,
        weeks=elder_weeks(month, elders, visits, now),
        kinds=by_kind_and_outcome(alerts),
        tsa=tsa(alerts),
        false_alarms=false_alarms(alerts),
        alerts=len(alerts),
    )


_ELDERS = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(region)s
    UNION
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
SELECT e.id, e.full_name, v.id, v.name, h.created_at, m.since, m.until
FROM elders e JOIN homes h ON h.id = e.home_id JOIN regions v ON v.id = h.village_id
LEFT JOIN home_modes m ON m.home_id = h.id
WHERE e.lives_alone AND h.village_id IN (SELECT id FROM subtree)
"""
_VISITS = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(region)s
    UNION
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
SELECT c.elder_id, c.visited_at FROM care_visits c
JOIN elders e ON e.id = c.elder_id JOIN homes h ON h.id = e.home_id
WHERE h.village_id IN (SELECT id FROM subtree)
  AND c.visited_at >= %(first)s AND c.visited_at < %(last)s
"""
_ALERTS = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(region)s
    UNION
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
SELECT a.id, a.kind, a.category, a.outcome, a.opened_at, a.acknowledged_at
FROM alerts a LEFT JOIN homes h ON h.id = a.home_id
-- An erased elder's alerts count in their village (alerts.village_id) without a home.
WHERE coalesce(h.village_id, a.village_id) IN (SELECT id FROM subtree)
  AND a.opened_at >= %(start)s AND a.opened_at < %(end)s
ORDER BY a.id
"""


class UnknownRegion(LookupError):
    """No region with that id."""


async def fetch(conn: Conn, region_id: str, month: Month, now: datetime) -> MonthlyReport:
    """Read a region's (and its subtree's) month from the database and build its report."""
    cur = await conn.execute("SELECT name FROM regions WHERE id = %s", (region_id,))
    row = await cur.fetchone()
    if row is None:
        raise UnknownRegion(f"no region {region_id!r}")
    region_name = str(row[0])
    first_week = local_midnight(month.weeks[0], month.zone)
    last_week = local_midnight(month.weeks[-1] + timedelta(days=7), month.zone)
    params = {"region": region_id, "start": month.start, "end": month.end}
    cur = await conn.execute(
        _ELDERS,
        params,
    )
    elders = [
        ElderFact(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], r[6])
        for r in await cur.fetchall()
    ]
    cur = await conn.execute(
        _VISITS,
        {**params, "first": first_week, "last": last_week},
    )
    visits = [(str(e), at) for e, at in await cur.fetchall()]
    cur = await conn.execute(
        _ALERTS,
        params,
    )
    alerts = [
        AlertFact(int(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5]) for r in await cur.fetchall()
    ]
    return build(region_id, region_name, month, now, elders, visits, alerts)
