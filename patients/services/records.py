"""Patients, pumps, the pump-model catalogue and clinic settings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction

from clinics.access import role_in
from clinics.models import Clinic, Role

from ..models import (
    Patient,
    Pump,
    PumpModel,
)
from .common import (
    _bulk_create,
    _full_clean,
    _lock_pump,
    _ml,
    _now,
    _pumps_of,
    _refuse,
    _save,
)
from .projections import (
    recompute_projections,
)

# --- patients and pumps ------------------------------------------------------------------


PATIENT_FIELDS = {
    "mrn",
    "given_name",
    "family_name",
    "birth_date",
    "phone",
    "contact_notes",
    "status",
    "status_reason",
    "status_changed_on",
    "transferred_to",
    "accepted_first_refill_on",
    "sci_at_or_above_t6",
    "communication_difficulty",
    "prior_withdrawal",
    "extra_margin_days",
    "renal_impairment",
    "cns_depressants",
    "pregnancy_or_breastfeeding",
    "risk_notes",
}


@transaction.atomic
def create_pump_model(*, actor, **fields) -> PumpModel:
    """A catalogue entry (superusers only)."""
    pump_model = PumpModel(**fields)
    _full_clean(pump_model)
    return _save(pump_model, actor)


@transaction.atomic
def create_patient(*, clinic: Clinic, actor, **fields) -> Patient:
    return _save(plan_patient(clinic=clinic, **fields), actor)


def plan_patient(*, clinic: Clinic, unique_checked: bool = False, **fields) -> Patient:
    """A new patient that passed every check, not yet stored (``store_patients``).
    ``unique_checked``: the caller has checked the MRN against the clinic's (an import reads
    them all at once)."""
    patient = Patient(clinic=clinic, **fields)
    _full_clean(patient, unique_checked=unique_checked)
    return patient


def store_patients(patients: list[Patient], actor) -> list[Patient]:
    """Store planned patients, with their history rows naming ``actor``, in two statements."""
    return _bulk_create(Patient, patients, actor)


@transaction.atomic
def update_patient(*, patient: Patient, actor, now: datetime | None = None, **fields) -> Patient:
    """Change a patient's details; status and risk flags move the refill margins and the worklist."""
    unknown = set(fields) - PATIENT_FIELDS
    if unknown:
        _refuse(dict.fromkeys(sorted(unknown), "This field cannot be changed here."))
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    status_fields = {name: fields.pop(name) for name in STATUS_FIELDS if name in fields}
    for field, value in fields.items():
        setattr(patient, field, value)
    _full_clean(patient)
    if fields:
        _save(patient, actor)
        recompute_projections(_pumps_of(patient.pumps.all()), now)
    if status_fields and (
        status_fields.get("status", patient.status) != patient.status or set(status_fields) - {"status"}
    ):
        from .lifecycle import change_patient_status

        now = _now(now)
        patient = change_patient_status(
            patient=patient,
            actor=actor,
            status=status_fields.get("status", patient.status),
            effective_on=status_fields.get("status_changed_on") or now.astimezone(patient.clinic.zone).date(),
            reason=status_fields.get("status_reason", ""),
            transferred_to=status_fields.get("transferred_to", ""),
            accepted_first_refill_on=status_fields.get("accepted_first_refill_on"),
            now=now,
        )
    return patient


# Leaving care or coming back goes through change_patient_status (a reason, a date, people told).
STATUS_FIELDS = ("status", "status_reason", "status_changed_on", "transferred_to", "accepted_first_refill_on")


def _pump_field_errors(pump: Pump) -> dict[str, str]:
    errors: dict[str, str] = {}
    if pump.lra_ml is not None and pump.lra_ml >= pump.pump_model.reservoir_ml:
        errors["lra_ml"] = f"The alarm threshold must be below the reservoir's {_ml(pump.pump_model.reservoir_ml)}."
    if pump.pump_model.is_constant_flow and not pump.flow_rate_ml_per_day:
        errors["flow_rate_ml_per_day"] = "A constant-flow pump needs its measured flow rate (mL/day)."
    if not pump.pump_model.is_constant_flow and pump.flow_rate_ml_per_day:
        errors["flow_rate_ml_per_day"] = "Only constant-flow pumps have a fixed flow rate."
    if pump.assigned_nurse_id is not None:
        role = role_in(pump.assigned_nurse, pump.patient.clinic_id)
        if role not in (Role.NURSE, Role.PHYSICIAN):
            errors["assigned_nurse"] = "The assigned nurse must be care staff of this clinic."
    return errors


@transaction.atomic
def create_pump(*, patient: Patient, pump_model: PumpModel, actor, lra_ml: Decimal | None = None, **fields) -> Pump:
    pump = Pump(patient=patient, pump_model=pump_model, lra_ml=lra_ml, **fields)
    if pump.lra_ml is None:
        pump.lra_ml = pump_model.default_lra_ml
    if pump.explanted_on is not None:
        pump.status = Pump.Status.EXPLANTED
    errors = _pump_field_errors(pump)
    if errors:
        _refuse(errors)
    _full_clean(pump)
    return _save(pump, actor)


PUMP_FIELDS = {"lra_ml", "eri_on", "assigned_nurse", "flow_rate_ml_per_day", "explanted_on", "serial_number"}


@transaction.atomic
def update_pump(*, pump: Pump, actor, now: datetime | None = None, **fields) -> Pump:
    """Pump settings (alarm threshold, ERI date, assigned nurse, flow rate) or its explant."""
    unknown = set(fields) - PUMP_FIELDS
    if unknown:
        _refuse(dict.fromkeys(sorted(unknown), "This field cannot be changed here."))
    pump = _lock_pump(pump.pk)
    explanted_on = fields.get("explanted_on")
    if explanted_on is not None and pump.status == Pump.Status.ACTIVE:
        # An explant through the settings edit goes the explant's way (alerts, appointments).
        from .lifecycle import explant_pump

        fields.pop("explanted_on")
        if fields:
            pump = update_pump(pump=pump, actor=actor, now=now, **fields)
        return explant_pump(pump=pump, actor=actor, explanted_on=explanted_on, reason=Pump.ExplantReason.OTHER, now=now)
    for field, value in fields.items():
        setattr(pump, field, value)
    if "explanted_on" in fields:
        pump.status = Pump.Status.EXPLANTED if pump.explanted_on else Pump.Status.ACTIVE
        if pump.explanted_on is None:
            pump.explant_reason = ""
    errors = _pump_field_errors(pump)
    if errors:
        _refuse(errors)
    _full_clean(pump)
    _save(pump, actor)
    recompute_projections([pump], now)
    return pump


CLINIC_SETTINGS = {
    "name",
    "two_factor_required",
    "timezone",
    "phone",
    "refill_margin_days",
    "high_risk_extra_days",
    "overinfusion_allowance_pct",
    "small_reservoir_limit_ml",
    "discrepancy_small_reservoir_ml",
    "discrepancy_large_reservoir_ml",
    "discrepancy_pct",
    "dose_change_limit_pct",
    "high_dose_threshold_mcg_per_day",
    "max_daily_dose_mcg_per_day",
    "reminder_days",
    "critical_hours",
    "drift_alert_ratio",
    "appointment_grace_hours",
    "replacement_warning_days",
    "opening_weekdays",
    "holiday_country",
    "holiday_subdivision",
    "opens_at",
    "closes_at",
    "restart_order_after_empty_hours",
}


@transaction.atomic
def update_clinic_settings(*, clinic: Clinic, actor, now: datetime | None = None, **fields) -> Clinic:
    """Change a clinic's settings and recompute every projection of its pumps (in bulk)."""
    unknown = set(fields) - CLINIC_SETTINGS
    if unknown:
        _refuse(dict.fromkeys(sorted(unknown), "This is not a clinic setting."))
    clinic = Clinic.objects.select_for_update().get(pk=clinic.pk)
    for field, value in fields.items():
        setattr(clinic, field, value)
    _full_clean(clinic)
    _save(clinic, actor)
    recompute_projections(_pumps_of(Pump.objects.filter(patient__clinic=clinic, status=Pump.Status.ACTIVE)), now)
    return clinic
