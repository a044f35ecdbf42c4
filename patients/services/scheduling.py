"""Appointments."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from clinics.access import role_in
from clinics.calendar import calendar_of
from clinics.models import Role

from .. import signals
from ..models import (
    Appointment,
    Pump,
    PumpProjection,
)
from .common import (
    CLOCK_SKEW,
    _now,
    _refuse,
    _require_aware,
    _save,
    _text_errors,
)

# --- appointments and events -----------------------------------------------------------


@transaction.atomic
def schedule_appointment(
    *,
    pump: Pump,
    actor,
    kind: str,
    scheduled_for: datetime,
    assigned_to=None,
    notes: str = "",
    closed_day_confirmed: bool = False,
    now: datetime | None = None,
) -> tuple[Appointment, list[str]]:
    """Book an appointment; returns it with warnings (a refill booked after the due date). A day
    the clinic is closed needs ``closed_day_confirmed`` (CLINICAL.md "Closed days")."""
    now = _now(now)
    errors: dict[str, str] = {}
    _require_aware("scheduled_for", scheduled_for, errors)
    if not errors and not closed_day_confirmed:
        day = scheduled_for.astimezone(pump.patient.clinic.zone).date()
        why = calendar_of(pump.patient.clinic).why_closed(day)
        if why:
            errors["scheduled_for"] = (
                f"The clinic is closed on {day:%a %Y-%m-%d} ({why}). Confirm to book on a closed day anyway."
            )
    if kind not in Appointment.Kind.values:
        errors["kind"] = f"Choose one of: {', '.join(Appointment.Kind.values)}."
    if pump.status != Pump.Status.ACTIVE:
        errors["pump"] = "This pump is explanted."
    care_roles = (Role.NURSE, Role.PHYSICIAN)
    if (
        assigned_to is not None
        and not assigned_to.is_superuser
        and role_in(assigned_to, pump.access_clinic_id) not in care_roles
    ):
        errors["assigned_to"] = "Assign the appointment to care staff of this clinic."
    _text_errors(Appointment, errors, notes=notes)
    if errors:
        _refuse(errors)
    appointment = _save(
        Appointment(
            pump=pump, kind=kind, scheduled_for=scheduled_for, assigned_to=assigned_to, notes=notes, created_by=actor
        ),
        actor,
    )
    warnings = []
    projection = PumpProjection.objects.filter(pump=pump).first()
    if kind == Appointment.Kind.REFILL and projection is not None:
        zone = pump.patient.clinic.zone
        if scheduled_for.astimezone(zone).date() > projection.refill_due_on:
            warnings.append(
                f"This refill is booked after the pump's refill due date ({projection.refill_due_on:%Y-%m-%d})."
            )
    if scheduled_for < now - CLOCK_SKEW:
        warnings.append("This appointment is in the past.")
    signals.appointment_changed.send(sender=Appointment, appointment=appointment, now=now)
    return appointment, warnings


def _set_appointment_status(appointment: Appointment, actor, status: str, now: datetime | None) -> Appointment:
    now = _now(now)
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if appointment.status != Appointment.Status.SCHEDULED:
            _refuse({"status": f"This appointment is already {appointment.get_status_display().lower()}."})
        appointment.status = status
        appointment.status_changed_at = now
        _save(appointment, actor)
        signals.appointment_changed.send(sender=Appointment, appointment=appointment, now=now)
    return appointment


def complete_appointment(*, appointment: Appointment, actor, now: datetime | None = None) -> Appointment:
    return _set_appointment_status(appointment, actor, Appointment.Status.COMPLETED, now)


def mark_appointment_missed(*, appointment: Appointment, actor, now: datetime | None = None) -> Appointment:
    return _set_appointment_status(appointment, actor, Appointment.Status.MISSED, now)


def cancel_appointment(*, appointment: Appointment, actor, now: datetime | None = None) -> Appointment:
    return _set_appointment_status(appointment, actor, Appointment.Status.CANCELLED, now)
