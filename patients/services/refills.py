"""A refill visit's rules (CLINICAL.md "Refill visit"), shared by recording a refill
(``recording``), the implant's first fill (``intake``) and amendments (``amendments``): the
visit's own checks, the expected residual and its tolerance, and a refill after a projected
empty reservoir.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from django.utils import timezone

from .. import depletion
from ..models import (
    DrugProduct,
    Program,
    Pump,
    RefillVisit,
)
from .common import (
    CLOCK_SKEW,
    ZERO,
    _ml,
    _q2,
    _require_aware,
    _text_errors,
)
from .projections import _fill_for, catalogue_products

# --- the visit's own checks -------------------------------------------------------------

# record_refill's arguments other than the pump, the actor and now (a first fill's too; an
# amendment may change all but the withdrawal signs, which belong to the visit as it happened).
FILL_FIELDS = frozenset(
    {
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
        "withdrawal_signs",
        "notes",
    }
)

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
