"""The JSON payload contract (version 1) and its decoder.

A device publishes to ``eldercare/{home}/{device}/readings`` either one reading::

    {"boot": 3, "seq": 41, "ts": 1763900000.25, "metric": "motion", "value": 1}

or a batch that shares one boot counter::

    {"boot": 3, "readings": [{"seq": 41, "ts": "2026-11-23T13:00:00Z", "value": 1}, ...]}

``boot`` (default 0) counts the device's restarts; ``seq`` is monotonic within a boot; ``ts``
is the event time, Unix seconds or RFC 3339 with an offset; ``metric`` may be left out when
the device kind has a single metric. The decoder never raises on bad input: it returns either
typed readings or a typed rejection with a reason that is counted and dead-lettered.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from devices import topics
from devices.catalogue import CATALOGUE, ValueType
from devices.registry import Registry

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_BATCH = 1000
MAX_SEQ = 2**62
MAX_BOOT = 2**31 - 1


class Reason(enum.StrEnum):
    """Why a message was rejected. Stable strings: they are stored and counted."""

    BAD_TOPIC = "bad_topic"
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    SCHEMA = "schema"
    UNKNOWN_DEVICE = "unknown_device"
    WRONG_HOME = "wrong_home"
    UNKNOWN_METRIC = "unknown_metric"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"


@dataclass(slots=True, frozen=True)
class Reading:
    """One validated reading from a registered device."""

    home_id: str
    device_id: str
    kind: str
    boot: int
    seq: int
    ts: datetime
    metric: str
    value: float


@dataclass(slots=True, frozen=True)
class Rejection:
    """A message that was not accepted, and why."""

    reason: Reason
    detail: str


@dataclass(slots=True, frozen=True)
class Limits:
    """How far event time may stray from the receiver's clock."""

    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=7)
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


class _ReadingIn(msgspec.Struct, forbid_unknown_fields=False):
    seq: int
    ts: float | str
    value: float | bool
    metric: str | None = None


class _Envelope(msgspec.Struct, forbid_unknown_fields=False):
    boot: int = 0
    seq: int | None = None
    ts: float | str | None = None
    value: float | bool | None = None
    metric: str | None = None
    readings: list[_ReadingIn] | None = None


_DECODER = msgspec.json.Decoder(_Envelope)
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)


def _parse_ts(raw: float | str) -> datetime | None:
    try:
        if isinstance(raw, str):
            ts = datetime.fromisoformat(raw)
            if ts.tzinfo is None:
                return None
            return ts.astimezone(UTC)
        if not math.isfinite(raw):
            return None
        return datetime.fromtimestamp(raw, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def decode(
    topic: str,
    payload: bytes,
    registry: Registry,
    now: datetime,
    limits: Limits = Limits(),
) -> list[Reading] | Rejection:
    """Decode one MQTT message on a readings topic into readings, or say why not."""
    parsed = topics.parse(topic)
    if parsed is None or parsed.channel is not topics.Channel.READINGS:
        return Rejection(Reason.BAD_TOPIC, f"not a readings topic: {topic[:200]!r}")
    if len(payload) > limits.max_payload_bytes:
        return Rejection(
            Reason.OVERSIZED, f"{len(payload)} bytes > {limits.max_payload_bytes} allowed"
        )
    device = registry.get(parsed.device_id)
    if device is None:
        return Rejection(Reason.UNKNOWN_DEVICE, f"device {parsed.device_id!r} is not registered")
    if device.home_id != parsed.home_id:
        return Rejection(
            Reason.WRONG_HOME,
            f"device {parsed.device_id!r} belongs to another home than {parsed.home_id!r}",
        )
    try:
        envelope = _DECODER.decode(payload)
    except msgspec.ValidationError as exc:
        return Rejection(Reason.SCHEMA, str(exc)[:300])
    except msgspec.DecodeError as exc:
        return Rejection(Reason.MALFORMED, str(exc)[:300])

    if envelope.readings is not None:
        if envelope.seq is not None or envelope.value is not None:
            return Rejection(Reason.SCHEMA, "give either one reading or `readings`, not both")
        if not envelope.readings:
            return Rejection(Reason.SCHEMA, "`readings` is empty")
        if len(envelope.readings) > MAX_BATCH:
            return Rejection(Reason.OVERSIZED, f"batch of {len(envelope.readings)} > {MAX_BATCH}")
        items = envelope.readings
    else:
        if envelope.seq is None or envelope.ts is None or envelope.value is None:
            return Rejection(Reason.SCHEMA, "a reading needs `seq`, `ts` and `value`")
        items = [_ReadingIn(envelope.seq, envelope.ts, envelope.value, envelope.metric)]

    if not 0 <= envelope.boot <= MAX_BOOT:
        return Rejection(Reason.OUT_OF_RANGE, f"boot {envelope.boot} outside 0..{MAX_BOOT}")
    spec_kind = CATALOGUE.get(device.kind)
    if spec_kind is None:
        return Rejection(Reason.UNKNOWN_DEVICE, f"device kind {device.kind!r} is not catalogued")

    out: list[Reading] = []
    for item in items:
        spec = spec_kind.metric(item.metric)
        if spec is None:
            return Rejection(
                Reason.UNKNOWN_METRIC,
                f"{device.kind} has no metric {item.metric!r}"
                if item.metric is not None
                else f"{device.kind} reports several metrics: name one",
            )
        if not 0 <= item.seq <= MAX_SEQ:
            return Rejection(Reason.OUT_OF_RANGE, f"seq {item.seq} outside 0..{MAX_SEQ}")
        if isinstance(item.value, bool) and spec.value_type is ValueType.CONTINUOUS:
            return Rejection(Reason.SCHEMA, f"{spec.name} is a measurement, not true/false")
        value = float(item.value)
        if not math.isfinite(value) or not spec.minimum <= value <= spec.maximum:
            return Rejection(
                Reason.OUT_OF_RANGE,
                f"{spec.name}={item.value!r} outside {spec.minimum:g}..{spec.maximum:g}",
            )
        if spec.value_type is not ValueType.CONTINUOUS and value not in (0.0, 1.0):
            return Rejection(Reason.OUT_OF_RANGE, f"{spec.name} must be 0 or 1")
        ts = _parse_ts(item.ts)
        if ts is None or ts < _MIN_TS:
            return Rejection(Reason.BAD_TIMESTAMP, f"unreadable or zone-less ts {item.ts!r}"[:200])
        if ts > now + limits.max_future:
            return Rejection(Reason.FUTURE_TIMESTAMP, f"ts {ts.isoformat()} is ahead of {now}")
        if ts < now - limits.max_age:
            return Rejection(Reason.TOO_OLD, f"ts {ts.isoformat()} is older than {limits.max_age}")
        out.append(
            Reading(
                home_id=device.home_id,
                device_id=device.device_id,
                kind=device.kind,
                boot=envelope.boot,
                seq=item.seq,
                ts=ts,
                metric=spec.name,
                value=value,
            )
        )
    return out


def encode(readings: list[Reading]) -> bytes:
    """Encode readings of one device and boot as a payload (used by simulators and tests)."""
    if not readings:
        raise ValueError("nothing to encode")
    boot = readings[0].boot
    items = [
        {"seq": r.seq, "ts": r.ts.timestamp(), "metric": r.metric, "value": r.value}
        for r in readings
    ]
    if len(items) == 1:
        return msgspec.json.encode({"boot": boot, **items[0]})
    return msgspec.json.encode({"boot": boot, "readings": items})
