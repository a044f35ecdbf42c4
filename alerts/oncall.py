"""Who an escalation level names, resolved at the time of the step.

A level names roles, named staff, the pump's assigned nurse, and on-call rotas. The rotas are
resolved here from clinics' rota arithmetic at the moment of each step (never when the alert was
raised): the nurse on call when an alert repeats at 03:00 on Tuesday is whoever the rota says then.

``level_recipients`` is the one place a level becomes people; callers that only want "who is on
call now" use ``on_call_users``.
"""

from __future__ import annotations

from datetime import datetime

from clinics.models import Membership
from clinics.selectors import on_call_members, on_call_now


def named_rotations(level: dict, clinic_rotation_ids) -> set[int]:
    """The rotation ids a level snapshot names. Snapshots frozen before rotas existed say
    ``on_call: true``: that meant every on-call member, so every rotation of the clinic."""
    if "on_call_rotation_ids" in level:
        return {int(pk) for pk in level["on_call_rotation_ids"]}
    return set(clinic_rotation_ids) if level.get("on_call") else set()


def needs_rota(level: dict) -> bool:
    return bool(level.get("on_call_rotation_ids") or level.get("on_call"))


def on_call_by_rotation(clinic_ids, now: datetime) -> dict[int, dict[int, int | None]]:
    """clinic id → {rotation id → membership id on call at ``now`` (or None)}. One query."""
    by_clinic: dict[int, dict[int, int | None]] = {clinic_id: {} for clinic_id in clinic_ids}
    for rotation_id, (rotation, member_id) in on_call_now(now, clinic_ids=clinic_ids).items():
        by_clinic.setdefault(rotation.clinic_id, {})[rotation_id] = member_id
    return by_clinic


def level_recipients(level: dict, alert, members: list[Membership], on_call: dict[int, int | None]) -> list[Membership]:
    """The active memberships a level snapshot reaches for ``alert`` now. ``members``: the clinic's
    active memberships; ``on_call``: rotation id → membership id on call now (``on_call_by_rotation``).
    A rota member who is no longer active is in ``on_call`` but not in ``members``: nobody."""
    on_call_ids = {on_call.get(pk) for pk in named_rotations(level, on_call)} - {None}
    assigned_nurse_id = alert.pump.assigned_nurse_id if alert.pump_id else None
    chosen = {}
    for m in members:
        if (
            m.role in level.get("roles", [])
            or m.pk in on_call_ids
            or (level.get("assigned_nurse") and assigned_nurse_id is not None and m.user_id == assigned_nurse_id)
            or m.user_id in level.get("user_ids", [])
        ):
            chosen[m.user_id] = m
    return list(chosen.values())


def on_call_users(clinic, now: datetime, rotation_ids=None) -> list:
    """The active users on call at ``now`` on the clinic's rotas (or the ones named)."""
    return [m.user for m in on_call_members(clinic, now, rotation_ids)]
