"""Room and part-of-day statistics of the learned detectors: where (the room of the last
activity) and when (the part of the local day) an at-home silence began, the longest normal
silence and how many began there then, the limit they give the silence in progress, and the
tail model (generalised Pareto) of how unusual a silence that long is.
"""

from __future__ import annotations

import math

from alerts.detect.learned_homes import HOME, ROOMS, LearnedHomes


def _gpd_fit(
    n: float, s1: float, s2: float, k0: float, scale0: float, shape0: float, max_shape: float
) -> tuple[float, float]:
    """A generalised Pareto tail (scale, shape) by the method of moments on `n` excesses
    (sum `s1`, sum of squares `s2`) pooled with a prior tail worth `k0` of them."""
    m1_0 = scale0 / (1 - shape0)
    m2_0 = 2 * scale0 * scale0 / ((1 - shape0) * (1 - 2 * shape0))
    m1 = (k0 * m1_0 + s1) / (k0 + n)
    m2 = (k0 * m2_0 + s2) / (k0 + n)
    var = max(m2 - m1 * m1, 1e-9)
    shape = min(max(0.5 * (1 - m1 * m1 / var), 0.0), max_shape)
    return m1 * (1 - shape), shape


def _gpd_survival(scale: float, shape: float, excess: float) -> float:
    """The chance a generalised Pareto (scale, shape) tail exceeds `excess`."""
    if shape < 1e-6:
        return math.exp(-excess / scale)
    return float((1 + shape * excess / scale) ** (-1 / shape))


def room_index(d: LearnedHomes, h: int, room: str) -> int:
    """The per-home index of a room (-1: unnamed, or more rooms than are learned)."""
    rooms = d.homes[h].rooms
    idx = rooms.get(room)
    if idx is None:
        if not room or len(rooms) >= ROOMS:
            return -1
        idx = rooms[room] = len(rooms)
    return idx


def room_name(d: LearnedHomes, h: int) -> str | None:
    """The room of the home's last activity reading (None: unknown)."""
    idx = int(d.last_room[h])
    return next((name for name, i in d.homes[h].rooms.items() if i == idx), None)


def learn_room_silence(d: LearnedHomes, h: int, start: float, length: float) -> None:
    """A normal silence at home of `length` seconds, begun at `start` in the room of the last
    activity: the room's record for that part of the day, and its count and moments past
    `room_sample_s`."""
    r = d.rules.inactivity
    room = int(d.last_room[h])
    if room < 0:
        return
    part = d.part(h, start)  # where and when the silence began
    rec = d.room_rec[h, room, part]
    d.room_rec[h, room, part] = max(rec, length)
    if length >= r.room_sample_s:
        excess = length - r.room_sample_s
        d.room_n[h, room, part] += 1
        d.room_s1[h, room, part] += excess
        d.room_s2[h, room, part] += excess * excess


def room_threshold(d: LearnedHomes, h: int, ts: float) -> float:
    """The limit of a silence at home (not seated) by the room it began in (inf: none)."""
    r = d.rules.inactivity
    room = int(d.last_room[h])
    part = d.part(h, ts)
    if (
        room < 0
        or int(d.ctx[h]) != HOME
        or not d.homes[h].covered
        or d.unseen(d.homes[h].home_id)  # a dead device: a room is not seen
        or d.room_n[h, room, part] < r.room_min_silences
        or d.learned_days(h, ts) < r.room_min_days
    ):
        return math.inf
    record = float(d.room_rec[h, room, part])
    return max(record * r.factor + r.room_margin_s, r.room_floor_s)


def room_tail(d: LearnedHomes, h: int, room: int, part: int) -> tuple[float, float] | None:
    """The tail of the silences that begin in this room and part of the day: a
    generalised Pareto (scale, shape) over `room_sample_s` by the method of moments,
    with the population prior (`tail_prior_*`, worth `tail_prior_n` silences) pooled in
    (None: moments not known, a baseline saved before them)."""
    r = d.rules.inactivity
    n = float(d.room_n[h, room, part])
    s1 = float(d.room_s1[h, room, part])
    if n > 0 and s1 <= 0:
        return None
    return _gpd_fit(
        n,
        s1,
        float(d.room_s2[h, room, part]),
        r.tail_prior_n,
        r.tail_prior_scale_s,
        r.tail_prior_shape,
        r.tail_max_shape,
    )


def room_tail_chance(d: LearnedHomes, h: int, silence_s: float, ts: float) -> float | None:
    """The estimated chance that a normal silence begun in the current silence's room
    and part of the day lasts `silence_s` or longer (None: no tail for it)."""
    r = d.rules.inactivity
    room = int(d.last_room[h])
    if room < 0 or silence_s < r.room_sample_s:
        return None
    part = d.part(h, float(d.last_act[h]))
    tail = room_tail(d, h, room, part)
    if tail is None:
        return None
    scale, shape = tail
    return _gpd_survival(scale, shape, silence_s - r.room_sample_s)
