"""Amending a refill visit, and the cascade an amendment starts: the later refills' expected
residuals judged again, their physician reviews raised or resolved."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.text import Truncator

from .. import signals
from ..models import REASON_MAX_CHARS, Pump, RefillVisit
from . import refills  # _refill_errors looked up on its module: tests/test_concurrent_writes.py wraps it
from .common import _lock_pump, _now, _refuse, _save
from .programs import (
    _dose_errors,
    _ordering_physician,
    _reference_dose,
    constant_flow_dose,
    is_dose_change,
    order_signature,
    program_in_effect,
)
from .projections import recompute_projection
from .refills import FILL_FIELDS, REFILL_TEXTS, _check_residual, _refill_text_errors, residual_check

AMENDABLE_REFILL_FIELDS = FILL_FIELDS - {"withdrawal_signs"}


@transaction.atomic
def amend_refill(*, refill: RefillVisit, actor, amend_reason: str, now: datetime | None = None, **changes):
    """Correct a refill. The original stays in the history; the projection follows the new values."""
    now = _now(now)
    unknown = set(changes) - AMENDABLE_REFILL_FIELDS
    if unknown:
        _refuse(dict.fromkeys(sorted(unknown), "This field cannot be amended."))
    if not (amend_reason or "").strip():
        _refuse({"amend_reason": "Give the reason for the amendment; the original stays in the history."})
    too_long: dict = {}
    _refill_text_errors(too_long, amend_reason=amend_reason, **{k: v for k, v in changes.items() if k in REFILL_TEXTS})
    if too_long:
        _refuse(too_long)
    # Lock the pump first, then read the refill: read before the lock, a concurrent amendment
    # committed meanwhile would be overwritten from the stale copy (and history would blame the
    # second editor for reverting the first).
    pump = _lock_pump(refill.pump_id)
    refill = RefillVisit.objects.select_related("program").get(pk=refill.pk)
    program = refill.program
    values = {
        "performed_at": refill.performed_at,
        "aspirated_ml": refill.aspirated_ml,
        "volume_added_ml": refill.volume_added_ml,
        "concentration_mcg_per_ml": refill.concentration_mcg_per_ml,
        "daily_dose_mcg": program.daily_dose_mcg,
        "bolus_mcg_per_day": program.bolus_mcg_per_day,
        "drug_product": refill.drug_product,
        "drug_lot": refill.drug_lot,
        "drug_expires_on": refill.drug_expires_on,
        "performed_elsewhere": refill.performed_elsewhere,
        "stop_reason": program.stop_reason,
        "discrepancy_reason": refill.discrepancy_reason,
        "notes": refill.notes,
    }
    confirmed = bool(changes.pop("dose_change_confirmed", False))
    ordered_by = changes.pop("ordered_by", None)
    outside_prescriber = changes.pop("outside_prescriber", None)
    values.update(changes)
    others = pump.refills.exclude(pk=refill.pk)
    previous = others.filter(performed_at__lt=refill.performed_at).order_by("-performed_at").first()
    following = others.filter(performed_at__gt=refill.performed_at).order_by("performed_at").first()
    errors = refills._refill_errors(
        pump=pump,
        performed_at=values["performed_at"],
        aspirated_ml=values["aspirated_ml"],
        volume_added_ml=values["volume_added_ml"],
        concentration_mcg_per_ml=values["concentration_mcg_per_ml"],
        drug_product=values["drug_product"],
        drug_expires_on=values["drug_expires_on"],
        now=now,
        previous=previous,
        following=following,
        stop_reason=values["stop_reason"],
        daily_dose_mcg=values["daily_dose_mcg"],
    )
    errors.pop("pump", None)  # an explanted pump's past refills can still be corrected
    values["daily_dose_mcg"] = constant_flow_dose(
        pump, values["concentration_mcg_per_ml"], values["daily_dose_mcg"], errors
    )
    if errors:
        _refuse(errors)
    dose_changed = (values["daily_dose_mcg"], values["bolus_mcg_per_day"]) != (
        program.daily_dose_mcg,
        program.bolus_mcg_per_day,
    )
    # A nurse's amendment that changes the dose (from the program in effect before this refill)
    # names the ordering physician, as the refill itself would have.
    amends_dose = dose_changed or values["concentration_mcg_per_ml"] != program.concentration_mcg_per_ml
    new_ordered_by = _ordering_physician(
        pump,
        actor,
        ordered_by,
        errors,
        needs_order=amends_dose
        and is_dose_change(
            program_in_effect(pump, values["performed_at"], exclude_pk=program.pk),
            values["daily_dose_mcg"],
            values["bolus_mcg_per_day"],
            values["concentration_mcg_per_ml"],
        ),
        outside_prescriber=outside_prescriber if outside_prescriber is not None else program.outside_prescriber,
        performed_elsewhere=values["performed_elsewhere"],
    )
    if dose_changed:
        errors.update(
            _dose_errors(
                clinic=pump.patient.clinic,
                daily_dose_mcg=values["daily_dose_mcg"],
                bolus_mcg_per_day=values["bolus_mcg_per_day"],
                previous_dose_mcg=_reference_dose(pump, values["performed_at"], exclude_pk=program.pk),
                stop_reason=values["stop_reason"],
                dose_change_confirmed=confirmed,
            )
        )
    expected, discrepancy = _check_residual(
        pump,
        previous,
        pump.programs.exclude(pk=program.pk),
        values["performed_at"],
        values["aspirated_ml"],
        values["discrepancy_reason"],
        errors,
    )
    if errors:
        _refuse(errors)

    was_discrepant = refill.discrepancy
    # What a physician reviews: a clerical correction (a lot, a note) leaves it, and its review, alone.
    discrepancy_changed = (discrepancy, expected, values["aspirated_ml"]) != (
        was_discrepant,
        refill.expected_residual_ml,
        refill.aspirated_ml,
    )
    program.effective_at = values["performed_at"]
    program.concentration_mcg_per_ml = values["concentration_mcg_per_ml"]
    program.daily_dose_mcg = values["daily_dose_mcg"]
    program.bolus_mcg_per_day = values["bolus_mcg_per_day"]
    program.stop_reason = values["stop_reason"].strip() if values["daily_dose_mcg"] == 0 else ""
    if new_ordered_by is not None:
        program.ordered_by = new_ordered_by
    # An amended dose is a new order: a nurse's waits for a countersignature again, a physician's is signed.
    signature = order_signature(pump, actor, program.ordered_by, now) if amends_dose else {}
    for name, value in signature.items():
        setattr(program, name, value)
    if outside_prescriber is not None:
        program.outside_prescriber = outside_prescriber.strip()
    # History's change-reason column is short; the full reason is on the refill itself.
    program._change_reason = Truncator(f"Refill amended: {amend_reason.strip()}").chars(100)
    _save(program, actor)
    if signature.get("verified_at"):
        signals.program_countersigned.send(sender=type(program), program=program, actor=actor, now=now)
    for field in (
        "performed_at",
        "aspirated_ml",
        "volume_added_ml",
        "concentration_mcg_per_ml",
        "drug_product",
        "drug_lot",
        "drug_expires_on",
        "performed_elsewhere",
        "discrepancy_reason",
        "notes",
    ):
        setattr(refill, field, values[field])
    refill.expected_residual_ml = expected
    refill.discrepancy = discrepancy
    refill.amended_at = now
    refill.amend_reason = amend_reason.strip()
    refill._change_reason = Truncator(amend_reason.strip()).chars(100)
    _save(refill, actor)
    # Before the projection: its delivery ratio leaves out the intervals flagged discrepant.
    recomputed = _recompute_later_refills(pump, refill, actor)
    recompute_projection(pump, now)
    # The later refills first; the amended refill's own signal evaluates the pump's conditions once.
    cleared_reason = _after_amendment("Residual within tolerance", refill)
    for visit, visit_was_discrepant, changed, evaluate in [
        *((r, w, True, False) for r, w in recomputed),  # recomputed: their expected residual moved
        (refill, was_discrepant, discrepancy_changed, True),
    ]:
        signals.refill_recorded.send(
            sender=RefillVisit,
            refill=visit,
            pump=pump,
            actor=actor,
            now=now,
            amended=True,
            was_discrepant=visit_was_discrepant,
            discrepancy_changed=changed,
            cleared_reason=cleared_reason,
            evaluate=evaluate,
        )
    return refill


def _after_amendment(what: str, amended: RefillVisit) -> str:
    return f"{what} after the amendment of refill {amended.pk}: {amended.amend_reason}"


def _recompute_later_refills(pump: Pump, amended: RefillVisit, actor) -> list[tuple[RefillVisit, bool]]:
    """The pump's refills after ``amended``, whose expected residual the amendment changed (what
    the pump should have held at each depends on the fill before it): the expected residual and
    the discrepancy flag judged again, saved with the amendment's reason in their history. A refill
    that becomes discrepant gets a reason written by the system. Refills whose expected residual
    did not change are left as they were judged. Returns (refill, was discrepant) of those saved."""
    programs = list(pump.programs.all())
    previous = amended
    recomputed = []
    for later in pump.refills.filter(performed_at__gt=amended.performed_at).order_by("performed_at"):
        expected, _tolerance, discrepancy = residual_check(
            pump, previous, programs, later.performed_at, later.aspirated_ml
        )
        previous = later
        if expected == later.expected_residual_ml:
            continue
        was_discrepant = later.discrepancy
        later.expected_residual_ml = expected
        later.discrepancy = discrepancy
        if discrepancy and not was_discrepant:
            later.discrepancy_reason = Truncator(_after_amendment("Residual out of tolerance", amended)).chars(
                REASON_MAX_CHARS
            )
        later._change_reason = Truncator(_after_amendment("Recomputed", amended)).chars(100)
        _save(later, actor)
        recomputed.append((later, was_discrepant))
    return recomputed
