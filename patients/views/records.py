"""The patient page and the pump page: what a nurse reads before touching the pump."""

from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinics.access import log_access
from clinics.models import AccessLog

from .. import services
from ..models import Appointment, Patient, Program, PumpEvent, PumpProjection, RefillVisit
from ..selectors import NEVER_FILLED, change_history, open_alerts_of, program_in_effect
from .chart import reservoir_chart
from .common import can_record_care, get_pump

RISK_FLAGS = (
    ("sci_at_or_above_t6", "Spinal cord injury at or above T6"),
    ("communication_difficulty", "Communication difficulty"),
    ("prior_withdrawal", "History of withdrawal"),
)
OTHER_RISKS = (
    ("renal_impairment", "Renal impairment"),
    ("cns_depressants", "Takes CNS depressants"),
    ("pregnancy_or_breastfeeding", "Pregnancy or breast-feeding"),
)


def projection_of(pump) -> PumpProjection | None:
    try:
        return pump.projection
    except PumpProjection.DoesNotExist:
        return None


def standing_order(programs, program):
    """The program whose physician's order ``program`` carries on: itself when it names one, else
    the latest earlier program with the same dose that does (a refill at an unchanged dose names
    nobody). None when no order is on record."""
    if program is None:
        return None
    dose = (program.daily_dose_mcg, program.bolus_mcg_per_day)
    for earlier in reversed(programs[: programs.index(program) + 1]):
        if (earlier.daily_dose_mcg, earlier.bolus_mcg_per_day) != dose:
            return None
        if earlier.ordered_by_id is not None:
            return earlier
    return None


def risk_context(patient) -> dict:
    return {
        "withdrawal_risks": [label for field, label in RISK_FLAGS if getattr(patient, field)],
        "other_risks": [label for field, label in OTHER_RISKS if getattr(patient, field)],
    }


def describe_projection(pump, projection, now) -> dict:
    """The projection's facts in the clinic's terms: status, reservoir now, days to the due date."""
    if projection is None:
        return {"status": NEVER_FILLED}
    zone = pump.patient.clinic.zone
    reservoir = projection.reservoir_ml_at(now)
    capacity = pump.pump_model.reservoir_ml
    return {
        "status": projection.status_at(now),
        "reservoir_ml": reservoir,
        "reservoir_pct": round(reservoir / capacity * 100) if capacity else None,
        "days_left": (projection.refill_due_on - now.astimezone(zone).date()).days,
    }


def _review_conclusions_history(pump):
    # The alerting side's rows, read through the reverse relation: no import of alerts (DESIGN.md).
    conclusion_model = type(pump)._meta.get_field("review_conclusions").related_model
    return conclusion_model.history.filter(pump_id=pump.pk)


@require_GET
def pump_detail(request, pk):
    pump = get_pump(request, pk)
    patient = pump.patient
    log_access(request.user, AccessLog.Action.VIEW, patient, detail=f"pump {pump.reference}")
    now = timezone.now()
    projection = projection_of(pump)
    programs = list(
        pump.programs.select_related("ordered_by", "verified_by", "entered_by").order_by("effective_at", "id")
    )
    refills = list(
        pump.refills.select_related("performed_by", "drug_product", "program", "program__ordered_by").order_by(
            "-performed_at"
        )
    )
    for refill in refills:
        refill.withdrawal_sign_labels = [
            services.WITHDRAWAL_SIGNS.get(key, key) for key in getattr(refill, "withdrawal_signs", None) or []
        ]
    appointments = list(pump.appointments.select_related("assigned_to").order_by("-scheduled_for", "-id"))
    events = list(pump.events.select_related("reported_by").order_by("-occurred_at", "-id"))
    for event in events:
        event.symptom_labels = [services.SYMPTOMS.get(key, key) for key in event.symptoms]
    zone = patient.clinic.zone
    program = program_in_effect(programs, now)
    order = standing_order(programs, program)
    countersign_hours = settings.ORDER_COUNTERSIGN_HOURS

    def refill_label(row):
        return f"Refill of {row.performed_at.astimezone(zone):%Y-%m-%d %H:%M}"

    history, history_truncated = change_history(
        [
            ("Patient", patient.history.all()),
            ("Pump", pump.history.all()),
            (refill_label, RefillVisit.history.filter(pump_id=pump.pk)),
            ("Dose program", Program.history.filter(pump_id=pump.pk)),
            ("Appointment", Appointment.history.filter(pump_id=pump.pk)),
            ("Pump event", PumpEvent.history.filter(pump_id=pump.pk)),
            ("Physician review", _review_conclusions_history(pump)),
        ]
    )
    context = {
        "pump": pump,
        "patient": patient,
        "clinic": patient.clinic,
        "projection": projection,
        "facts": describe_projection(pump, projection, now),
        "program": program,
        "order": order,
        "can_countersign": order is not None
        and order.awaits_countersign
        and services.can_countersign(request.user, order),
        "order_unsigned_overdue": order is not None
        and order.awaits_countersign
        and now - order.countersign_requested_at >= timedelta(hours=countersign_hours),
        "countersign_hours": countersign_hours,
        "programs": list(reversed(programs)),
        "refills": refills,
        "appointments": appointments,
        "open_appointments": [a for a in appointments if a.status == Appointment.Status.SCHEDULED],
        "events": events,
        "open_alerts": list(open_alerts_of(pump).select_related("acknowledged_by")),
        "history": history,
        "history_truncated": history_truncated,
        "chart": reservoir_chart(pump, projection, refills, now),
        "can_record": can_record_care(request, pump),
        "now": now,
        **risk_context(patient),
    }
    return render(request, "patients/pump_detail.html", context)


@require_GET
def patient_detail(request, pk):
    patient = get_object_or_404(Patient.objects.for_user(request.user).select_related("clinic"), pk=pk)
    log_access(request.user, AccessLog.Action.VIEW, patient)
    now = timezone.now()
    pumps = list(
        patient.pumps.select_related("pump_model", "assigned_nurse", "projection").order_by("status", "-implanted_on")
    )
    by_id = {pump.pk: pump for pump in pumps}
    for pump in pumps:
        pump.patient = patient  # the page already holds it: no query per pump
        pump.facts = describe_projection(pump, projection_of(pump), now)
        pump.successor = None
    for pump in pumps:
        # A replacement links the new pump to the old one (``replaces``): both shown, linked.
        pump.predecessor = by_id.get(getattr(pump, "replaces_id", None))
        if pump.predecessor is not None:
            pump.predecessor.successor = pump
    history, history_truncated = change_history([("Patient", patient.history.all())])
    context = {
        "patient": patient,
        "clinic": patient.clinic,
        "pumps": pumps,
        "history": history,
        "history_truncated": history_truncated,
        "can_record": can_record_care(request, patient),
        "can_edit": request.user.has_perm("patients.register_patient", patient),
        **risk_context(patient),
    }
    return render(request, "patients/patient_detail.html", context)
