"""Closure planning: the pumps to refill before a closure (CLINICAL.md "Closed days").

A pump is listed when its unmoved refill due date falls in the closure, or its conservative alarm or
drug expiry falls between the closure's first day and its last day plus the pump's margin: it must
be refilled before the clinic closes. Its latest safe refill day is the last open day on or before
its unmoved due date; a refill booked after that day is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q

from clinics.calendar import ClinicCalendar
from clinics.models import Clinic, ClinicClosure
from patients import depletion
from patients.models import Appointment, Pump
from patients.services import margin_for


@dataclass
class PlannedPump:
    pump: Pump
    reasons: list[str]
    unmoved_due_on: date
    latest_safe_day: date
    booked_at: datetime | None

    @property
    def booked_in_time(self) -> bool:
        return self.booked_at is not None and self.booked_at.astimezone(self.pump.patient.clinic.zone).date() <= (
            self.latest_safe_day
        )


def pumps_to_refill_before(clinic: Clinic, closure: ClinicClosure, calendar: ClinicCalendar) -> list[PlannedPump]:
    """The clinic's pumps in service that must be refilled before ``closure``, soonest first.
    Three queries whatever the number of pumps: pumps with projections, booked refills, none per pump."""
    zone = clinic.zone
    start = depletion.start_of_day(closure.first_day, zone)
    # A pump listed for its alarm or expiry (before the last day plus its margin) is due — that
    # date minus its margin — on or before the last day: the pre-filter, whatever the margins.
    candidates = (
        Pump.objects.in_service()
        .filter(patient__clinic=clinic, projection__unmoved_refill_due_on__lte=closure.last_day)
        .filter(
            Q(projection__unmoved_refill_due_on__gte=closure.first_day)
            | Q(projection__conservative_lra_at__gte=start)
            | Q(projection__drug_expires_at__gte=start)
        )
        .select_related("projection", "patient", "patient__clinic", "pump_model", "assigned_nurse")
        .order_by("projection__refill_due_on", "pk")
    )
    planned = []
    for pump in candidates:
        projection = pump.projection
        end = depletion.start_of_day(closure.last_day + timedelta(days=margin_for(clinic, pump.patient) + 1), zone)
        reasons = []
        if closure.first_day <= projection.unmoved_refill_due_on <= closure.last_day:
            reasons.append(f"due {projection.unmoved_refill_due_on:%a %m-%d}, during the closure")
        if projection.conservative_lra_at is not None and start <= projection.conservative_lra_at < end:
            reasons.append(f"alarm (conservative) {projection.conservative_lra_at.astimezone(zone):%a %m-%d %H:%M}")
        if start <= projection.drug_expires_at < end:
            reasons.append(f"drug expires {projection.drug_expires_at.astimezone(zone):%a %m-%d %H:%M}")
        if reasons:
            latest = depletion.last_open_day_on_or_before(projection.unmoved_refill_due_on, calendar)
            planned.append(PlannedPump(pump, reasons, projection.unmoved_refill_due_on, latest, None))
    if planned:
        booked = (
            Appointment.objects.filter(
                pump__in=[p.pump for p in planned], kind=Appointment.Kind.REFILL, status=Appointment.Status.SCHEDULED
            )
            .order_by("pump_id", "scheduled_for")
            .values_list("pump_id", "scheduled_for")
        )
        first_booking = {}
        for pump_id, at in booked:
            first_booking.setdefault(pump_id, at)
        for p in planned:
            p.booked_at = first_booking.get(p.pump.pk)
    planned.sort(key=lambda p: (p.latest_safe_day, p.pump.pk))
    return planned
