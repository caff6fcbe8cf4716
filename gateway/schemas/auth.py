"""Signing in and the signed-in person."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.auth import MAX_PASSWORD_LENGTH, Principal
from gateway.schemas.common import IsoTimestamp, Schema


class LoginRequest(BaseModel):
    """Body of `POST /api/v1/auth/login`."""

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class User(Schema):
    """The signed-in person as the API shows them."""

    id: int
    username: str
    display_name: str
    role: str
    region_id: str | None
    locale: str
    home_ids: list[str]
    can_acknowledge: bool

    @classmethod
    def of(cls, principal: Principal) -> User:
        """`principal` as the API shows them (staff may acknowledge alerts)."""
        return cls(
            id=principal.user_id,
            username=principal.username,
            display_name=principal.display_name,
            role=principal.role,
            region_id=principal.region_id,
            locale=principal.locale,
            home_ids=list(principal.home_ids),
            can_acknowledge=principal.is_staff,
        )


class Login(Schema):
    """A new session: the bearer token (shown once), when it ends, and whom it is for."""

    token: str
    expires_at: IsoTimestamp
    user: User


class LocaleIn(BaseModel):
    """The language the signed-in person wants."""

    locale: Literal["en", "zh"]


class Locale(Schema):
    """The language now chosen."""

    locale: Literal["en", "zh"]
