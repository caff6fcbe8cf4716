"""Per-elder limits (`elders.thresholds`): the keys the detectors can use, their units and
ranges. Stored and validated here; the detectors read them (alerts.detect)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from gateway.admin.common import Input

LIMIT_KEYS: dict[str, tuple[str, str]] = {
    "temperature_min_c": ("°C", "indoor temperature too cold below this (default 16)"),
    "temperature_max_c": ("°C", "indoor temperature too hot above this (default 30)"),
    "heart_rate_low": ("bpm", "heart rate too low below this (default 40)"),
    "heart_rate_high": ("bpm", "heart rate too high above this (default 120)"),
    "spo2_low": ("%", "blood oxygen too low below this (default 90)"),
}
"""Every known key: (unit, meaning and the detector's default)."""


class ElderLimits(Input):
    """An elder's own limits; absent keys use the detectors' defaults. Unknown keys are
    refused (each by name)."""

    temperature_min_c: Annotated[float, Field(ge=0, le=30)] | None = None
    temperature_max_c: Annotated[float, Field(ge=15, le=45)] | None = None
    heart_rate_low: Annotated[float, Field(ge=20, le=120)] | None = None
    heart_rate_high: Annotated[float, Field(ge=60, le=250)] | None = None
    spo2_low: Annotated[float, Field(ge=70, le=99)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ElderLimits:
        lo, hi = self.temperature_min_c, self.temperature_max_c
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError("temperature_min_c must be below temperature_max_c")
        lo, hi = self.heart_rate_low, self.heart_rate_high
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError("heart_rate_low must be below heart_rate_high")
        return self

    def stored(self) -> dict[str, float]:
        """What `elders.thresholds` holds: the keys that are set."""
        return {k: float(v) for k, v in self.model_dump(exclude_none=True).items()}
