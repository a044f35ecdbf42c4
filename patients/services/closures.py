"""Clinic closures: entered, edited and removed by clinic admins; each moves the stored refill due
dates of the clinic's pumps in the same transaction (CLINICAL.md "Closed days")."""

from __future__ import annotations

from datetime import date, datetime

from django.db import transaction

from clinics.models import Clinic, ClinicClosure

from .common import _actor, _full_clean, _now, _save
from .projections import redate_projections


@transaction.atomic
def save_closure(
    *,
    clinic: Clinic,
    actor,
    first_day: date,
    last_day: date,
    reason: str,
    closure: ClinicClosure | None = None,
    now: datetime | None = None,
) -> ClinicClosure:
    """Enter a closure (or change ``closure``) and move the due dates it touches; history kept."""
    # The clinic row is the lock: two admins editing the calendar are taken one at a time.
    clinic = Clinic.objects.select_for_update().get(pk=clinic.pk)
    if closure is None:
        closure = ClinicClosure(clinic=clinic)
    else:
        closure = ClinicClosure.objects.select_for_update().get(pk=closure.pk, clinic=clinic)
    closure.first_day, closure.last_day, closure.reason = first_day, last_day, (reason or "").strip()
    _full_clean(closure)
    _save(closure, actor)
    redate_projections(clinic, _now(now))
    return closure


@transaction.atomic
def remove_closure(*, closure: ClinicClosure, actor, now: datetime | None = None) -> None:
    """Remove a closure (its history row keeps it) and move the due dates back where they belong."""
    clinic = Clinic.objects.select_for_update().get(pk=closure.clinic_id)
    closure = ClinicClosure.objects.get(pk=closure.pk, clinic=clinic)
    closure._history_user = _actor(actor)
    closure.delete()
    redate_projections(clinic, _now(now))
