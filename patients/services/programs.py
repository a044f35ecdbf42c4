"""Dose rules and program changes between refills."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import transaction

from clinics.access import role_in
from clinics.models import HARD_DOSE_LIMIT_MAX_MCG_PER_DAY, HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY, Clinic, Role

from .. import signals
from ..models import (
    Program,
    Pump,
)
from .common import (
    CLOCK_SKEW,
    CONSTANT_FLOW_DOSE_TOLERANCE,
    HUNDRED,
    ZERO,
    _lock_pump,
    _now,
    _q2,
    _refuse,
    _require_aware,
    _save,
    _text_errors,
)
from .projections import (
    recompute_projections,
)

# --- dose rules -------------------------------------------------------------------


def _dose_errors(
    *,
    clinic: Clinic,
    daily_dose_mcg: Decimal,
    bolus_mcg_per_day: Decimal,
    previous_dose_mcg: Decimal | None,
    stop_reason: str,
    dose_change_confirmed: bool,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    total = daily_dose_mcg + bolus_mcg_per_day
    # The clinic's figures, never above CLINICAL.md's (the database refuses them too; belt and braces).
    limit = min(clinic.max_daily_dose_mcg_per_day, HARD_DOSE_LIMIT_MAX_MCG_PER_DAY)
    threshold = min(clinic.high_dose_threshold_mcg_per_day, HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY)
    if daily_dose_mcg < 0:
        errors["daily_dose_mcg"] = "A daily dose cannot be negative."
    elif bolus_mcg_per_day < 0:
        errors["bolus_mcg_per_day"] = "A bolus allowance cannot be negative."
    elif total > limit:
        errors["daily_dose_mcg"] = (
            f"Daily dose plus bolus allowance is {total.normalize():f} mcg/day, above the hard limit of "
            f"{limit.normalize():f} mcg/day. Check the units: doses are per day, not per hour."
        )
    if errors:
        return errors
    if daily_dose_mcg == 0 and not stop_reason.strip():
        errors["stop_reason"] = (
            "A zero dose stops therapy: give the reason (for example MRI with the reservoir emptied)."
        )
        return errors
    if dose_change_confirmed:
        return errors
    if total > threshold:
        errors["dose_change_confirmed"] = (
            f"{total.normalize():f} mcg/day is above the clinic's high-dose threshold of "
            f"{threshold.normalize():f} mcg/day: confirm it is intended "
            "(60 mcg per hour typed as a daily dose is 1440 mcg/day)."
        )
    else:
        change_pct = dose_change_pct(daily_dose_mcg, previous_dose_mcg)
        if change_pct is not None and change_pct > clinic.dose_change_limit_pct:
            errors["dose_change_confirmed"] = (
                f"The dose changes from {previous_dose_mcg.normalize():f} to {daily_dose_mcg.normalize():f} mcg/day "
                f"({change_pct.quantize(Decimal('1'))}%), more than the clinic's limit of "
                f"{clinic.dose_change_limit_pct.normalize():f}%: confirm the new dose."
            )
    return errors


def dose_change_pct(daily_dose_mcg: Decimal, reference_mcg: Decimal | None) -> Decimal | None:
    """How far a new dose is from the reference dose, in %; None when either is zero or absent."""
    if not reference_mcg or daily_dose_mcg <= 0:
        return None
    return abs(daily_dose_mcg - reference_mcg) / reference_mcg * HUNDRED


def last_nonzero_dose(programs: Iterable[Program]) -> Decimal | None:
    """The dose a new one is compared with: the last non-zero one (a restart after an MRI stop is
    compared with the dose before the stop, not with zero). ``programs`` oldest first."""
    return next((p.daily_dose_mcg for p in reversed(list(programs)) if p.daily_dose_mcg > 0), None)


def _reference_dose(pump: Pump, at: datetime, exclude_pk=None) -> Decimal | None:
    """The dose a new one is compared with: the last non-zero dose before ``at`` (a restart after
    an MRI stop is compared with the dose before the stop, not with zero)."""
    qs = pump.programs.filter(effective_at__lte=at, daily_dose_mcg__gt=0)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    program = qs.order_by("-effective_at", "-id").first()
    return program.daily_dose_mcg if program else None


def program_in_effect(pump: Pump, at: datetime, exclude_pk=None) -> Program | None:
    """The program in effect just before a new one starting at ``at`` (zero doses included)."""
    qs = pump.programs.filter(effective_at__lte=at)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.order_by("-effective_at", "-id").first()


def is_dose_change(previous: Program | None, daily_dose_mcg, bolus_mcg_per_day, concentration_mcg_per_ml) -> bool:
    """A dose change: a daily dose, bolus allowance or concentration different from the program
    in effect just before (a restart from zero counts; a first fill, with none before, always does)."""
    if previous is None:
        return True
    return (previous.daily_dose_mcg, previous.bolus_mcg_per_day, previous.concentration_mcg_per_ml) != (
        daily_dose_mcg,
        bolus_mcg_per_day,
        concentration_mcg_per_ml,
    )


def is_clinic_physician(user, clinic_id: int) -> bool:
    """A member of the clinic with the physician role (a superuser is not a physician)."""
    return user is not None and role_in(user, clinic_id) == Role.PHYSICIAN


def _ordering_physician(
    pump: Pump,
    actor,
    ordered_by,
    errors: dict,
    *,
    needs_order: bool,
    outside_prescriber: str = "",
    performed_elsewhere: str = "",
    reason: str = "",
):
    """Who ordered this entry's dose (DESIGN.md role table): returns the ``ordered_by`` to store.

    A named ``ordered_by`` must be a physician of the pump's clinic. When the entry changes the
    dose (``needs_order``) and names nobody: a physician's own entry records the physician; a
    refill done elsewhere may name its outside prescriber instead; anyone else (a nurse) is refused
    on ``ordered_by``. Superusers and the system (commands, imports: ``actor`` None) may omit it.
    """
    clinic_id = pump.patient.clinic_id
    if ordered_by is not None and not is_clinic_physician(ordered_by, clinic_id):
        errors["ordered_by"] = "The ordering clinician must be a physician of this clinic."
        return ordered_by
    if (outside_prescriber or "").strip() and not (performed_elsewhere or "").strip():
        errors["outside_prescriber"] = (
            "An outside prescriber stands in only for a refill done elsewhere: say where it was done."
        )
        return ordered_by
    if ordered_by is not None or not needs_order or (outside_prescriber or "").strip():
        return ordered_by
    if actor is None or actor.is_superuser:
        return None
    if is_clinic_physician(actor, clinic_id):
        return actor
    errors["ordered_by"] = f"Name the physician who ordered this {reason or 'dose change'}."
    return None


def order_signature(pump: Pump, actor, ordered_by, now: datetime) -> dict:
    """Who signs a new order: the fields to store on its program.

    A physician of the clinic entering a program signs it (``verified_by`` that physician). A
    nurse's entry naming an ordering physician waits for a physician's countersignature
    (``countersign_requested_at``). Nothing else is countersigned: a nurse's refill at an unchanged
    dose names nobody, and entries by the system, a superuser or a clinic admin's caseload import
    carry orders made before they reached this clinic's records."""
    if actor is None or getattr(actor, "is_superuser", False):
        return {}
    role = role_in(actor, pump.patient.clinic_id)
    if role == Role.PHYSICIAN:
        return {"verified_by": actor, "verified_at": now, "countersign_requested_at": None}
    if role == Role.NURSE and ordered_by is not None:
        return {"verified_by": None, "verified_at": None, "countersign_requested_at": now}
    return {}


def can_countersign(user, program: Program) -> bool:
    """The ordering physician or another physician of the pump's clinic (README "Countersigning")."""
    return is_clinic_physician(user, program.pump.patient.clinic_id)


@transaction.atomic
def countersign_program(*, program: Program, actor, now: datetime | None = None) -> Program:
    """A physician countersigns a nurse-entered order: ``verified_by`` and ``verified_at`` are set,
    and the order's "unsigned" alert resolves (``program_countersigned`` signal)."""
    now = _now(now)
    _lock_pump(program.pump_id)
    program = Program.objects.select_related("pump__patient").get(pk=program.pk)
    if not can_countersign(actor, program):
        raise PermissionDenied("Only a physician of this clinic can countersign a dose order.")
    if program.verified_at is not None:
        _refuse({"program": "This order is already countersigned."})
    if program.countersign_requested_at is None:
        _refuse({"program": "This program has no nurse-entered order to countersign."})
    program.verified_by = actor
    program.verified_at = now
    program._change_reason = "Order countersigned"
    _save(program, actor)
    signals.program_countersigned.send(sender=Program, program=program, actor=actor, now=now)
    return program


def constant_flow_dose(pump: Pump, concentration: Decimal, daily_dose: Decimal | None, errors: dict):
    """For a constant-flow pump the dose follows from its flow rate × the concentration."""
    if not pump.pump_model.is_constant_flow:
        return daily_dose
    if not pump.flow_rate_ml_per_day:
        errors["pump"] = "Record this constant-flow pump's flow rate (mL/day) first."
        return daily_dose
    delivered = _q2(pump.flow_rate_ml_per_day * concentration)
    if daily_dose is None:
        return delivered
    if daily_dose > 0 and abs(daily_dose - delivered) > delivered * CONSTANT_FLOW_DOSE_TOLERANCE:
        errors["daily_dose_mcg"] = (
            f"This constant-flow pump delivers {pump.flow_rate_ml_per_day.normalize():f} mL/day: at "
            f"{concentration.normalize():f} mcg/mL that is {delivered.normalize():f} mcg/day, not "
            f"{daily_dose.normalize():f}. Change the concentration to change the dose."
        )
    return daily_dose


# --- programs ------------------------------------------------------------------------


@transaction.atomic
def change_program(
    *,
    pump: Pump,
    actor,
    effective_at: datetime,
    daily_dose_mcg: Decimal,
    bolus_mcg_per_day: Decimal = ZERO,
    ordered_by=None,
    stop_reason: str = "",
    dose_change_confirmed: bool = False,
    now: datetime | None = None,
) -> Program:
    """Reprogram the pump. The concentration stays the last fill's; a nurse names the physician."""
    now = _now(now)
    pump = _lock_pump(pump.pk)
    errors: dict[str, str] = {}
    _require_aware("effective_at", effective_at, errors)
    if errors:
        _refuse(errors)
    last = pump.refills.order_by("-performed_at").first()
    if pump.status != Pump.Status.ACTIVE:
        errors["pump"] = "This pump is explanted."
    if last is None:
        errors["effective_at"] = "Record the pump's last refill first: a program needs the drug in the reservoir."
    elif effective_at < last.performed_at:
        errors["effective_at"] = "A program change cannot start before the pump's last refill."
    elif effective_at > now + CLOCK_SKEW:
        errors["effective_at"] = "A program change cannot be recorded in the future."
    if pump.pump_model.is_constant_flow and daily_dose_mcg > 0:
        errors["daily_dose_mcg"] = "A constant-flow pump's dose is set by its flow rate and the concentration."
    _text_errors(Program, errors, stop_reason=stop_reason)
    if errors:
        _refuse(errors)
    errors.update(
        _dose_errors(
            clinic=pump.patient.clinic,
            daily_dose_mcg=daily_dose_mcg,
            bolus_mcg_per_day=bolus_mcg_per_day,
            previous_dose_mcg=_reference_dose(pump, effective_at),
            stop_reason=stop_reason,
            dose_change_confirmed=dose_change_confirmed,
        )
    )
    previous = program_in_effect(pump, effective_at)
    ordered_by = _ordering_physician(
        pump,
        actor,
        ordered_by,
        errors,
        needs_order=is_dose_change(previous, daily_dose_mcg, bolus_mcg_per_day, last.concentration_mcg_per_ml),
    )
    if errors:
        _refuse(errors)
    program = _save(
        Program(
            pump=pump,
            effective_at=effective_at,
            concentration_mcg_per_ml=last.concentration_mcg_per_ml,
            daily_dose_mcg=daily_dose_mcg,
            bolus_mcg_per_day=bolus_mcg_per_day,
            stop_reason=stop_reason.strip() if daily_dose_mcg == 0 else "",
            ordered_by=ordered_by,
            entered_by=actor,
            **order_signature(pump, actor, ordered_by, now),
        ),
        actor,
    )
    recompute_projections([pump], now)
    return program
