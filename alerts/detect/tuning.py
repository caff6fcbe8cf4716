"""Choosing the rules' parameters on recorded homes, judged on a home they were not chosen on.

A small grid of variants of `Rules()` (`candidates`) is replayed on every home
(`evaluate_grid`); `choose` picks one from its reports on some homes, and
`leave_one_home_out` picks, for each home, on all the others: that home's numbers with the
variant chosen without it are the held-out numbers, the ones that say how the choice
generalises to a home nobody tuned on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from alerts.detect.rules import MINUTE, Rules
from alerts.detect.scoring import MISS_LATE, MISS_WITHIN, RealHomeReport

if TYPE_CHECKING:
    from alerts.detect.dataset import Dataset


def candidates() -> list[tuple[str, Rules]]:
    """The grid: the inactivity factor, the margin over a room's longest silence and the
    outing factor, each at its default and one step more tolerant (8 variants, the
    defaults first)."""
    base = Rules()
    grid: list[tuple[str, Rules]] = []
    for inactivity in (1.2, 1.4):
        for room_min in (20, 40):
            for outing in (1.25, 1.5):
                rules = replace(
                    base,
                    inactivity=replace(
                        base.inactivity, factor=inactivity, room_margin_s=room_min * MINUTE
                    ),
                    outing=replace(base.outing, factor=outing),
                )
                grid.append((f"inact{inactivity:g}-room{room_min}m-out{outing:g}", rules))
    return grid


@dataclass(frozen=True, slots=True)
class TrainingScore:
    """What `choose` compares, pooled over the training homes."""

    missed_12h: int  # injected collapses seen again within 12 h, not alerted within 12 h
    false_alarms_per_day: float  # non-technical, over all the training homes' days
    excess_mean_s: float  # mean excess of alerts within 24 h over the natural gap (inf: none)


def training_score(reports: Sequence[RealHomeReport]) -> TrainingScore:
    """`reports` (one candidate, the training homes) pooled."""
    short = [i for r in reports for i in r.injections if i.gap_s <= MISS_WITHIN.total_seconds()]
    days = sum(r.days for r in reports)
    excess = [
        e
        for r in reports
        for i in r.injections
        if (e := i.excess_s) is not None and not i.missed(MISS_LATE)
    ]
    return TrainingScore(
        sum(i.missed(MISS_WITHIN) for i in short),
        sum(r.non_technical for r in reports) / days if days > 0 else 0.0,
        statistics.fmean(excess) if excess else math.inf,
    )


def choose(reports_by_candidate: Mapping[str, Sequence[RealHomeReport]]) -> str:
    """The candidate with the fewest false alarms a day on the training homes among those
    that missed no injected collapse within 12 h (natural gap at most 12 h); ties to the
    lower mean excess delay, then to the earlier candidate. Should every candidate miss
    some, the one that misses fewest (then the same order)."""
    if not reports_by_candidate:
        raise ValueError("no candidates to choose from")
    scores = {name: training_score(rs) for name, rs in reports_by_candidate.items()}
    return min(
        scores,
        key=lambda n: (
            scores[n].missed_12h,
            scores[n].false_alarms_per_day,
            scores[n].excess_mean_s,
        ),
    )


def leave_one_home_out(
    reports: Mapping[str, Mapping[str, RealHomeReport]],
) -> dict[str, str]:
    """For each home, the candidate `choose` picks on every other home (`reports`: per
    candidate, per home)."""
    homes = list(dict.fromkeys(h for per_home in reports.values() for h in per_home))
    if len(homes) < 2:
        raise ValueError("leave one home out needs at least two homes")
    return {
        held_out: choose(
            {
                name: [r for home, r in per_home.items() if home != held_out]
                for name, per_home in reports.items()
            }
        )
        for held_out in homes
    }


def evaluate_grid(
    datasets: Sequence[Dataset],
    evaluate: Callable[[Dataset, Rules], RealHomeReport],
    grid: Sequence[tuple[str, Rules]] | None = None,
    on_done: Callable[[str, str, RealHomeReport], None] | None = None,
) -> dict[str, dict[str, RealHomeReport]]:
    """Every candidate on every home, once each: per candidate, per home."""
    out: dict[str, dict[str, RealHomeReport]] = {}
    for name, rules in grid if grid is not None else candidates():
        for ds in datasets:
            report = evaluate(ds, rules)
            out.setdefault(name, {})[ds.home_id] = report
            if on_done is not None:
                on_done(name, ds.home_id, report)
    return out
