"""What every home of a cohort run shares: the seed, the incident and fault rates, the run's
days in local time (their midnights), and the district's weather."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from simulators.cohort.timeline import DAY, HOUR, utc

_DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday in winter: heating is on


class CohortRun:
    """`days` days from the local day of `start` in `tz`, deterministic for `seed`.

    `incidents_per_home_day` and `faults_per_home_day` (default: a third of the incidents)
    are the rates of behaviour incidents and device faults; none falls in the first
    `quiet_days` (default: a third of the run, at most 3) unless the run is shorter.
    """

    def __init__(
        self,
        days: int,
        seed: int,
        incidents_per_home_day: float = 0.05,
        start: datetime | None = None,
        *,
        faults_per_home_day: float | None = None,
        quiet_days: int | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        if days < 0:
            raise ValueError("days must not be negative")
        if incidents_per_home_day < 0:
            raise ValueError("incidents_per_home_day must not be negative")
        start = start or _DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.days = days
        self.seed = seed
        self.incidents_per_home_day = incidents_per_home_day
        self.faults_per_home_day = (
            incidents_per_home_day / 3 if faults_per_home_day is None else faults_per_home_day
        )
        self.quiet_days = min(3, days // 3) if quiet_days is None else quiet_days
        self.tz = tz
        self.start_date: date = start.astimezone(tz).date()
        self.start_ts = self.midnight(0)
        self.start = utc(self.start_ts)
        self.end_ts = self.midnight(days)
        self.end = utc(self.end_ts)

    # --- time and weather ------------------------------------------------------------------

    def midnight(self, day: int) -> float:
        """Local midnight starting day `day` of the run, as Unix seconds."""
        return _midnight(self.start_date + timedelta(days=day), self.tz)

    def outdoor_daily_mean(self, t: float) -> float:
        """The district's outdoor daily mean temperature (°C), shared by all homes."""
        day = math.floor((t - self.start_ts) / DAY)
        doy = (self.start_date + timedelta(days=day)).timetuple().tm_yday
        season = 12 - 11 * math.cos(2 * math.pi * (doy - 20) / 365)
        return season + random.Random(f"{self.seed}/weather/{day}").gauss(0, 2.5)

    def outdoor(self, t: float) -> float:
        """Outdoor temperature at `t`: the daily mean plus a swing peaking mid-afternoon."""
        local_h = ((t - self.start_ts) / HOUR) % 24
        return self.outdoor_daily_mean(t) + 4 * math.sin(2 * math.pi * (local_h - 9) / 24)


@lru_cache(maxsize=4096)
def _midnight(day: date, tz: tzinfo) -> float:
    return datetime.combine(day, time(), tzinfo=tz).timestamp()
