"""The checking and storing halves of an implant (DESIGN.md flows 6 and 8): ``plan_implant``
applies ``implant_pump``'s rules to values given, reading nothing; ``store_implants`` writes
planned implants set-based. ``implant_pump`` runs one through both; the caseload import checks
every row first, then stores them all at once (its patients' halves, ``plan_patient`` and
``store_patients``, stay beside ``create_patient`` in records).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from .. import depletion, signals
from ..models import (
    Patient,
    Program,
    Pump,
    PumpModel,
    PumpProjection,
    RefillVisit,
)
from .common import (
    _actor,
    _bulk_create,
    _full_clean,
    _refuse,
    _today,
)
from .programs import _dose_errors, _ordering_physician
from .projections import (
    alert_evaluation_deferred,
    project_record,
    projection_row,
    store_projections,
)
from .recording import plan_refill
from .records import _pump_field_errors
from .refills import FILL_FIELDS, _refill_errors


@dataclass(frozen=True)
class ImplantArgs:
    """What an implant names besides the patient, the actor and the time: ``implant_pump``'s and
    ``plan_implant``'s keyword arguments, listed once. ``fill`` holds ``record_refill``'s
    arguments (FILL_FIELDS). An unknown or missing one is a TypeError, as for a signature."""

    pump_model: PumpModel
    serial_number: str
    implanted_on: date
    fill: dict
    lra_ml: Decimal | None = None
    assigned_nurse: object = None
    eri_on: date | None = None
    flow_rate_ml_per_day: Decimal | None = None
    replaces: Pump | None = None


@dataclass
class PlannedImplant:
    """An implant that passed every rule, not yet stored: the pump, its first program and fill,
    and the projection they give (what the caseload import's dry run shows)."""

    pump: Pump
    program: Program
    refill: RefillVisit
    after_empty: bool
    projection: PumpProjection


def plan_implant(
    *,
    patient: Patient,
    actor,
    now: datetime,
    calendar,
    serial_registered: bool,
    replaced_already: bool = False,
    **implant,
) -> PlannedImplant:
    """``implant_pump``'s rules, reading nothing: what the database would say is given —
    ``serial_registered`` (this model and serial exist), ``replaced_already``, the clinic's
    ``calendar`` — so a caseload import checks hundreds of rows against keys it read once.
    ``patient`` may be one not stored yet (a new patient of the same import); ``implant``:
    ``ImplantArgs``'s fields. Raises ``Refusal``."""
    args = ImplantArgs(**implant)
    pump_model, implanted_on, replaces = args.pump_model, args.implanted_on, args.replaces
    fill = dict(args.fill or {})
    unknown = set(fill) - FILL_FIELDS
    if unknown:
        _refuse(dict.fromkeys(sorted(unknown), "This is not part of a first fill."))
    clinic = patient.clinic
    errors: dict[str, str] = {}
    if patient.status != Patient.Status.ACTIVE:
        errors["patient"] = f"This patient is {patient.get_status_display().lower()}: make them active again first."
    if implanted_on is not None and implanted_on > _today(clinic, now):
        errors["implanted_on"] = "An implant date cannot be in the future."
    serial_number = (args.serial_number or "").strip()
    if not serial_number:
        errors["serial_number"] = "Give the pump's serial number."
    elif serial_registered:
        errors["serial_number"] = "A pump of this model with this serial number is already registered."
    if replaces is not None:
        if replaces.patient_id != patient.pk:
            errors["replaces"] = "The pump replaced must be this patient's."
        elif replaced_already:
            errors["replaces"] = "That pump has already been replaced."
    pump = Pump(
        patient=patient,
        pump_model=pump_model,
        serial_number=serial_number,
        implanted_on=implanted_on,
        lra_ml=pump_model.default_lra_ml if args.lra_ml is None else args.lra_ml,
        assigned_nurse=args.assigned_nurse,
        eri_on=args.eri_on,
        flow_rate_ml_per_day=args.flow_rate_ml_per_day,
        replaces=replaces,
    )
    errors.update(_pump_field_errors(pump))
    performed_at = fill.get("performed_at")
    if performed_at is None:
        errors["performed_at"] = "Give the time of the first fill."
    elif (
        performed_at.tzinfo is not None
        and implanted_on is not None
        and performed_at < depletion.start_of_day(implanted_on, clinic.zone)
    ):
        errors["performed_at"] = "The first fill cannot come before the implant date."
    if errors:
        # The fill's own checks too, on the unsaved pump, so one answer names every field.
        _refuse({**_first_fill_errors(pump, actor, fill, now), **errors})
    # The pump's unique keys (model + serial, the pump replaced) are the two given above.
    _full_clean(pump, exclude=["replaces"], unique_checked=True)
    # The first fill: record_refill's rules on a pump with no refill and no program yet.
    planned = plan_refill(pump=pump, actor=actor, previous=None, programs=[], now=now, **fill)
    projection, depletion_fill = project_record(pump, [planned.refill], [planned.program], now, calendar)
    return PlannedImplant(
        pump=pump,
        program=planned.program,
        refill=planned.refill,
        after_empty=planned.after_empty,
        projection=projection_row(pump, projection, depletion_fill, now),
    )


def _first_fill_errors(pump: Pump, actor, fill: dict, now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    _ordering_physician(
        pump,
        actor,
        fill.get("ordered_by"),
        errors,
        needs_order=True,  # a first fill is always a dose change
        outside_prescriber=fill.get("outside_prescriber", ""),
        performed_elsewhere=fill.get("performed_elsewhere", ""),
    )
    required = ("performed_at", "aspirated_ml", "volume_added_ml", "concentration_mcg_per_ml")
    if any(fill.get(name) is None for name in required):
        return {**errors, **{name: "This field is required." for name in required if fill.get(name) is None}}
    errors |= _refill_errors(
        pump=pump,
        performed_at=fill["performed_at"],
        aspirated_ml=fill["aspirated_ml"],
        volume_added_ml=fill["volume_added_ml"],
        concentration_mcg_per_ml=fill["concentration_mcg_per_ml"],
        drug_product=fill.get("drug_product"),
        drug_expires_on=fill.get("drug_expires_on"),
        now=now,
        previous=None,
        stop_reason=fill.get("stop_reason", ""),
        daily_dose_mcg=fill.get("daily_dose_mcg"),
    )
    if fill.get("daily_dose_mcg") is not None and "daily_dose_mcg" not in errors:
        errors.update(
            _dose_errors(
                clinic=pump.patient.clinic,
                daily_dose_mcg=fill["daily_dose_mcg"],
                bolus_mcg_per_day=fill.get("bolus_mcg_per_day") or Decimal(0),
                previous_dose_mcg=None,
                stop_reason=fill.get("stop_reason", ""),
                dose_change_confirmed=bool(fill.get("dose_change_confirmed")),
            )
        )
    return errors


def store_implants(implants: list[PlannedImplant], actor, now: datetime) -> list[Pump]:
    """Store planned implants — pumps, programs, first fills, each with its history row naming
    ``actor``, and their projections — in a constant number of statements however many there
    are (the patients they name are stored already), then tell the alerting side of each first
    fill (inside ``batched_projection_signals`` it evaluates them all at once, at the end)."""
    if not implants:
        return []
    user = _actor(actor)
    for planned in implants:
        planned.pump.patient_id = planned.pump.patient.pk  # a patient stored after the plan
    pumps = _bulk_create(Pump, [p.pump for p in implants], user)
    _bulk_create(Program, [p.program for p in implants], user)
    _bulk_create(RefillVisit, [p.refill for p in implants], user)
    store_projections([p.projection for p in implants])
    for planned in implants:
        signals.refill_recorded.send(
            sender=RefillVisit,
            refill=planned.refill,
            pump=planned.pump,
            actor=actor,
            now=now,
            after_empty=planned.after_empty,
            first_fill=True,
            evaluate=not alert_evaluation_deferred(planned.pump.pk, now),
        )
    return pumps
