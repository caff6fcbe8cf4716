"""How clients of the device protocol retry: exponential backoff with full jitter, so that
thousands of devices (and our own subscribers) do not reconnect in lockstep after a broker
restart."""

from __future__ import annotations

import random


def jittered_delay(
    attempt: int, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): uniform in
    [base/2, min(cap, base * 2**attempt)]."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap_s, base_s * 2 ** min(attempt, 30))
    return (rng or random).uniform(min(base_s / 2, ceiling), ceiling)
