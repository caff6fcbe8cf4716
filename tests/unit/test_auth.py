"""Pure tests of the login rate limiter, token hashing and scopes."""

from __future__ import annotations

import hashlib

import pytest

from alerts.model import Category, Scope
from gateway.auth import (
    LoginRateLimiter,
    Principal,
    RateLimited,
    hash_token,
    new_token,
    scope_for,
)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEY = ("worker-v1", "10.0.0.1")


def test_limiter_allows_up_to_the_limit_then_refuses() -> None:
    clock = FakeClock()
    limiter = LoginRateLimiter(3, 60.0, clock=clock)
    for _ in range(3):
        limiter.check(KEY)
        limiter.attempt(KEY)
        clock.now += 1
    with pytest.raises(RateLimited) as info:
        limiter.check(KEY)
    # The oldest attempt (at t=1000) leaves the window at t=1060; now is 1003.
    assert info.value.retry_after == 57


def test_limiter_window_slides() -> None:
    clock = FakeClock()
    limiter = LoginRateLimiter(2, 60.0, clock=clock)
    limiter.attempt(KEY)
    clock.now += 30
    limiter.attempt(KEY)
    assert limiter.retry_after(KEY) == pytest.approx(30.0)
    clock.now += 30.5  # the first attempt has left the window
    assert limiter.retry_after(KEY) is None
    limiter.attempt(KEY)
    assert limiter.retry_after(KEY) == pytest.approx(29.5)


def test_limiter_keys_are_independent_and_success_forgets() -> None:
    clock = FakeClock()
    limiter = LoginRateLimiter(1, 60.0, clock=clock)
    limiter.attempt(KEY)
    with pytest.raises(RateLimited):
        limiter.check(KEY)
    limiter.check(("worker-v1", "10.0.0.2"))  # another address
    limiter.check(("worker-v2", "10.0.0.1"))  # another user
    limiter.succeeded(KEY)
    limiter.check(KEY)


def test_limiter_retry_after_is_at_least_one_second() -> None:
    clock = FakeClock()
    limiter = LoginRateLimiter(1, 60.0, clock=clock)
    limiter.attempt(KEY)
    clock.now += 59.99
    with pytest.raises(RateLimited) as info:
        limiter.check(KEY)
    assert info.value.retry_after == 1


def test_limiter_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = LoginRateLimiter(5, 60.0, clock=clock, max_keys=100)
    for i in range(1000):
        limiter.attempt((f"user{i}", "10.0.0.1"))
        clock.now += 0.01
    assert len(limiter) <= 100
    clock.now += 61
    limiter.attempt(KEY)  # expired keys are pruned
    assert len(limiter) <= 100


def test_limiter_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        LoginRateLimiter(0)


def test_token_hash_is_sha256_of_the_token() -> None:
    token = new_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).digest()
    assert len(hash_token(token)) == 32
    assert hash_token(token) != hash_token(token + "x")


def test_tokens_are_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert len(token) >= 43
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _principal(role: str, region: str | None = None, homes: tuple[str, ...] = ()) -> Principal:
    return Principal(1, "u", "U", role, region, "en", homes)


def test_scopes_by_role() -> None:
    assert scope_for(_principal("village_worker", "v1")) == Scope(region_id="v1")
    assert scope_for(_principal("town_staff", "t1")) == Scope(region_id="t1")
    # The district centre also follows the service's own alerts (rota gaps...).
    assert scope_for(_principal("district_staff", "d1")) == Scope(
        region_id="d1", service_alerts=True
    )
    assert scope_for(_principal("family", homes=("h01",))) == Scope(home_ids=("h01",))
    assert scope_for(_principal("family")) == Scope(home_ids=())
    assert scope_for(_principal("operator")) == Scope(
        everything=True, categories=(Category.TECHNICAL,)
    )
    assert scope_for(_principal("stranger")) == Scope()


def test_only_staff_may_acknowledge() -> None:
    assert _principal("village_worker", "v1").is_staff
    assert _principal("district_staff", "d1").is_staff
    assert not _principal("family").is_staff
    assert not _principal("operator").is_staff
