"""Step 1's question: which scanned conditions hold now (refill family, missed appointments, delivery
drift, replacement, unsigned dose orders), each as one set-based, indexed query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Exists, F, Max, Min, OuterRef, Q, Subquery

from patients import depletion
from patients.models import Appointment, Patient, Program, Pump
from patients.selectors import with_status

from ..models import REFILL_FAMILY, AlertKind, Severity, dedupe_key, one_step_higher
from .common import KIND_SEVERITY, severity_for

# CLINICAL.md "Battery end of service": critical within this many days of the end of service.
END_OF_SERVICE_CRITICAL_DAYS = 30
# Kinds whose condition the scan evaluates (and so also resolves when it clears, or when the pump
# leaves the scan). Pump alarms, physician reviews and "left care" notices are raised by the
# recording services' signals and resolved by people (or by a refill).
SCANNED_KINDS = (
    *REFILL_FAMILY,
    AlertKind.APPOINTMENT_MISSED,
    AlertKind.DELIVERY_DRIFT,
    AlertKind.REPLACEMENT_DUE,
    AlertKind.ORDER_UNSIGNED,
)


def _high_risk(prefix: str = "") -> Q:
    """The patient has a withdrawal-risk flag (Gablofen label), as a boolean SQL expression."""
    return (
        Q(**{f"{prefix}patient__sci_at_or_above_t6": True})
        | Q(**{f"{prefix}patient__communication_difficulty": True})
        | Q(**{f"{prefix}patient__prior_withdrawal": True})
    )


@dataclass
class Wanted:
    pump_id: int
    clinic_id: int
    kind: str
    severity: int
    detail: str = ""
    refill_id: int | None = None
    program_id: int | None = None


def _in_service(pump_ids):
    # No ORDER BY: the pump list's default order would join and sort patients for nothing.
    pumps = Pump.objects.in_service().order_by()
    return pumps if pump_ids is None else pumps.filter(pk__in=pump_ids)


def _in_service_q(prefix: str, pump_ids=None) -> Q:
    """In service as join conditions on ``prefix`` (not ``pump__in=<every pump in service>``)."""
    condition = Q(**{f"{prefix}status": Pump.Status.ACTIVE, f"{prefix}patient__status": Patient.Status.ACTIVE})
    return condition if pump_ids is None else condition & Q(**{f"{prefix}pk__in": pump_ids})


def wanted_alerts(now: datetime, pump_ids=None) -> dict[str, Wanted]:
    """Every scanned condition that holds now, keyed by dedupe key. A handful of queries."""
    wanted: dict[str, Wanted] = {}
    pumps = _in_service(pump_ids)

    def want(pump_id, clinic_id, kind, high_risk, detail=""):
        wanted[dedupe_key(kind, pump_id)] = Wanted(pump_id, clinic_id, kind, severity_for(kind, high_risk), detail)

    # Refill family: only pumps at least "due soon" (an indexed range on the stored instant).
    timely_appointment = Appointment.objects.filter(
        pump=OuterRef("pk"),
        kind=Appointment.Kind.REFILL,
        status=Appointment.Status.SCHEDULED,
        # "on or before the due date": before the start of the day after it, in the clinic's zone
        scheduled_for__lt=OuterRef("projection__overdue_from"),
    )
    rows = (
        with_status(pumps.filter(projection__due_soon_from__lte=now, projection__is_stopped=False), now)
        .annotate(has_timely_appointment=Exists(timely_appointment), high_risk=_high_risk())
        .values_list("pk", "patient__clinic_id", "refill_status", "has_timely_appointment", "high_risk")
    )
    for pump_id, clinic_id, status, has_appointment, high_risk in rows:
        if status == depletion.CRITICAL:
            want(pump_id, clinic_id, AlertKind.RESERVOIR_CRITICAL, high_risk, "Conservative alarm within hours")
        elif status == depletion.OVERDUE:
            want(pump_id, clinic_id, AlertKind.REFILL_OVERDUE, high_risk, "Past its refill due date")
        elif status == depletion.DUE_SOON and not has_appointment:
            want(pump_id, clinic_id, AlertKind.REFILL_DUE, high_risk, "Due soon, no refill booked on or before it")

    # Missed refill appointments: marked missed, or still open past the clinic's grace period,
    # with no refill since and no newer refill appointment booked.
    newer_booking = Appointment.objects.filter(
        pump=OuterRef("pump"),
        kind=Appointment.Kind.REFILL,
        status=Appointment.Status.SCHEDULED,
        scheduled_for__gt=OuterRef("scheduled_for"),
    )
    missed = (
        Appointment.objects.filter(
            _in_service_q("pump__", pump_ids), kind=Appointment.Kind.REFILL, scheduled_for__lte=now
        )
        .filter(Q(status=Appointment.Status.MISSED) | Q(status=Appointment.Status.SCHEDULED))
        .filter(Q(pump__projection__isnull=True) | Q(scheduled_for__gt=F("pump__projection__filled_at")))
        .exclude(Exists(newer_booking))
        .annotate(high_risk=_high_risk("pump__"))
        .values_list(
            "pump_id",
            "pump__patient__clinic_id",
            "status",
            "scheduled_for",
            "pump__patient__clinic__appointment_grace_hours",
            "high_risk",
        )
    )
    for pump_id, clinic_id, status, scheduled_for, grace_hours, high_risk in missed:
        if status == Appointment.Status.MISSED or scheduled_for + timedelta(hours=grace_hours) <= now:
            want(pump_id, clinic_id, AlertKind.APPOINTMENT_MISSED, high_risk, "Refill appointment missed")

    # Delivery drift: the measured ratio above the clinic's threshold (physician review). The lowest
    # threshold of all clinics, a constant, lets the range use the index on the ratio.
    lowest_drift_ratio, longest_warning_days = _clinic_bounds()
    drifting = (
        pumps.filter(projection__delivery_ratio__gt=lowest_drift_ratio)
        .filter(projection__delivery_ratio__gt=F("patient__clinic__drift_alert_ratio"))
        .values_list("pk", "patient__clinic_id", "projection__delivery_ratio")
    )
    for pump_id, clinic_id, ratio in drifting:
        want(pump_id, clinic_id, AlertKind.DELIVERY_DRIFT, False, f"Measured delivery ratio {ratio:.2f}")

    # Replacement (CLINICAL.md "Battery end of service"): a reminder within the clinic's warning
    # window before the ERI date, urgent once ERI is reached (reported), critical within 30 days of
    # the end of service (ERI + the model's days). A replacement booked before the end of service
    # quiets it, as a booked refill quiets a refill reminder.
    # A prefilter on the UTC date: a zone ahead of UTC is already a day further on (its own check
    # below decides), so the horizon reaches one day past the longest window.
    horizon = now.astimezone(UTC).date() + timedelta(days=longest_warning_days + 1)
    first_booking = (
        Appointment.objects.filter(
            pump=OuterRef("pk"), kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.SCHEDULED
        )
        .order_by("scheduled_for")
        .values("scheduled_for")[:1]
    )
    approaching = (
        pumps.filter(eri_on__isnull=False, eri_on__lte=horizon)
        .annotate(high_risk=_high_risk(), booked_for=Subquery(first_booking))
        .values_list(
            "pk",
            "patient__clinic_id",
            "eri_on",
            "pump_model__days_eri_to_end_of_service",
            "patient__clinic__replacement_warning_days",
            "patient__clinic__timezone",
            "high_risk",
            "booked_for",
        )
    )
    for pump_id, clinic_id, eri_on, eos_days, days, zone_name, high_risk, booked_for in approaching:
        zone = _zone(zone_name)
        today = now.astimezone(zone).date()
        if eri_on > today + timedelta(days=days):
            continue
        end_of_service = eri_on + timedelta(days=eos_days) if eos_days is not None else None
        if booked_for is not None and (
            end_of_service is None or booked_for < depletion.start_of_day(end_of_service, zone)
        ):
            continue
        eos_text = f"; end of service {end_of_service:%Y-%m-%d}" if end_of_service else ""
        if end_of_service is not None and today >= end_of_service - timedelta(days=END_OF_SERVICE_CRITICAL_DAYS):
            severity, detail = Severity.CRITICAL, f"End of service {end_of_service:%Y-%m-%d}: replace now"
        elif eri_on <= today:
            severity, detail = Severity.URGENT, f"ERI reached {eri_on:%Y-%m-%d}{eos_text}"
        else:
            severity, detail = Severity.REMINDER, f"ERI date {eri_on:%Y-%m-%d}{eos_text}"
        if high_risk:
            severity = one_step_higher(severity)
        key = dedupe_key(AlertKind.REPLACEMENT_DUE, pump_id)
        wanted[key] = Wanted(pump_id, clinic_id, AlertKind.REPLACEMENT_DUE, severity, detail)

    # Nurse-entered dose orders no physician has countersigned within ORDER_COUNTERSIGN_HOURS
    # (a range on the partial index of orders waiting for a countersignature).
    unsigned = Program.objects.filter(
        _in_service_q("pump__", pump_ids),
        countersign_requested_at__isnull=False,
        countersign_requested_at__lte=now - timedelta(hours=settings.ORDER_COUNTERSIGN_HOURS),
        verified_at__isnull=True,
    ).values_list(
        "pk",
        "pump_id",
        "pump__patient__clinic_id",
        "daily_dose_mcg",
        "ordered_by__first_name",
        "ordered_by__last_name",
        "ordered_by__username",
    )
    for program_id, pump_id, clinic_id, dose, first_name, last_name, username in unsigned:
        name = f"{first_name} {last_name}".strip() or username or "a physician"
        detail = f"{dose.normalize():f} mcg/day ordered by {name}: countersign it"
        key = dedupe_key(AlertKind.ORDER_UNSIGNED, pump_id, program_id=program_id)
        wanted[key] = Wanted(
            pump_id,
            clinic_id,
            AlertKind.ORDER_UNSIGNED,
            KIND_SEVERITY[AlertKind.ORDER_UNSIGNED],
            detail,
            program_id=program_id,
        )
    return wanted


def _zone(name):
    return ZoneInfo(name)


def _clinic_bounds() -> tuple[Decimal, int]:
    """The lowest drift threshold and the longest replacement warning of all clinics, in one query."""
    from clinics.models import Clinic

    bounds = Clinic.objects.aggregate(drift=Min("drift_alert_ratio"), warning=Max("replacement_warning_days"))
    return bounds["drift"] or Decimal(1), bounds["warning"] or 180
