"""Unit tests of alerting's pure parts: policies, ack links, rota gaps, KPI months."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from alerts.config import retry_delay_s
from alerts.escalate.policy import Policy, Step, default_policy
from alerts.escalate.rota import uncovered
from alerts.kpi import month_bounds
from alerts.model import Category, Severity
from alerts.notify.links import ack_token, check_ack_token

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_critical_default_escalates_village_town_district_and_repeats() -> None:
    p = default_policy(Severity.CRITICAL, Category.EMERGENCY)
    assert p.tiers_at(0) == ("village", "family")
    assert p.tiers_at(299) == ("village", "family")
    assert p.tiers_at(300) == ("village", "family", "town")
    assert p.tiers_at(600) == ("village", "family", "town", "district")
    rounds = [0.0]
    while rounds[-1] < 1500:
        rounds.append(p.next_round_after(rounds[-1]))
    assert rounds == [0, 300, 600, 900, 1200, 1500]


def test_rounds_fall_on_steps_between_repeats() -> None:
    p = Policy((Step(0, ("village",)), Step(100, ("town",))), repeat_s=60)
    assert p.next_round_after(0) == 60
    assert p.next_round_after(60) == 100
    assert p.next_round_after(100) == 160


def test_warnings_are_slower_and_technical_goes_to_the_operator() -> None:
    warning = default_policy(Severity.WARNING, Category.WELLBEING)
    assert warning.tiers_at(299) == warning.tiers_at(1799) == ("village", "family")
    assert "town" in warning.tiers_at(1800)
    technical = default_policy(Severity.CRITICAL, Category.TECHNICAL)
    assert technical.tiers_at(0) == ("operator",)


def test_demo_speed_scales_every_delay_and_snapshot_round_trips() -> None:
    p = default_policy(Severity.CRITICAL, Category.EMERGENCY).scaled(10)
    assert [s.after_s for s in p.steps] == [0, 30, 60]
    assert p.repeat_s == 30
    assert Policy.from_json(p.to_json()) == p


@pytest.mark.parametrize(
    "steps",
    [
        [{"after_s": 5, "tiers": ["village"]}],
        [{"after_s": 0, "tiers": ["village"]}, {"after_s": 0, "tiers": ["town"]}],
        [{"after_s": 0, "tiers": ["mayor"]}],
        [{"after_s": 0}],
    ],
)
def test_bad_policies_are_refused(steps: list[dict[str, object]]) -> None:
    with pytest.raises(ValueError, match=r"."):
        Policy.from_json({"steps": steps, "repeat_s": 60})


def test_ack_token_round_trip_tamper_and_expiry() -> None:
    secret = b"s" * 32
    token = ack_token(secret, 42, 7, T0 + timedelta(hours=1))
    grant = check_ack_token(secret, token, T0)
    assert grant is not None
    assert (grant.alert_id, grant.user_id) == (42, 7)
    assert check_ack_token(b"x" * 32, token, T0) is None
    assert check_ack_token(secret, token.replace("42.", "43.", 1), T0) is None
    assert check_ack_token(secret, token, T0 + timedelta(hours=2)) is None
    assert check_ack_token(secret, "garbage", T0) is None
    assert check_ack_token(secret, "1.2.3.é", T0) is None


def test_uncovered_stretches() -> None:
    h = timedelta(hours=1)
    spans = [(T0 - h, T0 + 2 * h), (T0 + 3 * h, T0 + 5 * h), (T0 + 4 * h, T0 + 6 * h)]
    assert uncovered(T0, T0 + 8 * h, spans) == [(T0 + 2 * h, T0 + 3 * h), (T0 + 6 * h, T0 + 8 * h)]
    assert uncovered(T0, T0 + h, []) == [(T0, T0 + h)]
    assert uncovered(T0, T0 + h, [(T0 - h, T0 + 2 * h)]) == []


def test_month_bounds() -> None:
    assert month_bounds("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="2026-11"):
        month_bounds("November")


def test_retry_delays_double_and_are_spread_over_the_last_quarter() -> None:
    rng = random.Random(7)
    for attempts, full in ((0, 5.0), (1, 10.0), (3, 40.0)):
        delays = [retry_delay_s(5.0, attempts, rng) for _ in range(400)]
        assert all(0.75 * full <= d <= full for d in delays)
        # Spread out, not in lockstep: the failures of one turn come due at different times.
        assert max(delays) - min(delays) > 0.2 * full
        assert len({round(d, 6) for d in delays}) > 390
    assert retry_delay_s(1.0, 10_000, rng) <= 2.0**30  # a long outage does not overflow
