"""A record's life: implant with the first fill, explant, replacement, leaving care and coming
back (DESIGN.md flows 6 and 7), and the handover summary a transfer prints.

A patient leaving care or a pump explanted leaves the worklist and the scan at once: the
alerting side (signal ``care_ended``) resolves the alerts the scan raises, with the reason on
their timeline, and leaves pump alarms and physician reviews open for a person to close.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.utils.text import Truncator

from clinics.calendar import calendar_of
from clinics.system import get_system_user

from .. import depletion, signals
from ..models import (
    Appointment,
    Patient,
    PatientStatusChange,
    Pump,
    PumpProjection,
)
from .common import (
    _lock_pump,
    _now,
    _pumps_of,
    _refuse,
    _save,
    _text_errors,
    _today,
)
from .events import WITHDRAWAL_SIGNS  # noqa: F401  (the refill form's checklist, re-exported)
from .intake import ImplantArgs, plan_implant, store_implants
from .projections import recompute_projections


def _allowed(actor, perm: str, obj) -> None:
    """The role table (clinics/rules.py): a clinic admin registers patients but never touches a
    pump (the caseload import, which they may run, checks ``clinics.import_caseload`` itself and
    plans its implants without this service). The system (commands: ``actor`` None) passes."""
    if actor is None or actor.has_perm(perm, obj):
        return
    raise PermissionDenied(f"Your role in this clinic does not allow this ({perm}).")


def _cancel_appointments_from(pumps, start: datetime, actor, now: datetime, why: str) -> int:
    """Cancel the pumps' still-scheduled appointments from ``start`` on (history names ``actor``)."""
    appointments = Appointment.objects.select_for_update().filter(
        pump__in=pumps, status=Appointment.Status.SCHEDULED, scheduled_for__gte=start
    )
    count = 0
    for appointment in appointments:
        appointment.status = Appointment.Status.CANCELLED
        appointment.status_changed_at = now
        appointment._change_reason = Truncator(why).chars(100)
        _save(appointment, actor)
        count += 1
    return count


# --- implant, explant, replace ---------------------------------------------------------------


@transaction.atomic
def implant_pump(*, patient: Patient, actor, now: datetime | None = None, **implant) -> Pump:
    """The pump, its first fill and initial program in one transaction (DESIGN.md flow 6).

    ``implant``: ``ImplantArgs``'s fields; its ``fill`` holds ``record_refill``'s arguments
    (FILL_FIELDS). A first fill has no expected residual; it is always a dose change (a nurse
    names the ordering physician); a replacement's first dose is checked against the old pump's
    last dose. Refusals name the pump's fields and the fill's, all at once where they can be
    checked together.
    """
    args = ImplantArgs(**implant)
    now = _now(now)
    _allowed(actor, "patients.manage_pump", patient)
    patient = Patient.objects.select_related("clinic").select_for_update(of=("self",)).get(pk=patient.pk)
    serial = (args.serial_number or "").strip()
    planned = plan_implant(
        patient=patient,
        actor=actor,
        now=now,
        calendar=calendar_of(patient.clinic),
        serial_registered=bool(serial)
        and Pump.objects.filter(pump_model=args.pump_model, serial_number=serial).exists(),
        replaced_already=args.replaces is not None and Pump.objects.filter(replaces=args.replaces).exists(),
        **implant,
    )
    return store_implants([planned], actor, now)[0]


@transaction.atomic
def explant_pump(
    *, pump: Pump, actor, explanted_on: date, reason: str, notes: str = "", now: datetime | None = None
) -> Pump:
    """Explant a pump (replacement, infection, no longer needed, death): it leaves the worklist
    and the scan, its scanned alerts resolve, its appointments from that day are cancelled."""
    now = _now(now)
    _allowed(actor, "patients.manage_pump", pump)
    pump = _lock_pump(pump.pk)
    clinic = pump.patient.clinic
    errors: dict[str, str] = {}
    if pump.status != Pump.Status.ACTIVE:
        errors["pump"] = "This pump is already explanted."
    if reason not in Pump.ExplantReason.values:
        errors["reason"] = f"Choose one of: {', '.join(Pump.ExplantReason.values)}."
    if explanted_on is None:
        errors["explanted_on"] = "Give the explant date."
    elif explanted_on < pump.implanted_on:
        errors["explanted_on"] = "A pump cannot be explanted before it was implanted."
    elif explanted_on > _today(clinic, now):
        errors["explanted_on"] = "An explant date cannot be in the future."
    else:
        last = pump.refills.order_by("-performed_at").first()
        if last is not None and last.performed_at.astimezone(clinic.zone).date() > explanted_on:
            errors["explanted_on"] = "The pump was refilled after this date: check the explant date."
    too_long: dict = {}
    _text_errors(Pump, too_long, explant_notes=notes)
    if too_long:
        errors["notes"] = too_long["explant_notes"]
    if errors:
        _refuse(errors)
    pump.status = Pump.Status.EXPLANTED
    pump.explanted_on = explanted_on
    pump.explant_reason = reason
    pump.explant_notes = notes
    label = Pump.ExplantReason(reason).label.lower()
    pump._change_reason = Truncator(f"Explanted ({label})").chars(100)
    _save(pump, actor)
    _leave_service(
        [pump],
        actor,
        now,
        start=depletion.start_of_day(explanted_on, clinic.zone),
        why=f"Pump explanted on {explanted_on:%Y-%m-%d} ({label})",
    )
    return pump


def _leave_service(pumps: list[Pump], actor, now: datetime, *, start: datetime, why: str, tell: bool = False):
    """Pumps out of the worklist and the scan: projections dropped or kept (the patient's status
    decides), appointments cancelled, the alerting side told."""
    if not pumps:
        return
    _cancel_appointments_from(pumps, start, actor, now, why)
    # Told first, so the alerts resolve with this reason rather than the scan's generic one.
    signals.care_ended.send(sender=Pump, pump_ids=[p.pk for p in pumps], reason=why, actor=actor, now=now, tell=tell)
    recompute_projections(pumps, now)


@transaction.atomic
def replace_pump(*, pump: Pump, actor, explanted_on: date, now: datetime | None = None, **implant_kwargs) -> Pump:
    """Explant ``pump`` (reason: replacement) and implant its successor with the first fill, in one
    step. The new pump's ``replaces`` points at the old; its first dose is checked against the
    old pump's last dose (dose-change limit and confirmation), not treated as a fresh start."""
    now = _now(now)
    implant_kwargs.pop("replaces", None)
    implant_kwargs.pop("patient", None)
    notes = implant_kwargs.pop("explant_notes", "")
    errors: dict = {}
    old = pump
    try:
        with transaction.atomic():
            old = explant_pump(
                pump=pump,
                actor=actor,
                explanted_on=explanted_on,
                reason=Pump.ExplantReason.REPLACEMENT,
                notes=notes,
                now=now,
            )
    except ValidationError as exc:
        errors.update({("explanted_on" if key == "reason" else key): value for key, value in exc.message_dict.items()})
    try:
        with transaction.atomic():
            new = implant_pump(patient=old.patient, actor=actor, replaces=old, now=now, **implant_kwargs)
    except ValidationError as exc:
        for key, value in exc.message_dict.items():
            errors.setdefault(key, value)
    if errors:
        _refuse(errors)
    return new


# --- leaving care and coming back ---------------------------------------------------------------------


@transaction.atomic
def change_patient_status(
    *,
    patient: Patient,
    actor,
    status: str,
    effective_on: date,
    reason: str,
    transferred_to: str = "",
    accepted_first_refill_on: date | None = None,
    now: datetime | None = None,
) -> Patient:
    """Transferred (to where, the first refill they accepted), deceased, or active again, from
    ``effective_on`` with a reason (DESIGN.md flow 7).

    Dated today or earlier it applies at once: the patient's pumps leave the worklist and the
    scan, the scanned alerts resolve with the reason on their timeline (pump alarms and physician
    reviews stay open), appointments from that day are cancelled, and the assigned nurse and the
    clinic's physicians are told in the app. A transfer dated ahead is stored and applied on its
    date by the scan (``apply_due_status_changes``); until then the pump stays in the scan.
    A new change supersedes one still waiting. Nothing is deleted.
    """
    now = _now(now)
    _allowed(actor, "patients.register_patient", patient)
    patient = Patient.objects.select_related("clinic").select_for_update(of=("self",)).get(pk=patient.pk)
    today = _today(patient.clinic, now)
    reason = (reason or "").strip()
    transferred_to = (transferred_to or "").strip()
    errors: dict[str, str] = {}
    if status not in Patient.Status.values:
        errors["status"] = f"Choose one of: {', '.join(Patient.Status.values)}."
    elif (
        status == patient.status
        and not patient.status_changes.filter(applied_at__isnull=True, cancelled_at__isnull=True).exists()
    ):
        errors["status"] = f"This patient is already {patient.get_status_display().lower()}."
    if not reason:
        errors["status_reason"] = "Give the reason for the change; the history keeps it."
    if effective_on is None:
        errors["status_changed_on"] = "Give the date it takes effect."
    elif effective_on > today and status != Patient.Status.TRANSFERRED:
        errors["status_changed_on"] = "Only a transfer can be dated ahead; this takes effect today or earlier."
    elif effective_on < patient.birth_date:
        errors["status_changed_on"] = "This date is before the patient's birth."
    if status == Patient.Status.TRANSFERRED:
        if not transferred_to:
            errors["transferred_to"] = "Name the receiving clinic."
    else:
        if transferred_to:
            errors["transferred_to"] = "Only a transfer names a receiving clinic."
        if accepted_first_refill_on is not None:
            errors["accepted_first_refill_on"] = "Only a transfer has a first refill at the receiving clinic."
    too_long: dict = {}
    _text_errors(PatientStatusChange, too_long, reason=reason, transferred_to=transferred_to)
    if "reason" in too_long:
        errors.setdefault("status_reason", too_long["reason"])
    if "transferred_to" in too_long:
        errors.setdefault("transferred_to", too_long["transferred_to"])
    if errors:
        _refuse(errors)
    # A change still waiting for its date is superseded by this one (its row stays).
    for waiting in patient.status_changes.select_for_update().filter(
        applied_at__isnull=True, cancelled_at__isnull=True
    ):
        waiting.cancelled_at = now
        _save(waiting, actor)
    if status == patient.status:
        return patient  # the waiting change was the only thing to undo
    change = _save(
        PatientStatusChange(
            patient=patient,
            status=status,
            previous_status=patient.status,
            effective_on=effective_on,
            reason=reason,
            transferred_to=transferred_to,
            accepted_first_refill_on=accepted_first_refill_on,
            recorded_by=actor if actor is not None else get_system_user(),
            recorded_at=now,
        ),
        actor,
    )
    if effective_on <= today:
        _apply_status_change(change, patient, actor, now)
    return patient


def _apply_status_change(change: PatientStatusChange, patient: Patient, actor, now: datetime) -> None:
    leaving = change.status != Patient.Status.ACTIVE
    patient.status = change.status
    patient.status_reason = change.reason
    patient.status_changed_on = change.effective_on
    patient.transferred_to = change.transferred_to
    patient.accepted_first_refill_on = change.accepted_first_refill_on
    label = change.get_status_display().lower()
    patient._change_reason = Truncator(f"{change.get_status_display()}: {change.reason}").chars(100)
    _save(patient, actor)
    change.applied_at = now
    _save(change, actor)
    pumps = list(_pumps_of(patient.pumps.filter(status=Pump.Status.ACTIVE)))
    if leaving:
        why = f"Patient {label} from {change.effective_on:%Y-%m-%d}: {change.reason}"
        _leave_service(
            pumps,
            actor,
            now,
            start=depletion.start_of_day(change.effective_on, patient.clinic.zone),
            why=why,
            tell=True,
        )
    else:
        recompute_projections(pumps, now)


def apply_due_status_changes(now: datetime | None = None) -> int:
    """Apply the status changes whose date has come in their clinic's zone (a transfer dated
    ahead). The scan calls it before raising alerts; each change commits on its own."""
    now = _now(now)
    horizon = now.date() + timedelta(days=1)  # no zone is more than a day ahead of UTC
    candidates = PatientStatusChange.objects.filter(
        applied_at__isnull=True, cancelled_at__isnull=True, effective_on__lte=horizon
    ).select_related("patient__clinic")
    applied = 0
    for change in candidates:
        if change.effective_on > _today(change.patient.clinic, now):
            continue
        with transaction.atomic():
            patient = Patient.objects.select_related("clinic").select_for_update(of=("self",)).get(pk=change.patient_id)
            fresh = PatientStatusChange.objects.select_for_update().get(pk=change.pk)
            if not fresh.is_pending:
                continue
            _apply_status_change(fresh, patient, None, now)
            applied += 1
    return applied


# For lists: each patient's waiting change in one query (``pending_status_change`` reads it).
PENDING_STATUS_PREFETCH = Prefetch(
    "status_changes",
    queryset=PatientStatusChange.objects.filter(applied_at__isnull=True, cancelled_at__isnull=True).order_by(
        "-recorded_at", "-id"
    ),
    to_attr="pending_status_changes",
)


def pending_status_change(patient: Patient) -> PatientStatusChange | None:
    """The change waiting for its date (a transfer dated ahead), if any."""
    prefetched = getattr(patient, "pending_status_changes", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return (
        patient.status_changes.filter(applied_at__isnull=True, cancelled_at__isnull=True)
        .order_by("-recorded_at", "-id")
        .first()
    )


# --- the handover summary --------------------------------------------------------------------------


def handover_summary(pump: Pump, now: datetime | None = None) -> dict:
    """What the receiving clinic needs on one page: pump, drug and concentration, current
    program, last refill, projected alarm and due dates (times in the sending clinic's zone)."""
    now = _now(now)
    pump = _pumps_of(Pump.objects.select_related("assigned_nurse")).get(pk=pump.pk)
    patient = pump.patient
    clinic = patient.clinic
    zone = clinic.zone
    last = pump.refills.select_related("drug_product").order_by("-performed_at").first()
    program = pump.programs.filter(effective_at__lte=now).order_by("-effective_at", "-id").first()
    if program is None:
        program = pump.programs.order_by("-effective_at", "-id").first()
    projection = PumpProjection.objects.filter(pump=pump).first()

    def local(value):
        return value.astimezone(zone) if value is not None else None

    return {
        "generated_at": local(now),
        "clinic": {"name": clinic.name, "phone": clinic.phone, "timezone": clinic.timezone},
        "patient": {
            "mrn": patient.mrn,
            "given_name": patient.given_name,
            "family_name": patient.family_name,
            "birth_date": patient.birth_date,
            "status": patient.status,
            "transferred_to": patient.transferred_to,
            "accepted_first_refill_on": patient.accepted_first_refill_on,
            "withdrawal_risk": {
                "sci_at_or_above_t6": patient.sci_at_or_above_t6,
                "communication_difficulty": patient.communication_difficulty,
                "prior_withdrawal": patient.prior_withdrawal,
            },
            "risk_notes": patient.risk_notes,
        },
        "pump": {
            "reference": pump.reference,
            "model": str(pump.pump_model),
            "reservoir_ml": pump.pump_model.reservoir_ml,
            "serial_number": pump.serial_number,
            "implanted_on": pump.implanted_on,
            "lra_ml": pump.lra_ml,
            "eri_on": pump.eri_on,
            "end_of_service_on": pump.end_of_service_on,
            "flow_rate_ml_per_day": pump.flow_rate_ml_per_day,
            "assigned_nurse": pump.assigned_nurse.get_full_name() if pump.assigned_nurse else "",
        },
        "drug": None
        if last is None
        else {
            "product": str(last.drug_product) if last.drug_product else "",
            "concentration_mcg_per_ml": last.concentration_mcg_per_ml,
            "lot": last.drug_lot,
            "expires_on": last.drug_expires_on,
        },
        "program": None
        if program is None
        else {
            "effective_at": local(program.effective_at),
            "daily_dose_mcg": program.daily_dose_mcg,
            "bolus_mcg_per_day": program.bolus_mcg_per_day,
            "concentration_mcg_per_ml": program.concentration_mcg_per_ml,
            "rate_ml_per_day": program.rate_ml_per_day.quantize(Decimal("0.0001")),
            "stop_reason": program.stop_reason,
        },
        "last_refill": None
        if last is None
        else {
            "performed_at": local(last.performed_at),
            "volume_added_ml": last.volume_added_ml,
            "aspirated_ml": last.aspirated_ml,
            "expected_residual_ml": last.expected_residual_ml,
            "performed_elsewhere": last.performed_elsewhere,
        },
        "projection": None
        if projection is None
        else {
            "reservoir_ml_now": projection.reservoir_ml_at(now).quantize(Decimal("0.01")),
            "lra_at": local(projection.lra_at),
            "conservative_lra_at": local(projection.conservative_lra_at),
            "empty_at": local(projection.empty_at),
            "drug_expires_at": local(projection.drug_expires_at),
            "refill_due_on": projection.refill_due_on,
            "status": projection.status_at(now),
        },
    }
