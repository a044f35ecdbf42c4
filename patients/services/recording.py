"""Recording a refill visit (CLINICAL.md "Refill visit"): ``plan_refill`` applies the rules to
the pump's record as given and stores nothing (the implant's first fill and the caseload import
plan theirs the same way); ``record_refill`` plans one and stores it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction

from .. import signals
from ..models import (
    DrugProduct,
    Program,
    Pump,
    PumpProjection,
    RefillVisit,
)
from . import refills  # _refill_errors looked up on its module: tests/test_concurrent_writes.py wraps it
from .common import ZERO, _lock_pump, _now, _refuse, _save
from .events import WITHDRAWAL_SIGNS
from .programs import (
    _dose_errors,
    _ordering_physician,
    _reference_dose,
    constant_flow_dose,
    is_dose_change,
    last_nonzero_dose,
    order_signature,
)
from .projections import (
    alert_evaluation_deferred,
    compute_projection,
    recompute_projection,
)
from .refills import _check_residual, _empty_reservoir, _refill_text_errors


@transaction.atomic
def record_refill(*, pump: Pump, actor, now: datetime | None = None, **visit) -> RefillVisit:
    """Record a refill (CLINICAL.md "Refill visit"): the visit, the program it starts, the new
    projection, and signals for the alerting side. Also the way to bring a pump already in
    service into the app: record its last refill. ``visit``: the visit's fields, as
    ``plan_refill`` names them (performed_at, volumes, concentration, dose, drug, orders…).

    A dose change (a first fill always is one) by a nurse names the ordering physician, or the
    outside prescriber of a refill done elsewhere. A refill after a projected empty reservoir
    (``refill_after_empty``) stores the withdrawal assessment (``withdrawal_signs``) and wakes a
    physician review, or the emergency alarm when a sign is ticked; empty for longer than the
    clinic's setting, even an unchanged restart dose needs a physician's order."""
    now = _now(now)
    pump = _lock_pump(pump.pk)
    planned = plan_refill(
        pump=pump,
        actor=actor,
        previous=pump.refills.order_by("-performed_at").first(),
        programs=list(pump.programs.order_by("effective_at", "id")),
        now=now,
        **visit,
    )
    refill = planned.refill
    refill.program = _save(planned.program, actor)
    _save(refill, actor)
    recompute_projection(pump, now)
    signals.refill_recorded.send(
        sender=RefillVisit,
        refill=refill,
        pump=pump,
        actor=actor,
        now=now,
        after_empty=planned.after_empty,
        evaluate=not alert_evaluation_deferred(pump.pk, now),
    )
    return refill


@dataclass(frozen=True)
class PlannedRefill:
    """A refill that passed every rule, not yet stored: the program it starts and the visit."""

    program: Program
    refill: RefillVisit
    after_empty: bool


def plan_refill(
    *,
    pump: Pump,
    actor,
    previous: RefillVisit | None,
    programs: list[Program],
    now: datetime,
    performed_at: datetime,
    aspirated_ml: Decimal,
    volume_added_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    daily_dose_mcg: Decimal | None,
    bolus_mcg_per_day: Decimal = ZERO,
    drug_product: DrugProduct | None = None,
    drug_lot: str = "",
    drug_expires_on: date | None = None,
    performed_elsewhere: str = "",
    stop_reason: str = "",
    discrepancy_reason: str = "",
    dose_change_confirmed: bool = False,
    ordered_by=None,
    outside_prescriber: str = "",
    withdrawal_signs: Iterable[str] = (),
    notes: str = "",
) -> PlannedRefill:
    """``record_refill``'s rules over the pump's record as given — its last refill (``previous``)
    and its programs, oldest first — without reading or writing anything (but the replaced pump's
    dose, for a replacement's first fill). A first fill of a pump not yet stored passes None and
    []: the implant and the caseload import check it here, the same way as any refill.
    Raises ``Refusal``; the caller stores the program, then the visit (``refill.program``)."""
    errors = refills._refill_errors(
        pump=pump,
        performed_at=performed_at,
        aspirated_ml=aspirated_ml,
        volume_added_ml=volume_added_ml,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        drug_product=drug_product,
        drug_expires_on=drug_expires_on,
        now=now,
        previous=previous,
        stop_reason=stop_reason,
        daily_dose_mcg=daily_dose_mcg,
    )
    daily_dose_mcg = constant_flow_dose(pump, concentration_mcg_per_ml, daily_dose_mcg, errors)
    if daily_dose_mcg is None:
        errors["daily_dose_mcg"] = "Give the daily dose in mcg/day."
    signs = list(dict.fromkeys(withdrawal_signs or ()))
    unknown = [sign for sign in signs if sign not in WITHDRAWAL_SIGNS]
    if unknown:
        errors["withdrawal_signs"] = f"Unknown withdrawal signs: {', '.join(unknown)}."
    _refill_text_errors(
        errors,
        notes=notes,
        discrepancy_reason=discrepancy_reason,
        drug_lot=drug_lot,
        performed_elsewhere=performed_elsewhere,
        stop_reason=stop_reason,
        outside_prescriber=outside_prescriber,
    )
    if errors:
        _refuse(errors)
    before = [p for p in programs if p.effective_at <= performed_at]
    reference = last_nonzero_dose(before)
    if previous is None and pump.replaces_id is not None:
        # A replacement pump's first dose continues the old pump's therapy: checked against it.
        reference = _reference_dose(pump.replaces, performed_at)
    errors.update(
        _dose_errors(
            clinic=pump.patient.clinic,
            daily_dose_mcg=daily_dose_mcg,
            bolus_mcg_per_day=bolus_mcg_per_day,
            previous_dose_mcg=reference,
            stop_reason=stop_reason,
            dose_change_confirmed=dose_change_confirmed,
        )
    )
    empty = _empty_reservoir(pump, previous, programs, performed_at, aspirated_ml)
    ordered_by = _ordering_physician(
        pump,
        actor,
        ordered_by,
        errors,
        needs_order=is_dose_change(
            before[-1] if before else None, daily_dose_mcg, bolus_mcg_per_day, concentration_mcg_per_ml
        )
        or (empty is not None and empty.needs_order),
        outside_prescriber=outside_prescriber,
        performed_elsewhere=performed_elsewhere,
        reason=(
            "restart after an empty reservoir (tolerance may be lost)"
            if empty is not None and empty.needs_order
            else "dose change"
        ),
    )

    expected, discrepancy = _check_residual(
        pump, previous, programs, performed_at, aspirated_ml, discrepancy_reason, errors
    )
    if errors:
        _refuse(errors)

    prior = _prior_projection(pump, previous, now)
    program = Program(
        pump=pump,
        effective_at=performed_at,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        daily_dose_mcg=daily_dose_mcg,
        bolus_mcg_per_day=bolus_mcg_per_day,
        stop_reason=stop_reason.strip() if daily_dose_mcg == 0 else "",
        ordered_by=ordered_by,
        outside_prescriber=outside_prescriber.strip(),
        entered_by=actor,
        # A first fill carries the implanting team's order (the implant is a physician's
        # procedure): only later dose changes wait for a countersignature.
        **(order_signature(pump, actor, ordered_by, now) if previous is not None else {}),
    )
    refill = RefillVisit(
        pump=pump,
        performed_at=performed_at,
        performed_by=actor,
        performed_elsewhere=performed_elsewhere,
        reservoir_ml=pump.pump_model.reservoir_ml,
        expected_residual_ml=expected,
        aspirated_ml=aspirated_ml,
        volume_added_ml=volume_added_ml,
        drug_product=drug_product,
        concentration_mcg_per_ml=concentration_mcg_per_ml,
        drug_lot=drug_lot,
        drug_expires_on=drug_expires_on,
        program=program,
        discrepancy=discrepancy,
        discrepancy_reason=discrepancy_reason.strip(),
        empty_since=empty.empty_since if empty else None,
        nothing_aspirated=bool(empty and empty.nothing_aspirated),
        withdrawal_signs=signs,
        notes=notes,
        **prior,
    )
    return PlannedRefill(program, refill, after_empty=empty is not None)


PRIOR_FIELDS = {
    "prior_due_on": "refill_due_on",
    "prior_unmoved_due_on": "unmoved_refill_due_on",
    "prior_lra_at": "lra_at",
    "prior_empty_at": "empty_at",
    "prior_conservative_lra_at": "conservative_lra_at",
}


def _prior_projection(pump: Pump, previous: RefillVisit | None, now: datetime) -> dict:
    """What the pump's projection said just before this refill (the RefillVisit's ``prior_*``
    fields): the stored row, the one staff and the scan saw; empty for a first fill."""
    if previous is None:
        return {}
    row = PumpProjection.objects.filter(pump=pump).values(*PRIOR_FIELDS.values()).first()
    if row is None:  # never stored (cannot happen for a pump in service): from the record
        projection = compute_projection(pump, now)
        row = {name: getattr(projection, name) for name in PRIOR_FIELDS.values()} if projection else {}
    return {field: row.get(name) for field, name in PRIOR_FIELDS.items()}
