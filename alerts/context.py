"""What an alert's page shows to act on it, per kind (issue #10 item 2).

One function per kind family returns a dataclass the family's template reads; ``alert_context``
picks it. Read-only, built from the patients side's own selectors and depletion functions (no
second copy of a rule), and a constant number of queries per page whatever the pump's history:
each function takes a bounded slice of it. The alert comes with its pump, patient, pump model and
clinic loaded (the alert page's query). Times are instants; the page shows them in clinic time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q

from patients import services as patient_services
from patients.models import Appointment, PumpEvent, PumpProjection, RefillVisit
from patients.selectors import DeliveryInterval, delivery_intervals, delivery_trend
from patients.views.chart import reservoir_chart
from patients.views.records import describe_projection

from .models import AlertKind

RESIDUALS_SHOWN = 5
EVENTS_SHOWN = 5
CALLS_SHOWN = 3
# A refill or call recorded just after the alert's moment still belongs to it (clock skew).
SKEW = timedelta(minutes=5)

REVIEW_KINDS = (AlertKind.RESIDUAL_DISCREPANCY, AlertKind.REFILL_AFTER_EMPTY)


def _projection(pump) -> PumpProjection | None:
    return PumpProjection.objects.filter(pump=pump).first()


def _labels(keys) -> list[str]:
    return [patient_services.SYMPTOMS.get(key, key) for key in keys or []]


# --- refill due, overdue, critical -------------------------------------------------------------


@dataclass
class RefillWork:
    projection: PumpProjection | None
    facts: dict  # status, reservoir_ml, reservoir_pct, days_left (as on the pump page)
    last_refill: RefillVisit | None
    next_appointment: Appointment | None


def refill_work(alert, now: datetime) -> RefillWork:
    pump = alert.pump
    projection = _projection(pump)
    return RefillWork(
        projection=projection,
        facts=describe_projection(pump, projection, now),
        last_refill=pump.refills.select_related("performed_by").order_by("-performed_at").first(),
        next_appointment=pump.appointments.filter(status=Appointment.Status.SCHEDULED)
        .select_related("assigned_to")
        .order_by("scheduled_for", "id")
        .first(),
    )


# --- physician review of a refill (residual discrepancy, refill after an empty reservoir) ------


@dataclass
class ReviewedRefill:
    refill: RefillVisit
    expected_ml: Decimal | None
    aspirated_ml: Decimal
    difference_ml: Decimal | None  # aspirated − expected: negative is a shortfall
    tolerance_ml: Decimal | None
    out_of_tolerance: bool
    withdrawal_sign_labels: list[str]


@dataclass
class ReviewWork:
    reviewed: ReviewedRefill | None
    residuals: list[RefillVisit]  # the last five with an expected residual, newest first
    projection: PumpProjection | None
    calls: list[PumpEvent]  # recent alarms and symptom calls, newest first
    catheter_revisions: list[PumpEvent]
    chart: dict | None


def reviewed_refill(alert) -> RefillVisit | None:
    """The refill the review is about: the alert's own (``Alert.refill``), else (an alert raised
    before reviews named their refill) the pump's latest refill flagged for this kind of review."""
    if alert.refill_id is not None:
        return RefillVisit.objects.select_related("performed_by", "program").filter(pk=alert.refill_id).first()
    flagged = (
        Q(discrepancy=True)
        if alert.kind == AlertKind.RESIDUAL_DISCREPANCY
        else Q(empty_since__isnull=False) | Q(nothing_aspirated=True)
    )
    return (
        alert.pump.refills.filter(flagged, performed_at__lte=alert.raised_at + SKEW)
        .select_related("performed_by", "program")
        .order_by("-performed_at")
        .first()
    )


def _describe_refill(pump, refill: RefillVisit | None) -> ReviewedRefill | None:
    if refill is None:
        return None
    expected = refill.expected_residual_ml
    tolerance = patient_services.residual_tolerance_ml(pump, expected) if expected is not None else None
    difference = refill.aspirated_ml - expected if expected is not None else None
    return ReviewedRefill(
        refill=refill,
        expected_ml=expected,
        aspirated_ml=refill.aspirated_ml,
        difference_ml=difference,
        tolerance_ml=tolerance,
        out_of_tolerance=difference is not None and abs(difference) > tolerance,
        withdrawal_sign_labels=_labels(refill.withdrawal_signs),
    )


def review_work(alert, now: datetime) -> ReviewWork:
    pump = alert.pump
    projection = _projection(pump)
    recent = list(pump.refills.select_related("performed_by").order_by("-performed_at")[: RESIDUALS_SHOWN + 1])
    events = list(
        pump.events.exclude(kind=PumpEvent.Kind.CATHETER_REVISION)
        .select_related("reported_by")
        .order_by("-occurred_at", "-id")[:EVENTS_SHOWN]
    )
    for event in events:
        event.symptom_labels = _labels(event.symptoms)
    residuals = [r for r in recent if r.expected_residual_ml is not None][:RESIDUALS_SHOWN]
    for refill in residuals:
        refill.difference_ml = refill.aspirated_ml - refill.expected_residual_ml
    return ReviewWork(
        reviewed=_describe_refill(pump, reviewed_refill(alert)),
        residuals=residuals,
        projection=projection,
        calls=events,
        catheter_revisions=list(
            pump.events.filter(kind=PumpEvent.Kind.CATHETER_REVISION)
            .select_related("reported_by")
            .order_by("-occurred_at", "-id")[:EVENTS_SHOWN]
        ),
        chart=reservoir_chart(pump, projection, recent, now),
    )


# --- delivery drift ----------------------------------------------------------------------------


@dataclass
class DriftWork:
    intervals: list[DeliveryInterval]  # oldest first
    trend: str  # rising, falling, steady, or "" (too few intervals)
    ratio: Decimal | None  # the pump's measured ratio (the last three usable intervals)
    threshold: Decimal


def drift_work(alert, now: datetime) -> DriftWork:
    pump = alert.pump
    projection = _projection(pump)
    intervals = delivery_intervals(pump)
    return DriftWork(
        intervals=intervals,
        trend=delivery_trend(intervals),
        ratio=projection.delivery_ratio if projection else None,
        threshold=pump.patient.clinic.drift_alert_ratio,
    )


# --- pump alarm or symptoms ----------------------------------------------------------------------


@dataclass
class AlarmWork:
    calls: list[PumpEvent]  # the call that raised it first, then earlier ones
    refill_with_signs: RefillVisit | None  # withdrawal signs ticked at a refill raise it too
    refill_sign_labels: list[str] = field(default_factory=list)
    emergency_message: str = patient_services.EMERGENCY_MESSAGE


def alarm_work(alert, now: datetime) -> AlarmWork:
    pump = alert.pump
    calls = list(
        pump.events.exclude(kind=PumpEvent.Kind.CATHETER_REVISION)
        .filter(occurred_at__lte=max(now, alert.raised_at) + SKEW)
        .select_related("reported_by")
        .order_by("-occurred_at", "-id")[:CALLS_SHOWN]
    )
    for call in calls:
        call.symptom_labels = _labels(call.symptoms)
    refill = (
        pump.refills.filter(performed_at__lte=alert.raised_at + SKEW)
        .select_related("performed_by")
        .order_by("-performed_at")
        .first()
    )
    if refill is not None and (not refill.withdrawal_signs or (calls and calls[0].occurred_at > refill.performed_at)):
        refill = None  # no signs at the last refill, or a later call is what this alert is about
    return AlarmWork(
        calls=calls, refill_with_signs=refill, refill_sign_labels=_labels(refill.withdrawal_signs if refill else [])
    )


# --- missed appointment, replacement -------------------------------------------------------------


@dataclass
class MissedWork:
    appointment: Appointment | None
    phone: str
    contact_notes: str


def missed_work(alert, now: datetime) -> MissedWork:
    pump = alert.pump
    appointment = (
        pump.appointments.filter(
            kind=Appointment.Kind.REFILL,
            status__in=[Appointment.Status.MISSED, Appointment.Status.SCHEDULED],
            scheduled_for__lte=max(now, alert.raised_at),
        )
        .select_related("assigned_to")
        .order_by("-scheduled_for", "-id")
        .first()
    )
    return MissedWork(appointment=appointment, phone=pump.patient.phone, contact_notes=pump.patient.contact_notes)


@dataclass
class ReplacementWork:
    eri_on: object
    end_of_service_on: object
    days_eri_to_end_of_service: int | None
    days_to_end_of_service: int | None
    booked: Appointment | None


def replacement_work(alert, now: datetime) -> ReplacementWork:
    pump = alert.pump
    end = pump.end_of_service_on
    today = now.astimezone(pump.patient.clinic.zone).date()
    return ReplacementWork(
        eri_on=pump.eri_on,
        end_of_service_on=end,
        days_eri_to_end_of_service=pump.pump_model.days_eri_to_end_of_service,
        days_to_end_of_service=(end - today).days if end else None,
        booked=pump.appointments.filter(kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.SCHEDULED)
        .order_by("scheduled_for", "id")
        .first(),
    )


# --- the dispatcher ------------------------------------------------------------------------------

FAMILIES = {
    AlertKind.REFILL_DUE: ("refill", refill_work),
    AlertKind.REFILL_OVERDUE: ("refill", refill_work),
    AlertKind.RESERVOIR_CRITICAL: ("refill", refill_work),
    AlertKind.RESIDUAL_DISCREPANCY: ("review", review_work),
    AlertKind.REFILL_AFTER_EMPTY: ("review", review_work),
    AlertKind.DELIVERY_DRIFT: ("drift", drift_work),
    AlertKind.PUMP_ALARM: ("alarm", alarm_work),
    AlertKind.APPOINTMENT_MISSED: ("missed", missed_work),
    AlertKind.REPLACEMENT_DUE: ("replacement", replacement_work),
}


def alert_context(alert, now: datetime) -> tuple[str | None, object | None]:
    """(template, what it shows) for the alert's page; (None, None) for kinds with nothing to add
    (a rota gap, a left-care notice) and for alerts without a pump."""
    family = FAMILIES.get(alert.kind)
    if family is None or alert.pump_id is None:
        return None, None
    name, build = family
    return f"alerts/context/_{name}.html", build(alert, now)
