"""The clinic's on-call rota: who is on call now, the next 8 weeks, rotations and swaps."""

from __future__ import annotations

from datetime import datetime, timedelta

from clinics.models import Membership
from clinics.selectors import rota_plans

WEEKS_SHOWN = 8


def _active_members(clinic) -> dict[int, Membership]:
    return {m.pk: m for m in Membership.objects.active().filter(clinic=clinic).select_related("user")}


def on_call_summary(clinic, now: datetime, members: dict[int, Membership] | None = None) -> list[dict]:
    """Each rotation in use: who is on call now (None: nobody) and until when."""
    members = _active_members(clinic) if members is None else members
    rows = []
    for plan in rota_plans(now, now + timedelta(weeks=WEEKS_SHOWN), clinic_ids=[clinic.pk]):
        if not plan.in_use:
            continue
        current = plan.shifts[0]
        rows.append({"rotation": plan.rotation, "member": members.get(current.member_id), "until": current.ends_at})
    return rows
