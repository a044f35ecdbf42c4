"""Read queries of the on-call rota: who is on call now, the shifts of a period, the gaps.

The arithmetic is clinics/rota.py; this module only loads rotations, overrides and the active
memberships for it, in a fixed number of queries whatever the number of clinics or shifts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import OuterRef, Subquery

from . import rota
from .models import Membership, RotaOverride, Rotation

GAP_HORIZON = timedelta(days=14)


def on_call_now(now: datetime, *, clinic_ids=None, rotation_ids=None) -> dict[int, tuple[Rotation, int | None]]:
    """Each rotation's member on call at ``now`` (a membership id, or None: nobody), keyed by
    rotation id. One query: the override in force is a subquery of the rotation row. Whether that
    membership is still active is the caller's check (it has the active memberships at hand)."""
    in_force = RotaOverride.objects.filter(rotation=OuterRef("pk"), starts_at__lte=now, ends_at__gt=now).order_by("-pk")
    rotations = Rotation.objects.select_related("clinic").annotate(
        override_member_id=Subquery(in_force.values("membership_id")[:1])
    )
    if clinic_ids is not None:
        rotations = rotations.filter(clinic_id__in=set(clinic_ids))
    if rotation_ids is not None:
        rotations = rotations.filter(pk__in=set(rotation_ids))
    result = {}
    for rotation in rotations:
        member = rotation.override_member_id or rota.rotation_member_at(rotation.spec(), now)
        result[rotation.pk] = (rotation, member)
    return result


def on_call_members(clinic, now: datetime, rotation_ids=None) -> list[Membership]:
    """The active memberships on call at ``now`` on the clinic's rotations (or the ones named)."""
    current = on_call_now(now, clinic_ids=[clinic.pk], rotation_ids=rotation_ids)
    ids = {member for _rotation, member in current.values() if member is not None}
    return list(Membership.objects.active().filter(pk__in=ids, clinic=clinic).select_related("user"))


@dataclass
class RotaPlan:
    """A rotation's shifts over a period, with overrides applied, and its gaps."""

    rotation: Rotation
    shifts: list[rota.Shift]
    gaps: list[tuple[datetime, datetime]]

    @property
    def in_use(self) -> bool:
        """A rotation nobody was ever put on is not in use: its emptiness is no gap to report."""
        return bool(self.rotation.member_ids)


def rota_plans(start: datetime, end: datetime, *, clinic_ids=None, rotations=None) -> list[RotaPlan]:
    """Every rotation's shifts from ``start`` to ``end`` (of the clinics, or the rotations given).
    Three queries: rotations, their overrides in the period, the active memberships."""
    if rotations is None:
        rotations = Rotation.objects.select_related("clinic")
        if clinic_ids is not None:
            rotations = rotations.filter(clinic_id__in=set(clinic_ids))
        rotations = list(rotations)
    if not rotations:
        return []
    overrides = defaultdict(list)
    for override in RotaOverride.objects.filter(
        rotation__in=[r.pk for r in rotations], ends_at__gt=start, starts_at__lt=end
    ).order_by("pk"):
        overrides[override.rotation_id].append(override.spec())
    active = set(
        Membership.objects.active().filter(clinic_id__in={r.clinic_id for r in rotations}).values_list("pk", flat=True)
    )
    plans = []
    for rotation in rotations:
        shifts = rota.shifts(rotation.spec(), overrides[rotation.pk], start, end)
        plans.append(RotaPlan(rotation, shifts, rota.gaps(shifts, active)))
    return plans


def rota_gaps(
    now: datetime, *, clinic_ids=None, horizon: timedelta = GAP_HORIZON
) -> list[tuple[Rotation, datetime, datetime]]:
    """The periods in the next ``horizon`` with nobody on call on a rotation in use."""
    return [
        (plan.rotation, starts_at, ends_at)
        for plan in rota_plans(now, now + horizon, clinic_ids=clinic_ids)
        if plan.in_use
        for starts_at, ends_at in plan.gaps
    ]


def on_call_shifts_of(user, start: datetime, end: datetime) -> list[tuple[Rotation, rota.Shift]]:
    """A person's on-call shifts from ``start`` to ``end`` on every rotation of their active
    memberships (their calendar feed)."""
    memberships = {m.pk: m for m in Membership.objects.active().filter(user=user)}
    if not memberships:
        return []
    plans = rota_plans(start, end, clinic_ids={m.clinic_id for m in memberships.values()})
    return [
        (plan.rotation, shift)
        for plan in plans
        for shift in plan.shifts
        if shift.member_id in memberships and memberships[shift.member_id].clinic_id == plan.rotation.clinic_id
    ]
