"""Sign-in: argon2id passwords, hashed session tokens, login rate limiting, and scopes."""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg_pool import AsyncConnectionPool

from alerts.model import Category, Scope
from gateway.config import GatewaySettings

Conn = psycopg.AsyncConnection[Any]

STAFF_ROLES = frozenset({"district_staff", "town_staff", "village_worker"})
"""Roles that look after elders in a region; only they may acknowledge alerts."""

MAX_TOKEN_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in person a request acts for.

    `home_ids` holds the homes of a family member's linked elders (empty for other roles);
    it is read with the session, so a changed link applies at the next request."""

    user_id: int
    username: str
    display_name: str
    role: str
    region_id: str | None
    locale: str
    home_ids: tuple[str, ...] = ()

    @property
    def is_staff(self) -> bool:
        """Whether this person is region staff (may acknowledge alerts)."""
        return self.role in STAFF_ROLES


@dataclass(frozen=True, slots=True)
class Session:
    """A new sign-in: the bearer token (shown once, never stored) and whom it is for."""

    token: str
    principal: Principal
    expires_at: datetime


class LoginError(Exception):
    """A login attempt was refused."""


class BadCredentials(LoginError):
    """Unknown user or wrong password (deliberately not told apart)."""


class RateLimited(LoginError):
    """Too many failed attempts for this username from this address."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed login attempts; retry in {retry_after} s")
        self.retry_after = retry_after


def scope_for(principal: Principal) -> Scope:
    """Which alerts `principal` may see."""
    if principal.role in STAFF_ROLES and principal.region_id is not None:
        # The district centre also follows the alerts about the service (rota gaps...).
        return Scope(
            region_id=principal.region_id, service_alerts=principal.role == "district_staff"
        )
    if principal.role == "family":
        return Scope(home_ids=principal.home_ids)
    if principal.role == "operator":
        return Scope(everything=True, categories=(Category.TECHNICAL,))
    return Scope()  # sees nothing


def new_token() -> str:
    """A fresh random session token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """What is stored for a token: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class LoginRateLimiter:
    """Sliding-window count of login attempts per key (username, client address).

    An attempt is counted when it starts (so a burst of concurrent guesses is limited too)
    and forgotten, with all earlier ones for the key, when it succeeds."""

    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._attempts: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        attempts = self._attempts.get(key)
        if attempts is None:
            return None
        while attempts and attempts[0] <= now - self.window_s:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
            return None
        return attempts

    def retry_after(self, key: tuple[str, str]) -> float | None:
        """Seconds until `key` may try again, or None if it may try now."""
        now = self._clock()
        attempts = self._recent(key, now)
        if attempts is None or len(attempts) < self.limit:
            return None
        return max(attempts[-self.limit] + self.window_s - now, 0.0)

    def check(self, key: tuple[str, str]) -> None:
        """Raise RateLimited if `key` has used up its attempts."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimited(max(1, math.ceil(wait)))

    def attempt(self, key: tuple[str, str]) -> None:
        """Count one attempt (call before verifying the password)."""
        now = self._clock()
        if key not in self._attempts and len(self._attempts) >= self._max_keys:
            self._prune(now)
        self._attempts.setdefault(key, deque()).append(now)

    def succeeded(self, key: tuple[str, str]) -> None:
        """Forget the attempts of `key` after a successful login."""
        self._attempts.pop(key, None)

    def __len__(self) -> int:
        return len(self._attempts)

    def _prune(self, now: float) -> None:
        for key in list(self._attempts):
            self._recent(key, now)
        # Still full (an attack from many addresses): forget the oldest keys.
        excess = len(self._attempts) - self._max_keys + 1
        for key in list(self._attempts)[: max(excess, 0)]:
            del self._attempts[key]


_PRINCIPAL_SELECT = """
SELECT u.id, u.username, u.display_name, u.role, u.region_id, u.locale,
       ARRAY(SELECT e.home_id FROM family_links f JOIN elders e ON e.id = f.elder_id
             WHERE f.user_id = u.id ORDER BY e.home_id) AS home_ids
FROM users u
"""


def _principal(row: tuple[Any, ...]) -> Principal:
    uid, username, display, role, region, locale, homes = row
    return Principal(
        user_id=int(uid),
        username=str(username),
        display_name=str(display),
        role=str(role),
        region_id=None if region is None else str(region),
        locale=str(locale),
        home_ids=tuple(str(h) for h in homes or ()),
    )


class Authenticator:
    """Checks passwords, issues and resolves session tokens, and limits guessing."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.settings = settings
        self.hasher = hasher or PasswordHasher()  # argon2id
        self.limiter = LoginRateLimiter(settings.login_attempts_per_minute, 60.0, clock=clock)
        # Verified against when the user is unknown, so that case costs the same time.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    @property
    def session_lifetime(self) -> timedelta:
        """How long a session lasts."""
        return timedelta(hours=self.settings.session_hours)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def login(
        self, pool: AsyncConnectionPool[Any], username: str, password: str, client: str
    ) -> Session:
        """Check a username and password and open a session.

        Raises RateLimited when the (username, client) pair has tried too often in the last
        minute, BadCredentials when the user is unknown or the password wrong. No database
        connection is held while the password is being verified."""
        key = (username.strip().lower(), client)
        self.limiter.check(key)
        self.limiter.attempt(key)
        if len(password) > MAX_PASSWORD_LENGTH:
            raise BadCredentials("invalid username or password")
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, password_hash FROM users WHERE username = %s", (username,)
            )
            row = await cur.fetchone()
        if row is None:
            await self._verify(self._dummy_hash, password)
            raise BadCredentials("invalid username or password")
        user_id, password_hash = int(row[0]), str(row[1])
        if not await self._verify(password_hash, password):
            raise BadCredentials("invalid username or password")
        self.limiter.succeeded(key)
        new_hash = None
        if self.hasher.check_needs_rehash(password_hash):
            new_hash = await asyncio.to_thread(self.hasher.hash, password)
        async with pool.connection() as conn:
            if new_hash is not None:
                await conn.execute(
                    "UPDATE users SET password_hash = %s WHERE id = %s AND password_hash = %s",
                    (new_hash, user_id, password_hash),
                )
            return await self.open_session(conn, user_id)

    async def open_session(self, conn: Conn, user_id: int) -> Session:
        """Issue a token for `user_id`; only its hash is stored."""
        token = new_token()
        async with conn.transaction():
            await conn.execute(
                "DELETE FROM sessions WHERE user_id = %s AND expires_at <= now()", (user_id,)
            )
            cur = await conn.execute(
                "INSERT INTO sessions (token_hash, user_id, expires_at)"
                " VALUES (%s, %s, now() + %s) RETURNING expires_at",
                (hash_token(token), user_id, self.session_lifetime),
            )
            row = await cur.fetchone()
            assert row is not None
            cur = await conn.execute(_PRINCIPAL_SELECT + " WHERE u.id = %s", (user_id,))
            user = await cur.fetchone()
            assert user is not None
        return Session(token, _principal(user), row[0])

    async def principal(self, conn: Conn, token: str) -> Principal | None:
        """Whom an unexpired session token belongs to, or None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        cur = await conn.execute(
            _PRINCIPAL_SELECT + " JOIN sessions s ON s.user_id = u.id"
            " WHERE s.token_hash = %s AND s.expires_at > now()",
            (hash_token(token),),
        )
        row = await cur.fetchone()
        return None if row is None else _principal(row)

    async def logout(self, conn: Conn, token: str) -> None:
        """End the session of `token` (nothing happens if there is none)."""
        if token and len(token) <= MAX_TOKEN_LENGTH:
            await conn.execute("DELETE FROM sessions WHERE token_hash = %s", (hash_token(token),))
