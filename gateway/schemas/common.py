"""What the response models share: timestamps, the base model, pages, created ids."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

T = TypeVar("T")


def _isoformat(value: datetime) -> str:
    return value.isoformat()


IsoTimestamp = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
"""A time with its zone, answered as `datetime.isoformat()` (`...+00:00`), as the alerts,
the login and the rota coverage always were. Other times are answered as pydantic writes
them (RFC 3339, `...Z` in UTC), as the other answers always were."""


class Schema(BaseModel):
    """Base of the response models: built from the query modules' dataclasses by attribute."""

    model_config = ConfigDict(from_attributes=True)


class Page(Schema, Generic[T]):
    """One page of a list, with where the next one starts (None at the end)."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, items: list[T], total: int, limit: int, offset: int) -> Page[T]:
        """The page of `items` at `offset` of a list of `total`, `limit` long."""
        next_offset = offset + limit if offset + limit < total else None
        return cls(items=items, total=total, limit=limit, offset=offset, next_offset=next_offset)


class Created(Schema):
    """The id of what was just created."""

    id: int
