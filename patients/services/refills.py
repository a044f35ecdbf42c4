"""Recording and amending refill visits (CLINICAL.md "Refill visit")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.text import Truncator

from .. import depletion, signals
from ..models import (
    DrugProduct,
    Program,
    Pump,
    PumpProjection,
    RefillVisit,
)
from .common import (
    CLOCK_SKEW,
    ZERO,
    _lock_pump,
    _ml,
    _now,
    _q2,
    _refuse,
    _require_aware,
    _save,
    _text_errors,
)
from .events import WITHDRAWAL_SIGNS
from .programs import (
    _dose_errors,
    _ordering_physician,
    _reference_dose,
    constant_flow_dose,
    is_dose_change,
    last_nonzero_dose,
    order_signature,
    program_in_effect,
)
from .projections import (
    _fill_for,
    alert_evaluation_deferred,
    catalogue_products,
    compute_projection,
    recompute_projection,
)

# A reason the system writes on a refill stays within what a person may write (issue 9, item 10).
REASON_MAX_CHARS = 500

# --- refills ------------------------------------------------------------------------

# Free text of a visit; the last two are stored on the program it starts.
REFILL_TEXTS = ("notes", "discrepancy_reason", "drug_lot", "performed_elsewhere", "stop_reason", "outside_prescriber")
PROGRAM_TEXTS = {"stop_reason", "outside_prescriber"}


def _refill_text_errors(errors: dict, **texts) -> None:
    _text_errors(RefillVisit, errors, **{k: v for k, v in texts.items() if k not in PROGRAM_TEXTS})
    _text_errors(Program, errors, **{k: v for k, v in texts.items() if k in PROGRAM_TEXTS})


def _refill_errors(
    *,
    pump: Pump,
    performed_at: datetime,
    aspirated_ml: Decimal,
    volume_added_ml: Decimal,
    concentration_mcg_per_ml: Decimal,
    drug_product: DrugProduct | None,
    drug_expires_on: date | None,
    now: datetime,
    previous: RefillVisit | None,
    following: RefillVisit | None = None,
    stop_reason: str = "",
    daily_dose_mcg: Decimal | None = None,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    reservoir = pump.pump_model.reservoir_ml
    _require_aware("performed_at", performed_at, errors)
    if errors:
        return errors
    if performed_at > now + CLOCK_SKEW:
        errors["performed_at"] = "A refill cannot be recorded in the future."
    elif previous is not None and performed_at <= previous.performed_at:
        when = previous.performed_at.astimezone(pump.patient.clinic.zone)
        errors["performed_at"] = (
            f"The pump's previous refill was at {when:%Y-%m-%d %H:%M}; a refill must come after it."
        )
    elif following is not None and performed_at >= following.performed_at:
        errors["performed_at"] = "An amended refill must stay before the pump's next refill."
    if pump.status != Pump.Status.ACTIVE:
        errors["pump"] = "This pump is explanted."
    if volume_added_ml < 0:
        errors["volume_added_ml"] = "The volume added cannot be negative."
    elif volume_added_ml == 0 and not (stop_reason or "").strip():
        errors["volume_added_ml"] = (
            "Nothing added empties the reservoir and stops therapy: give the stop reason "
            "(for example a Prometra emptied before an MRI), or the volume added."
        )
    elif volume_added_ml == 0 and daily_dose_mcg is not None and daily_dose_mcg > 0:
        errors["daily_dose_mcg"] = "Nothing was added: an emptied reservoir delivers nothing, so the dose is 0."
    elif volume_added_ml > reservoir:
        errors["volume_added_ml"] = (
            f"{_ml(volume_added_ml)} is more than the reservoir holds ({_ml(reservoir)}): never overfill."
        )
    if aspirated_ml < 0:
        errors["aspirated_ml"] = "The aspirated volume cannot be negative."
    elif aspirated_ml > reservoir:
        errors["aspirated_ml"] = f"{_ml(aspirated_ml)} is more than the reservoir holds ({_ml(reservoir)})."
    if concentration_mcg_per_ml <= 0:
        errors["concentration_mcg_per_ml"] = "The concentration must be more than 0 mcg/mL."
    elif drug_product is not None and drug_product.concentration_mcg_per_ml != concentration_mcg_per_ml:
        errors["concentration_mcg_per_ml"] = (
            f"{drug_product} is {drug_product.concentration_mcg_per_ml.normalize():f} mcg/mL, "
            f"not {concentration_mcg_per_ml.normalize():f}."
        )
    elif drug_product is None and not catalogue_products(concentration_mcg_per_ml) and drug_expires_on is None:
        errors["drug_expires_on"] = (
            f"{concentration_mcg_per_ml.normalize():f} mcg/mL is not a catalogue product (compounded): "
            "enter its beyond-use date."
        )
    if drug_expires_on is not None and "performed_at" not in errors:
        zone = pump.patient.clinic.zone
        if depletion.start_of_day(drug_expires_on, zone) <= performed_at:
            errors["drug_expires_on"] = "This drug had already expired when the pump was filled."
    return errors


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
    errors = _refill_errors(
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


# --- refill after a projected empty reservoir (CLINICAL.md) -----------------------------------


@dataclass(frozen=True)
class EmptyReservoir:
    """What the refill form warns about before saving, and the service records."""

    empty_since: datetime | None  # the nominal empty time; None when only "nothing aspirated" says so
    hours_empty: Decimal  # 0 when the empty time is unknown
    nothing_aspirated: bool
    needs_order: bool  # empty longer than the clinic's setting: restarting needs a physician's order


def refill_after_empty(pump: Pump, performed_at: datetime, aspirated_ml: Decimal | None) -> EmptyReservoir | None:
    """Whether a refill at ``performed_at`` comes after a projected empty reservoir (or aspirates
    nothing where the projection expected at least the alarm threshold); None otherwise."""
    if performed_at is None or timezone.is_naive(performed_at):
        return None
    previous = pump.refills.filter(performed_at__lt=performed_at).order_by("-performed_at").first()
    return _empty_reservoir(pump, previous, pump.programs.all(), performed_at, aspirated_ml)


def _empty_reservoir(pump, previous, programs, at, aspirated_ml) -> EmptyReservoir | None:
    if previous is None or previous.volume_added_ml == 0:
        # A first fill has nothing before it; a reservoir emptied on purpose (MRI) stopped therapy.
        return None
    fill = _fill_for(pump, previous, programs)
    empty_at = depletion.time_reaching(fill, ZERO)
    empty = empty_at is not None and at > empty_at
    expected, tolerance, _out = residual_check(pump, previous, programs, at, aspirated_ml)
    nothing = aspirated_ml is not None and expected is not None and expected >= pump.lra_ml and aspirated_ml < tolerance
    if not (empty or nothing):
        return None
    hours = (
        (Decimal((at - empty_at).total_seconds()) / 3600).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
        if empty
        else ZERO
    )
    limit = pump.patient.clinic.restart_order_after_empty_hours
    return EmptyReservoir(
        empty_since=empty_at if empty else None,
        hours_empty=hours,
        nothing_aspirated=nothing,
        needs_order=empty and hours > limit,
    )


def expected_residual_ml(pump: Pump, at: datetime) -> Decimal | None:
    """What a refill at ``at`` should aspirate (None before the first fill): the form pre-fills it."""
    previous = pump.refills.filter(performed_at__lt=at).order_by("-performed_at").first()
    if previous is None:
        return None
    return _q2(depletion.expected_residual_ml(_fill_for(pump, previous, pump.programs.all()), at))


def residual_check(pump: Pump, previous, programs, at: datetime, aspirated_ml: Decimal | None):
    """(expected residual, tolerance, out of tolerance) of a refill at ``at`` after ``previous``
    (CLINICAL.md "Refill visit" step 4). A first fill has none and is never out of tolerance."""
    if previous is None:
        return None, None, False
    expected = _q2(depletion.expected_residual_ml(_fill_for(pump, previous, programs), at))
    tolerance = residual_tolerance_ml(pump, expected)
    out = aspirated_ml is not None and depletion.is_discrepant(expected, aspirated_ml, tolerance)
    return expected, tolerance, out


def _check_residual(pump, previous, programs, at, aspirated_ml, reason, errors) -> tuple[Decimal | None, bool]:
    expected, tolerance, discrepancy = residual_check(pump, previous, programs, at, aspirated_ml)
    if discrepancy and not (reason or "").strip():
        errors["discrepancy_reason"] = (
            f"Aspirated {_ml(aspirated_ml)} but {_ml(expected)} was expected (tolerance ±{_ml(tolerance)}): "
            "document the reason. A physician will review this refill."
        )
    return expected, discrepancy


def residual_tolerance_ml(pump: Pump, expected: Decimal) -> Decimal:
    """The clinic's discrepancy tolerance for an expected residual of this pump (CLINICAL.md)."""
    clinic = pump.patient.clinic
    return depletion.discrepancy_tolerance_ml(
        expected,
        pump.pump_model.reservoir_ml,
        small_reservoir_limit_ml=clinic.small_reservoir_limit_ml,
        small_tolerance_ml=clinic.discrepancy_small_reservoir_ml,
        large_tolerance_ml=clinic.discrepancy_large_reservoir_ml,
        pct=clinic.discrepancy_pct,
    )


AMENDABLE_REFILL_FIELDS = {
    "performed_at",
    "aspirated_ml",
    "volume_added_ml",
    "concentration_mcg_per_ml",
    "daily_dose_mcg",
    "bolus_mcg_per_day",
    "drug_product",
    "drug_lot",
    "drug_expires_on",
    "performed_elsewhere",
    "stop_reason",
    "discrepancy_reason",
    "dose_change_confirmed",
    "ordered_by",
    "outside_prescriber",
    "notes",
}


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
    errors = _refill_errors(
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
    for visit, visit_was_discrepant, evaluate in [
        *((r, w, False) for r, w in recomputed),
        (refill, was_discrepant, True),
    ]:
        signals.refill_recorded.send(
            sender=RefillVisit,
            refill=visit,
            pump=pump,
            actor=actor,
            now=now,
            amended=True,
            was_discrepant=visit_was_discrepant,
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
