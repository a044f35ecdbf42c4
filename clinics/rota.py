"""On-call rota arithmetic: who is on call when, from a rotation and its overrides. Pure Python,
no Django (like patients/depletion.py): plain values in, plain values out, every instant aware.

A rotation hands over at a fixed wall-clock time in the clinic's zone every ``length_days`` days,
starting on ``starts_on``; members take turns in order. Hand-overs are computed as local dates
plus days, then the local time is placed in the zone, so a daylight-saving change never shifts a
hand-over: the shift across the change is simply an hour longer or shorter. A hand-over time that
does not exist on a spring-forward day (02:30 in New York) is taken as the same wall-clock reading
in the old offset (zoneinfo's ``fold=0``), i.e. an hour later on the new clock.

An override puts one member on call instead of the rotation from one instant to another (a swap,
sick cover); where overrides overlap, the latest added wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Rotation:
    member_ids: tuple[int, ...]
    starts_on: date
    handover_time: time
    length_days: int
    zone: ZoneInfo


@dataclass(frozen=True)
class Override:
    member_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Shift:
    """``member_id`` None: nobody on this rota in that period (before it starts, or no members)."""

    member_id: int | None
    starts_at: datetime
    ends_at: datetime
    is_override: bool = False

    @property
    def hours(self) -> float:
        return (self.ends_at - self.starts_at).total_seconds() / 3600


def handover_at(rotation: Rotation, index: int) -> datetime:
    """The instant (UTC) the ``index``-th shift starts: a local date plus whole days, placed in the zone."""
    local_day = rotation.starts_on + timedelta(days=index * rotation.length_days)
    return datetime.combine(local_day, rotation.handover_time, tzinfo=rotation.zone).astimezone(UTC)


def shift_index_at(rotation: Rotation, at: datetime) -> int | None:
    """Which shift of the rotation ``at`` falls in, or None before the first hand-over."""
    local_day = at.astimezone(rotation.zone).date()
    index = (local_day - rotation.starts_on).days // rotation.length_days
    # The local date gives the shift up to the hand-over hour on a hand-over day: settle it exactly.
    while index >= 0 and handover_at(rotation, index) > at:
        index -= 1
    while handover_at(rotation, index + 1) <= at:
        index += 1
    return index if index >= 0 else None


def rotation_member_at(rotation: Rotation, at: datetime) -> int | None:
    index = shift_index_at(rotation, at)
    if index is None or not rotation.member_ids:
        return None
    return rotation.member_ids[index % len(rotation.member_ids)]


def member_at(rotation: Rotation, overrides: Iterable[Override], at: datetime) -> int | None:
    """Who is on call on this rota at ``at``: the latest override covering it, else the rotation."""
    covering = [o for o in overrides if o.starts_at <= at < o.ends_at]
    if covering:
        return covering[-1].member_id
    return rotation_member_at(rotation, at)


def rotation_shifts(rotation: Rotation, start: datetime, end: datetime) -> list[Shift]:
    """The rotation's own shifts covering [start, end), clipped to it, before any override."""
    if end <= start:
        return []
    shifts = []
    index = shift_index_at(rotation, start)
    if index is None:
        first = handover_at(rotation, 0)
        shifts.append(Shift(None, start, min(first, end)))
        index = 0
        cursor = first
    else:
        cursor = start
    while cursor < end:
        next_handover = handover_at(rotation, index + 1)
        member = rotation.member_ids[index % len(rotation.member_ids)] if rotation.member_ids else None
        shifts.append(Shift(member, cursor, min(next_handover, end)))
        cursor = next_handover
        index += 1
    return shifts


def shifts(rotation: Rotation, overrides: Sequence[Override], start: datetime, end: datetime) -> list[Shift]:
    """Who is on call on this rota from ``start`` to ``end``: contiguous shifts with overrides
    applied (the latest added wins where they overlap); neighbours with one member are merged."""
    result = rotation_shifts(rotation, start, end)
    for override in overrides:
        lo, hi = max(override.starts_at, start), min(override.ends_at, end)
        if lo >= hi:
            continue
        cut = []
        for shift in result:
            if shift.ends_at <= lo or shift.starts_at >= hi:
                cut.append(shift)
                continue
            if shift.starts_at < lo:
                cut.append(Shift(shift.member_id, shift.starts_at, lo, shift.is_override))
            if shift.ends_at > hi:
                cut.append(Shift(shift.member_id, hi, shift.ends_at, shift.is_override))
        cut.append(Shift(override.member_id, lo, hi, True))
        result = sorted(cut, key=lambda s: s.starts_at)
    merged: list[Shift] = []
    for shift in result:
        last = merged[-1] if merged else None
        if (
            last
            and last.ends_at == shift.starts_at
            and last.member_id == shift.member_id
            and last.is_override == shift.is_override
        ):
            merged[-1] = Shift(last.member_id, last.starts_at, shift.ends_at, last.is_override)
        else:
            merged.append(shift)
    return merged


def gaps(shift_list: Iterable[Shift], on_duty: set[int] | frozenset[int]) -> list[tuple[datetime, datetime]]:
    """The periods with nobody on call: shifts of nobody, or of a member not in ``on_duty`` (a
    deactivated member still listed in the rotation reaches no one). Adjacent periods merge."""
    found: list[tuple[datetime, datetime]] = []
    for shift in shift_list:
        if shift.member_id is not None and shift.member_id in on_duty:
            continue
        if found and found[-1][1] == shift.starts_at:
            found[-1] = (found[-1][0], shift.ends_at)
        else:
            found.append((shift.starts_at, shift.ends_at))
    return found


def next_weekday_on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def last_weekday_on_or_before(day: date, weekday: int) -> date:
    return day - timedelta(days=(day.weekday() - weekday) % 7)
