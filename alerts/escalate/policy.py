"""Escalation policies: who is told when, per severity (and category), pure and typed.

A policy is a list of steps ("after N seconds without acknowledgement, add these tiers") and
a repeat period. Rounds happen at every step's time and every `repeat_s` after the previous
round; each round notifies every staff tier reached so far, and the family only in the round
that first reaches it (then the acknowledged / resolved follow-ups, not every repeat:
`alerts.escalate.planning`). The policy is snapshotted (as JSON) on
the alert when it opens, so later edits never change a running escalation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.model import Category, Severity

TIERS = ("village", "family", "town", "district", "operator")
"""Who a step can address: the on-duty staff of the home's village, town or district, the
elder's family first contact, or the operator on duty (technical alerts)."""

STAFF_ROLE = {
    "village": "village_worker",
    "town": "town_staff",
    "district": "district_staff",
    "operator": "operator",
}


@dataclass(slots=True, frozen=True)
class Step:
    """After `after_s` seconds without acknowledgement, add `tiers` to the recipients."""

    after_s: float
    tiers: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class Policy:
    """An escalation policy: steps in time order and a repeat period."""

    steps: tuple[Step, ...]
    repeat_s: float

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0].after_s != 0:
            raise ValueError("a policy's first step must be at 0 s")
        if self.repeat_s <= 0:
            raise ValueError("repeat_s must be positive")
        if any(b.after_s <= a.after_s for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps must be in strictly increasing time order")
        for step in self.steps:
            unknown = set(step.tiers) - set(TIERS)
            if unknown or not step.tiers:
                raise ValueError(f"unknown or empty tiers {sorted(unknown)}; choose from {TIERS}")

    def scaled(self, speed: float) -> Policy:
        """The same policy with every delay divided by `speed` (the demo clock)."""
        if speed == 1:
            return self
        return Policy(
            tuple(Step(s.after_s / speed, s.tiers) for s in self.steps), self.repeat_s / speed
        )

    def to_json(self) -> dict[str, Any]:
        """The snapshot stored on an alert."""
        return {
            "steps": [{"after_s": s.after_s, "tiers": list(s.tiers)} for s in self.steps],
            "repeat_s": self.repeat_s,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Policy:
        """Read a snapshot (or a policy row's steps and repeat); raises ValueError if bad."""
        try:
            steps = tuple(
                Step(float(s["after_s"]), tuple(str(t) for t in s["tiers"])) for s in doc["steps"]
            )
            return cls(steps, float(doc["repeat_s"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a policy: {exc!r}") from exc

    def tiers_at(self, offset_s: float) -> tuple[str, ...]:
        """Every tier reached `offset_s` after opening, in the order they were added."""
        seen: list[str] = []
        for step in self.steps:
            if step.after_s <= offset_s + 1e-6:
                seen += [t for t in step.tiers if t not in seen]
        return tuple(seen)

    def next_round_after(self, offset_s: float) -> float:
        """When the round after the one at `offset_s` is due (seconds after opening)."""
        later = [s.after_s for s in self.steps if s.after_s > offset_s + 1e-6]
        repeat = offset_s + self.repeat_s
        return min([repeat, *later])


def default_policy(severity: Severity, category: Category) -> Policy:
    """The built-in policies (used when no row of `escalation_policies` matches).

    - critical: village worker and family at once, town at 5 min, district centre at 10 min,
      repeat every 5 min until acknowledged;
    - warning: village worker and family at once, town at 30 min, district at 2 h, repeat
      every 30 min;
    - info: village worker only, repeated every 4 h;
    - technical (any severity): the operator on duty at once, the district centre at 1 h,
      repeat every 30 min.
    """
    if category is Category.TECHNICAL:
        return Policy((Step(0, ("operator",)), Step(3600, ("district",))), 1800)
    if severity is Severity.CRITICAL:
        return Policy(
            (Step(0, ("village", "family")), Step(300, ("town",)), Step(600, ("district",))),
            300,
        )
    if severity is Severity.WARNING:
        return Policy(
            (Step(0, ("village", "family")), Step(1800, ("town",)), Step(7200, ("district",))),
            1800,
        )
    return Policy((Step(0, ("village",)),), 4 * 3600)
