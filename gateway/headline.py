"""The family page's headline, as a pure function of the elder's open alerts and presence:
red while an emergency is open (what happened, who took it, on the way, arrived, the
worker's phone), amber while a wellbeing alert is open, and the reassuring presence line
otherwise. Words come from `gateway.i18n`; times are in the home's time zone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.model import Alert, Category, Severity, Status
from gateway.family import LastActivity

EMERGENCY_KINDS = ("sos", "fall", "smoke", "gas", "co")
"""Kinds with their own headline ("Help requested at 21:03")."""


@dataclass(frozen=True, slots=True)
class Step:
    """One line of what has happened since the alert: done or still waited for."""

    done: bool
    text: str


@dataclass(frozen=True, slots=True)
class Call:
    """Whom the family can call about the alert, and the `tel:` target."""

    name: str
    phone: str

    @property
    def href(self) -> str:
        """The `tel:` link (spaces and dashes kept out)."""
        digits = "".join(c for c in self.phone if c.isdigit() or c == "+")
        return f"tel:{digits}"


@dataclass(frozen=True, slots=True)
class Headline:
    """What the top of the family page says."""

    tone: str
    """`emergency` (red), `attention` (amber) or a presence (`home`, `out`, `asleep`,
    `unknown`) when no alert is open."""
    title: str
    detail: str
    steps: tuple[Step, ...] = ()
    call: Call | None = None
    alert_id: int | None = None


def clock_time(at: datetime, tz: str, now: datetime, t: Callable[..., str]) -> str:
    """`at` as "21:03" in time zone `tz`, with the date ("5 May 21:03") when it is not
    the same local day as `now`."""
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return t(
        "date_time",
        day=local.day,
        mon=t("months").split()[local.month - 1],
        time=local.strftime("%H:%M"),
    )


def _is_emergency(a: Alert) -> bool:
    return a.category is Category.EMERGENCY or a.severity is Severity.CRITICAL


def what(a: Alert, t: Callable[..., str]) -> str:
    """The alert's kind in words (the detector's summary when the kind has none)."""
    key = f"what_{a.kind}"
    said = t(key)
    return a.summary if said == key else said


def choose(alerts: Sequence[Alert]) -> Alert | None:
    """The alert the headline is about: an unresolved emergency first (the newest), else
    the newest unresolved alert."""
    live = [a for a in alerts if a.status is not Status.RESOLVED]
    if not live:
        return None
    return max(live, key=lambda a: (_is_emergency(a), a.opened_at, a.id))


def _steps(a: Alert, tz: str, now: datetime, t: Callable[..., str]) -> tuple[Step, ...]:
    def at(value: datetime) -> str:
        return clock_time(value, tz, now, t)

    steps = []
    if a.acknowledged_at is None:
        steps.append(Step(False, t("step_waiting")))
    else:
        who = a.acknowledged_by_name or t("step_staff")
        steps.append(Step(True, t("step_taken", name=who, time=at(a.acknowledged_at))))
    if a.en_route_at is not None:
        who = a.en_route_by_name or t("step_staff")
        steps.append(Step(True, t("step_en_route", name=who, time=at(a.en_route_at))))
    elif a.acknowledged_at is not None and a.arrived_at is None:
        steps.append(Step(False, t("step_not_yet_en_route")))
    if a.arrived_at is not None:
        who = a.arrived_by_name or t("step_staff")
        steps.append(Step(True, t("step_arrived", name=who, time=at(a.arrived_at))))
    return tuple(steps)


def headline(
    alerts: Sequence[Alert],
    presence: str,
    last: LastActivity | None,
    tz: str,
    now: datetime,
    t: Callable[..., str],
    age: Callable[[datetime], str],
) -> Headline:
    """The headline for an elder with unresolved `alerts` (any order) and `presence`."""
    a = choose(alerts)
    if a is None:
        if last is None:
            detail = t("calm_no_activity")
        else:
            detail = t(
                "calm_last_activity",
                time=clock_time(last.at, tz, now, t),
                room=t(last.room) if last.room else "—",
                age=age(last.at),
            )
        return Headline(presence, t("presence_" + presence), detail)
    call = None
    if a.acknowledged_at is not None and a.acknowledged_by_phone:
        call = Call(a.acknowledged_by_name or t("step_staff"), a.acknowledged_by_phone)
    when = clock_time(a.event_at, tz, now, t)
    if _is_emergency(a):
        if a.kind in EMERGENCY_KINDS:
            title = t(f"hl_{a.kind}", time=when)
        else:
            title = t("hl_urgent", what=what(a, t), time=when)
        detail = t("hl_emergency_detail") if a.acknowledged_at is None else t("hl_taken_detail")
        return Headline("emergency", title, detail, _steps(a, tz, now, t), call, a.id)
    title = t("hl_attention", what=what(a, t), time=when)
    detail = t("hl_attention_detail")
    return Headline("attention", title, detail, _steps(a, tz, now, t), call, a.id)
