"""Reproducible random draws: one home's named random streams, and a Poisson draw."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HomeSeed:
    """The random streams of one home in one cohort, each named by what it draws and for which
    day: a stream is a pure function of (seed, home, what, day), whatever is drawn before."""

    key: str  # "{cohort seed}/{home id}"

    def rng(self, what: str, day: int | str = "") -> random.Random:
        """The stream `what` of `day` (or of the whole run)."""
        return random.Random(f"{self.key}/{what}/{day}")


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth; means here are small)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
