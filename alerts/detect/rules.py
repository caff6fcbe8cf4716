"""Every detection rule's parameters, in one place. docs/detection.md gives the rationale.

Times are seconds; hours are local wall-clock hours of the home (0-23).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.catalogue import LOW_BATTERY_PERCENT

HOUR = 3600.0
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class InactivityRule:
    """Prolonged inactivity (`inactivity`) and not up by the usual time (`not_up`).

    A silence is the time since the last activity reading. It is judged against a threshold
    per context (home / asleep) and per local hour, learned as the longest silence that was
    still going on at that hour and ended with normal activity, times `factor` plus
    `margin_s`, the maximum taken over `smear_slots` neighbouring hours.
    """

    factor: float = 1.2
    margin_s: float = 1 * HOUR
    smear_slots: int = 1
    floor_home_s: float = 2 * HOUR
    floor_asleep_s: float = 3 * HOUR
    # A chair mat occupied on average `seat_min_s_per_day` a day (after `seat_min_days`) is the
    # elder's usual seat: sitting there is learned apart (context `seated`), and a silence at
    # home while not seated, not in bed and not out is someone up and about, judged with
    # `margin_moving_s` / `floor_moving_s`. A stool sat on for minutes a day changes nothing.
    floor_moving_s: float = 45 * MINUTE
    margin_moving_s: float = 20 * MINUTE
    seat_min_s_per_day: float = 2 * HOUR
    seat_min_days: float = 4.0
    seat_cap_s: float = 12 * HOUR
    default_home_s: float = 6 * HOUR
    default_asleep_s: float = 12 * HOUR
    # Before `warmup_days`, by day (`night_end_hour` to `night_start_hour`), in a home with a
    # motion sensor in every room, not seated: the elder cannot be sitting out of sight.
    default_covered_s: float = 3 * HOUR
    warmup_days: float = 4.0
    learn_cap_home_s: float = 16 * HOUR
    learn_cap_asleep_s: float = 20 * HOUR
    learn_cap_out_s: float = 72 * HOUR
    # A silence with an alert on it (inactivity, not up, bathroom, fall, SOS) that still went
    # on this long after the alert was an incident, not a false alarm: it is not learned.
    learn_flagged_within_s: float = 1 * HOUR
    # ... except an asleep silence that ended (the elder up) no later than the usual wake-up:
    # a night's sleep flagged in error, learned (else the same night is flagged every time).
    learn_night_to_usual_wake: bool = True
    night_start_hour: int = 20
    night_end_hour: int = 6
    morning_end_hour: int = 14
    door_episode_s: float = 2 * MINUTE
    return_window_s: float = 15 * MINUTE
    return_events: int = 6
    release_lag_s: float = 2 * MINUTE
    # Where the silence began: a silence at home (not seated, not asleep, not out) is also
    # judged against the longest one that began in the same room (the room of the last
    # activity reading), x `factor` + `room_margin_s`, at least `room_floor_s`. A kitchen or a
    # hall, where nobody sits still for an hour, is then unusual much sooner than the living
    # room. A room's record counts once the home has `room_min_days` of history and the room
    # began `room_min_silences` learned silences of at least `room_sample_s`.
    room_margin_s: float = 20 * MINUTE
    room_floor_s: float = 45 * MINUTE
    room_min_days: float = 4.0
    room_min_silences: int = 20
    room_sample_s: float = 5 * MINUTE
    # How unusual a silence is (each inactivity alert's `normal_chance`): the silences of at
    # least `room_sample_s` that began in its room and part of the day are modelled by a
    # generalised Pareto tail (method of moments), pooled with a population prior worth
    # `tail_prior_n` silences (scale `tail_prior_scale_s`, shape `tail_prior_shape`). It is
    # evidence only: the limits are still the records' (a calibrated limit is open work).
    tail_prior_n: float = 20.0
    tail_prior_scale_s: float = 20 * MINUTE
    tail_prior_shape: float = 0.2
    tail_max_shape: float = 0.45
    # While a device that sees the elder move is dead (the device watch's `device_silent`
    # is the alert for it), a silence at home is alerted only past `unseen_floor_s`, however
    # short the learned limit (the elder may sit where the dead sensor looked; a collapse is
    # still alerted within 12 h), and no silence is learned.
    unseen_floor_s: float = 6 * HOUR
    wake_margin_s: float = 0.5 * HOUR
    wake_warmup_days: float = 7.0
    presume_asleep_from_hour: int = 23
    presume_asleep_to_hour: int = 5


@dataclass(frozen=True, slots=True)
class OutingRule:
    """Out of home too long (`not_back`), and a return that was never confirmed.

    An outing (a door episode, then no confirmed activity inside) is judged against the
    longest outing the elder began in the same part of the day (learned on confirmed returns),
    times `factor` plus `margin_s`, at least `floor_s`; at least `default_s` until the part has
    `min_outings` of them. Whatever was learned, `cap_s` bounds it, so that an elder who fell
    outside, or came back and collapsed out of every sensor's sight, is alerted within 12 h of
    leaving, however long their usual outings (an elder out longer by day on purpose — work,
    a day centre, a night away — is in away mode, or this alert is the call that checks). An
    outing begun by day that is still going on at `night_hour` (local) is `not_back` then, or
    at the latest the elder has come back before plus `night_margin_s`; never once they have
    stayed out past the next 06:00 (the cap still bounds). Outings begun at night are night
    wandering's (RoomRule).

    Two activations inside within `return_window_s` (InactivityRule) after the door, or
    `inside_events` however late (each within `inside_gap_s` of the one before; twice as many
    from a single device), that never add up to a confirmed return are a return all the same
    once `unconfirmed_s` passed without a door: the elder is then at home, and the
    inactivity rule judges the silence since the last of that activity.
    """

    default_s: float = 6 * HOUR
    floor_s: float = 4 * HOUR
    cap_s: float = 11.5 * HOUR
    factor: float = 1.25
    margin_s: float = 1 * HOUR
    min_outings: int = 5
    learn_cap_s: float = 16 * HOUR  # longer: an absence (away mode's business), not learned
    night_hour: int = 22
    night_margin_s: float = 1 * HOUR
    unconfirmed_s: float = 20 * MINUTE
    inside_events: int = 4
    inside_gap_s: float = 45 * MINUTE


@dataclass(frozen=True, slots=True)
class RoomRule:
    """Too long in the bathroom, out of bed too long at night, night wandering."""

    bathroom_default_s: float = 75 * MINUTE
    bathroom_floor_s: float = 40 * MINUTE
    out_of_bed_default_s: float = 90 * MINUTE
    out_of_bed_floor_s: float = 45 * MINUTE
    # Out of bed at night: the mat emptied from this hour (the elder in bed for the night; the
    # earliest simulated bedtime is 20:50) to `night_to_hour`. Night wandering keeps 23:00.
    out_of_bed_from_hour: int = 21
    wander_default_s: float = 45 * MINUTE
    wander_floor_s: float = 30 * MINUTE
    factor: float = 1.5
    night_from_hour: int = 23
    night_to_hour: int = 5
    warmup_days: float = 7.0


@dataclass(frozen=True, slots=True)
class UtilityRule:
    """No water or power use for unusually long while the elder is at home."""

    default_s: float = 36 * HOUR
    floor_s: float = 12 * HOUR
    factor: float = 1.5
    learn_cap_s: float = 72 * HOUR
    warmup_days: float = 7.0


@dataclass(frozen=True, slots=True)
class DailyActivityRule:
    """Daily activity far below the elder's own baseline."""

    ratio: float = 0.3
    min_days: int = 7
    ewma_alpha: float = 0.15
    max_out_s: float = 6 * HOUR


@dataclass(frozen=True, slots=True)
class TemperatureRule:
    """Indoor temperature too cold or too hot for too long."""

    cold_below_c: float = 16.0
    heat_above_c: float = 30.0
    sustained_s: float = 2 * HOUR


@dataclass(frozen=True, slots=True)
class VitalsRule:
    """Vital signs outside the elder's own range (profile limits, then learned trend)."""

    heart_rate_low: float = 40.0
    heart_rate_high: float = 120.0
    spo2_low: float = 90.0
    consecutive: int = 3
    trend_alpha: float = 0.01
    trend_z: float = 4.0
    trend_min_readings: int = 200


@dataclass(frozen=True, slots=True)
class TechnicalRule:
    """Device silent past its heartbeat, low battery, hub offline."""

    heartbeat_grace: float = 2.5
    battery_low_pct: float = LOW_BATTERY_PERCENT  # the catalogue's "low": 15 %
    battery_ok_pct: float = 30.0


@dataclass(frozen=True, slots=True)
class Rules:
    """All rules' parameters."""

    inactivity: InactivityRule = field(default_factory=InactivityRule)
    rooms: RoomRule = field(default_factory=RoomRule)
    outing: OutingRule = field(default_factory=OutingRule)
    utility: UtilityRule = field(default_factory=UtilityRule)
    daily: DailyActivityRule = field(default_factory=DailyActivityRule)
    temperature: TemperatureRule = field(default_factory=TemperatureRule)
    vitals: VitalsRule = field(default_factory=VitalsRule)
    technical: TechnicalRule = field(default_factory=TechnicalRule)
