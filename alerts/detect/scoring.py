"""The numbers of the evaluation on recorded homes (alerts.detect.real_homes): false alarms
of the untouched replay (per kind, per episode, per context the resident was in), and the
detection of injected collapses (missed within 12 h / 24 h, delay, excess over the natural
gap), per home or pooled over homes, JSON-ready.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.detect.dataset import CONTEXTS, UNANNOTATED, Dataset, context_at, context_spans
from alerts.model import Category, Signal

# Alerts that mean "this elder may be lying somewhere": they detect an injected collapse.
COLLAPSE_KINDS = frozenset(
    {
        "inactivity",
        "not_up",
        "bathroom_too_long",
        "out_of_bed_night",
        "not_back",
        "night_wandering",
    }
)
# The target: no injected collapse without an alert within 12 h; and later than 24 h.
MISS_WITHIN = timedelta(hours=12)
MISS_LATE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Injection:
    """One injected collapse: every event after `at` dropped.

    `seen_again` is when the untouched recording next sees the resident (for an instant out,
    the return): before it, nothing can tell a collapse from the quiet spell that was. The
    alert is the first of a collapse kind after `at` in the run without the later events.
    """

    at: datetime
    context: str
    seen_again: datetime | None
    alert_at: datetime | None = None
    alert_kind: str | None = None

    @property
    def gap_s(self) -> float:
        """The natural gap: from the instant to the next sighting (inf: none)."""
        return math.inf if self.seen_again is None else (self.seen_again - self.at).total_seconds()

    @property
    def delay_s(self) -> float | None:
        """From the instant to the alert."""
        return None if self.alert_at is None else (self.alert_at - self.at).total_seconds()

    @property
    def excess_s(self) -> float | None:
        """From the next sighting to the alert; 0 for an alert before it."""
        if self.alert_at is None:
            return None
        if self.seen_again is None:
            return 0.0
        return max(0.0, (self.alert_at - self.seen_again).total_seconds())

    @property
    def before_seen_again(self) -> bool:
        """Alerted before the untouched recording saw the resident again."""
        return self.alert_at is not None and (
            self.seen_again is None or self.alert_at < self.seen_again
        )

    def missed(self, within: timedelta) -> bool:
        """No alert within `within` of the instant."""
        return self.alert_at is None or self.alert_at - self.at > within


@dataclass(slots=True)
class RealHomeReport:
    """Measured on one recorded home."""

    home_id: str
    days: float
    false_alarms: dict[str, int] = field(default_factory=dict)  # per non-technical kind
    technical: int = 0
    # Within the span the resident's annotations cover (where they say where they were):
    # its days, and the false alarms raised in it per non-technical kind.
    annotated_days: float = 0.0
    annotated_false_alarms: dict[str, int] = field(default_factory=dict)
    # Per context (CONTEXTS, and UNANNOTATED for the rest of the recording): the days the
    # resident spent in it, and the untouched replay's non-technical alerts per kind, by
    # where the resident was when what they alert on began (`since`, else the alert time).
    context_days: dict[str, float] = field(default_factory=dict)
    context_false_alarms: dict[str, dict[str, int]] = field(default_factory=dict)
    # Non-technical alerts with the repeats about the same episode (same kind, same `since`:
    # `not_back` again at the cap and every 11.5 h of one absence) counted once: what the
    # live alert queue holds while the first is open (a repeat adds evidence to it).
    false_alarm_episodes: int = 0
    injections: list[Injection] = field(default_factory=list)

    @property
    def non_technical(self) -> int:
        """False alarms of every non-technical kind."""
        return sum(self.false_alarms.values())

    @property
    def injected(self) -> int:
        """Injected collapses."""
        return len(self.injections)

    @property
    def detected(self) -> int:
        """Injected collapses alerted on within the tail run after them (24 h)."""
        return sum(i.alert_at is not None for i in self.injections)

    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-ready."""
        return score([self], self.home_id)


def per_day(count: int, days: float) -> float | None:
    """`count` per day over `days` (None: no days)."""
    return round(count / days, 3) if days > 0 else None


def _hours(values: list[float], how: Any) -> float | None:
    return round(how(values) / 3600, 2) if values else None


def _minutes(values: list[float], how: Any) -> float | None:
    return round(how(values) / 60, 1) if values else None


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.9 * (len(ordered) - 1))]


def injection_numbers(injections: list[Injection]) -> dict[str, Any]:
    """Detection of injected collapses: missed, delay, and excess over the natural gap.

    `missed_12h` counts every instant; `missed_12h_gap_le_12h` only those the untouched
    recording saw the resident again within 12 h of (`gap_over_12h` are the others: there an
    alert within 12 h is also one on the untouched data). Delay and excess are over the
    instants alerted on within 24 h."""
    alerted = [i for i in injections if i.alert_at is not None and not i.missed(MISS_LATE)]
    delays = [i.delay_s for i in alerted if i.delay_s is not None]
    excess = [i.excess_s for i in alerted if i.excess_s is not None]
    gaps = [i.gap_s for i in injections if math.isfinite(i.gap_s)]
    short = [i for i in injections if i.gap_s <= MISS_WITHIN.total_seconds()]
    kinds: dict[str, int] = {}
    for i in alerted:
        kinds[str(i.alert_kind)] = kinds.get(str(i.alert_kind), 0) + 1
    return {
        "injected": len(injections),
        "missed_12h": sum(i.missed(MISS_WITHIN) for i in injections),
        "injected_gap_le_12h": len(short),
        "missed_12h_gap_le_12h": sum(i.missed(MISS_WITHIN) for i in short),
        "gap_over_12h": len(injections) - len(short),
        "missed_24h": sum(i.missed(MISS_LATE) for i in injections),
        "alert_before_seen_again": sum(i.before_seen_again for i in alerted),
        "natural_gap_median_h": _hours(gaps, statistics.median),
        "delay_mean_h": _hours(delays, statistics.fmean),
        "delay_median_h": _hours(delays, statistics.median),
        "excess_mean_min": _minutes(excess, statistics.fmean),
        "excess_median_min": _minutes(excess, statistics.median),
        "excess_p90_min": _minutes(excess, _p90),
        "alert_kinds": dict(sorted(kinds.items())),
    }


def score(reports: list[RealHomeReport], home: str) -> dict[str, Any]:
    """The numbers of `reports` pooled (one home, or several as if one), JSON-ready: false
    alarms a day overall and per context, and detection of the injected collapses overall
    and per context. A context's `false_alarms_per_day` is per day of the whole recording
    (the contexts' add up to the total); `false_alarms_per_context_day` per day spent in it."""
    days = sum(r.days for r in reports)
    counts: dict[str, int] = {}
    annotated: dict[str, int] = {}
    for r in reports:
        for k, v in r.false_alarms.items():
            counts[k] = counts.get(k, 0) + v
        for k, v in r.annotated_false_alarms.items():
            annotated[k] = annotated.get(k, 0) + v
    annotated_days = sum(r.annotated_days for r in reports)
    contexts: dict[str, dict[str, Any]] = {}
    for ctx in (*CONTEXTS, UNANNOTATED):
        ctx_days = sum(r.context_days.get(ctx, 0.0) for r in reports)
        n = sum(sum(r.context_false_alarms.get(ctx, {}).values()) for r in reports)
        contexts[ctx] = {
            "days": round(ctx_days, 2),
            "false_alarms": n,
            "false_alarms_per_day": per_day(n, days),
            "false_alarms_per_context_day": per_day(n, ctx_days),
        }
        if ctx != UNANNOTATED:
            contexts[ctx] |= injection_numbers(
                [i for r in reports for i in r.injections if i.context == ctx]
            )
    return {
        "home": home,
        "days": round(days, 1),
        "false_alarms": dict(sorted(counts.items())),
        "false_alarms_per_day": per_day(sum(counts.values()), days),
        "false_alarm_episodes_per_day": per_day(sum(r.false_alarm_episodes for r in reports), days),
        "collapse_false_alarms_per_day": per_day(
            sum(v for k, v in counts.items() if k in COLLAPSE_KINDS), days
        ),
        "technical": sum(r.technical for r in reports),
        "annotated_days": round(annotated_days, 1),
        "annotated_false_alarms": dict(sorted(annotated.items())),
        "annotated_false_alarms_per_day": per_day(sum(annotated.values()), annotated_days),
        **injection_numbers([i for r in reports for i in r.injections]),
        "contexts": contexts,
    }


def false_alarms(signals: Iterable[Signal]) -> tuple[dict[str, int], int]:
    """Count untouched-replay alerts per non-technical kind, and technical ones."""
    counts: dict[str, int] = {}
    technical = 0
    for s in signals:
        if s.category is Category.TECHNICAL:
            technical += 1
        else:
            counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts, technical


def episodes(signals: Iterable[Signal]) -> int:
    """Non-technical alerts, those about the same episode (home, kind, `since`) once."""
    return len(
        {
            (s.home_id, s.kind, alert_began(s))
            for s in signals
            if s.category is not Category.TECHNICAL
        }
    )


def alert_began(signal: Signal) -> datetime:
    """When what an alert is about began: its evidence's `since`, else the alert time."""
    since = signal.evidence.get("since")
    if isinstance(since, str):
        try:
            at = datetime.fromisoformat(since)
        except ValueError:
            return signal.event_at
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return signal.event_at


def false_alarms_by_context(
    ds: Dataset, signals: Iterable[Signal]
) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """The days of the recording per context, and its non-technical alerts per context and
    kind, by the context at which what they alert on began (UNANNOTATED: outside the span)."""
    first, last = ds.readings[0].ts, ds.readings[-1].ts
    days = {ctx: 0.0 for ctx in (*CONTEXTS, UNANNOTATED)}
    days[UNANNOTATED] = (last - first).total_seconds() / 86400
    if ds.annotated is not None:
        for ctx, spans in context_spans(
            ds, max(first, ds.annotated[0]), min(last, ds.annotated[1])
        ).items():
            days[ctx] = sum((b - a).total_seconds() for a, b in spans) / 86400
            days[UNANNOTATED] -= days[ctx]
    counts: dict[str, dict[str, int]] = {ctx: {} for ctx in days}
    for s in signals:
        if s.category is Category.TECHNICAL:
            continue
        began = alert_began(s)
        ctx = UNANNOTATED
        if ds.annotated is not None and ds.annotated[0] <= began < ds.annotated[1]:
            ctx = context_at(ds, began)
        counts[ctx][s.kind] = counts[ctx].get(s.kind, 0) + 1
    return days, counts
