"""Per-elder limits (`elders.thresholds`): the one model that says which keys exist, their
units and ranges, used by the API that edits them and by the detectors that read them.

Absent keys use the rules' defaults (alerts.detect.rules). The detectors follow a change at
their next registry check: an edit moves the registry version (migration 0022), and the
alerts stage then reloads the limits with the layout (`AlertService.follow_limits`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerts.detect.detectors import DetectorSet
from alerts.detect.health import TemperatureWatch, VitalLimits, VitalsWatch
from alerts.detect.learned import LearnedDetector
from alerts.detect.rules import HOUR

log = logging.getLogger(__name__)

LIMIT_KEYS: dict[str, tuple[str, str]] = {
    "temperature_min_c": ("°C", "indoor too cold below this, for 2 h (default 16)"),
    "temperature_max_c": ("°C", "indoor too hot above this, for 2 h (default 30)"),
    "heart_rate_low": ("bpm", "heart rate too low below this, 3 readings (default 40)"),
    "heart_rate_high": ("bpm", "heart rate too high above this, 3 readings (default 120)"),
    "spo2_low": ("%", "blood oxygen too low below this, 3 readings (default 90)"),
    "inactivity_max_hours": (
        "h",
        "a silence at home while up longer than this is `inactivity`, however long the"
        " learned limit (default: the learned limit alone)",
    ),
}
"""Every key: (unit, what it changes and the default)."""


class ElderLimits(BaseModel):
    """An elder's own limits; absent keys use the detectors' defaults, unknown keys are
    refused (each by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature_min_c: Annotated[float, Field(ge=0, le=30)] | None = None
    temperature_max_c: Annotated[float, Field(ge=15, le=45)] | None = None
    heart_rate_low: Annotated[float, Field(ge=20, le=120)] | None = None
    heart_rate_high: Annotated[float, Field(ge=60, le=250)] | None = None
    spo2_low: Annotated[float, Field(ge=70, le=99)] | None = None
    inactivity_max_hours: Annotated[float, Field(ge=1, le=24)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ElderLimits:
        for lo_name, hi_name in (
            ("temperature_min_c", "temperature_max_c"),
            ("heart_rate_low", "heart_rate_high"),
        ):
            lo, hi = getattr(self, lo_name), getattr(self, hi_name)
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"{lo_name} must be below {hi_name}")
        return self

    def stored(self) -> dict[str, float]:
        """What `elders.thresholds` holds: the keys that are set."""
        return {k: float(v) for k, v in self.model_dump(exclude_none=True).items()}


def parse_limits(home_id: str, raw: Any) -> ElderLimits | None:
    """The limits stored for a home's elder; None (the defaults, with a warning naming the
    problem) when what is stored is not valid: a bad row never stops detection."""
    try:
        return ElderLimits.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                             for e in exc.errors())  # fmt: skip
        log.warning("home %s: stored limits ignored (%s)", home_id, problems)
        return None


async def load_limits(conn: AsyncConnection[Any]) -> dict[str, ElderLimits]:
    """Every home whose elder has limits of their own: home id -> limits (invalid rows are
    left out, logged)."""
    cur = await conn.execute(
        "SELECT home_id, thresholds FROM elders WHERE thresholds <> '{}'::jsonb ORDER BY home_id"
    )
    out: dict[str, ElderLimits] = {}
    for home_id, raw in await cur.fetchall():
        limits = parse_limits(str(home_id), raw)
        if limits is not None:
            out[str(home_id)] = limits
    return out


async def load_limits_from(pool: AsyncConnectionPool[Any]) -> dict[str, ElderLimits]:
    """`load_limits` on a connection of the pool (waiting at most 2 s for one)."""
    async with pool.connection(timeout=2.0) as conn:
        return await load_limits(conn)


def apply_limits(
    detectors: DetectorSet, limits: Mapping[str, ElderLimits], now: datetime | None = None
) -> None:
    """Give the detectors these limits (replacing all before: a home left out has the
    defaults again)."""
    temperature = detectors.find(TemperatureWatch)
    if temperature is not None:
        temperature.limits = {
            h: (lim.temperature_min_c, lim.temperature_max_c) for h, lim in limits.items()
        }
    vitals = detectors.find(VitalsWatch)
    if vitals is not None:
        vitals.profiles = {
            h: VitalLimits(lim.heart_rate_low, lim.heart_rate_high, lim.spo2_low)
            for h, lim in limits.items()
            if (lim.heart_rate_low, lim.heart_rate_high, lim.spo2_low) != (None, None, None)
        }
    learned = detectors.find(LearnedDetector)
    if learned is not None:
        learned.set_inactivity_caps(
            {
                h: lim.inactivity_max_hours * HOUR
                for h, lim in limits.items()
                if lim.inactivity_max_hours is not None
            },
            now,
        )
