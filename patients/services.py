"""Every write with rules, one function each, one transaction each. Forms, the API, commands and
the demo seeder all call these; nothing else writes clinical records.

A refusal raises ``django.core.exceptions.ValidationError`` with a message per field (the API
answers 400 with it, forms show it beside the field) and, being inside the transaction, stores
nothing. Every save goes through the ORM with the acting user attached, so the history records
who did it (the system user for tasks and commands).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.text import Truncator

from clinics.access import role_in
from clinics.models import Clinic, Role
from clinics.system import get_system_user

from . import depletion, signals
from .models import (
    Appointment,
    DrugProduct,
    Patient,
    Program,
    Pump,
    PumpEvent,
    PumpModel,
    PumpProjection,
    RefillVisit,
)

CLOCK_SKEW = timedelta(minutes=5)
ZERO = Decimal("0")
HUNDRED = Decimal("100")
CENT = Decimal("0.01")
DEFAULT_MAX_DAYS_IN_PUMP = 180
CONSTANT_FLOW_DOSE_TOLERANCE = Decimal("0.05")


class Refusal(ValidationError):
    """A write refused by a clinical rule: ``{field: [message, …]}``."""


def _refuse(errors: dict[str, str | list[str]]):
    raise Refusal({field: msg if isinstance(msg, list) else [msg] for field, msg in errors.items()})


def _actor(user):
    return user if user is not None else get_system_user()


def _save(instance, actor, **kwargs):
    """Save so that the history row names ``actor``."""
    instance._history_user = _actor(actor)
    instance.save(**kwargs)
    return instance


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _require_aware(field: str, value: datetime | None, errors: dict):
    if value is not None and timezone.is_naive(value):
        errors[field] = "Give the time with its UTC offset: a clinical time is never guessed."


def _ml(value: Decimal) -> str:
    return f"{value.quantize(CENT)} mL"


def _q2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


# --- catalogue look-ups ---------------------------------------------------------


def catalogue_products(concentration: Decimal) -> list[DrugProduct]:
    return list(DrugProduct.objects.filter(concentration_mcg_per_ml=concentration, is_active=True))


def max_days_in_pump(refill: RefillVisit) -> int:
    if refill.drug_product_id is not None:
        return refill.drug_product.max_days_in_pump
    products = catalogue_products(refill.concentration_mcg_per_ml)
    return min((p.max_days_in_pump for p in products), default=DEFAULT_MAX_DAYS_IN_PUMP)


# --- the projection -------------------------------------------------------------


def _segment_rate(pump: Pump, program: Program) -> Decimal:
    if program.total_mcg_per_day == 0:
        return ZERO
    if pump.pump_model.is_constant_flow and pump.flow_rate_ml_per_day:
        # The device fixes the volume rate; the dose follows from rate × concentration.
        return pump.flow_rate_ml_per_day
    return depletion.rate_ml_per_day(
        program.daily_dose_mcg, program.bolus_mcg_per_day, program.concentration_mcg_per_ml
    )


def _fill_for(pump: Pump, refill: RefillVisit, programs: Iterable[Program], until: datetime | None = None):
    """The depletion Fill of ``refill``: its own program, then every later one before ``until``."""
    programs = sorted(programs, key=lambda p: (p.effective_at, p.pk or 0))
    segments = [
        depletion.Segment(start=p.effective_at, rate_ml_per_day=_segment_rate(pump, p))
        for p in programs
        if p.effective_at >= refill.performed_at and (until is None or p.effective_at < until)
    ]
    return depletion.Fill(filled_at=refill.performed_at, volume_ml=refill.volume_added_ml, segments=tuple(segments))


def _delivery_samples(pump: Pump, refills: list[RefillVisit], programs: list[Program]):
    """One sample per refill interval that ended with a measured residual (oldest first)."""
    samples = []
    for previous, following in zip(refills, refills[1:], strict=False):
        fill = _fill_for(pump, previous, programs, until=following.performed_at)
        programmed = min(depletion.consumed_ml(fill, following.performed_at), previous.volume_added_ml)
        samples.append(
            depletion.DeliverySample(
                gone_ml=previous.volume_added_ml - following.aspirated_ml,
                programmed_ml=programmed,
                # A documented anomaly (pocket fill, catheter problem) says nothing about drift.
                excluded=following.discrepancy,
            )
        )
    return samples


def margin_for(clinic: Clinic, patient: Patient) -> int:
    return depletion.margin_days(
        clinic.refill_margin_days, patient.extra_margin_days, clinic.high_risk_extra_days, patient.has_withdrawal_risk
    )


def compute_projection(pump: Pump, now: datetime | None = None) -> depletion.Projection | None:
    """The pump's projection from its stored record; None when it was never filled."""
    projection, _fill = _project(pump, _now(now))
    return projection


HISTORY_PREFETCH = (
    Prefetch(
        "refills",
        queryset=RefillVisit.objects.select_related("drug_product").order_by("performed_at"),
        to_attr="refill_history",
    ),
    Prefetch("programs", queryset=Program.objects.order_by("effective_at", "id"), to_attr="program_history"),
)


def _project(pump: Pump, now: datetime):
    # recompute_projections prefetches the histories of many pumps at once (HISTORY_PREFETCH).
    refills = getattr(pump, "refill_history", None)
    if refills is None:
        refills = list(pump.refills.select_related("drug_product").order_by("performed_at"))
    programs = getattr(pump, "program_history", None)
    if programs is None:
        programs = list(pump.programs.order_by("effective_at", "id"))
    return project_record(pump, refills, programs, now)


def project_record(pump: Pump, refills: list[RefillVisit], programs: list[Program], now: datetime):
    """(projection, fill) of a pump's record — saved rows, or unsaved ones for the refill form's
    preview — from its last refill; (None, None) when it was never filled."""
    if not refills:
        return None, None
    last = refills[-1]
    clinic = pump.patient.clinic
    fill = _fill_for(pump, last, programs)
    projection = depletion.project(
        fill,
        lra_ml=pump.lra_ml,
        max_days_in_pump=max_days_in_pump(last),
        vial_expires_on=last.drug_expires_on,
        zone=clinic.zone,
        overinfusion_allowance_pct=clinic.overinfusion_allowance_pct,
        margin=margin_for(clinic, pump.patient),
        reminder_days=clinic.reminder_days,
        critical_hours=clinic.critical_hours,
        now=now,
        measured_delivery_ratio=depletion.delivery_ratio(_delivery_samples(pump, refills, programs)),
    )
    return projection, fill


def _ratio_for_storage(value: Decimal | None) -> Decimal | None:
    # Rounded up: a stored ratio never understates a pump's over-delivery.
    return None if value is None else value.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def recompute_projection(pump: Pump, now: datetime | None = None) -> PumpProjection | None:
    """Store the pump's projection (derived, unaudited). Explanted or never-filled pumps have none."""
    now = _now(now)
    projection, fill = _project(pump, now) if pump.status == Pump.Status.ACTIVE else (None, None)
    if projection is None:
        PumpProjection.objects.filter(pump=pump).delete()
        return None
    fields = {
        "computed_at": now,
        "filled_at": projection.filled_at,
        "reservoir_at_fill_ml": projection.reservoir_at_fill_ml,
        "rate_ml_per_day": projection.rate_ml_per_day.quantize(Decimal("0.0001"), rounding=ROUND_CEILING),
        "conservative_factor": _ratio_for_storage(projection.conservative_factor),
        "lra_at": projection.lra_at,
        "empty_at": projection.empty_at,
        "conservative_lra_at": projection.conservative_lra_at,
        "drug_expires_at": projection.drug_expires_at,
        "refill_due_on": projection.refill_due_on,
        "delivery_ratio": _ratio_for_storage(projection.delivery_ratio),
        "critical_from": projection.critical_from,
        "overdue_from": projection.overdue_from,
        "due_soon_from": projection.due_soon_from,
        "is_stopped": projection.is_stopped,
        "segments": [[s.start.isoformat(), str(s.rate_ml_per_day)] for s in fill.segments],
    }
    row = PumpProjection(pump=pump, **fields)
    # One statement, INSERT … ON CONFLICT DO UPDATE, where update_or_create takes four (savepoint,
    # SELECT … FOR UPDATE, UPDATE or INSERT, release); atomic against a concurrent first insert too.
    PumpProjection.objects.bulk_create([row], update_conflicts=True, unique_fields=["pump"], update_fields=list(fields))
    return row


def recompute_projections(pumps: Iterable[Pump], now: datetime | None = None) -> list[int]:
    """Recompute several pumps' projections and tell the alerting side once; returns their ids."""
    now = _now(now)
    if isinstance(pumps, QuerySet):
        # Two queries per thousand pumps for their histories, not two per pump.
        pumps = pumps.prefetch_related(*HISTORY_PREFETCH).iterator(chunk_size=1000)
    ids = []
    for pump in pumps:
        recompute_projection(pump, now)
        ids.append(pump.pk)
    if ids:
        signals.projections_changed.send(sender=Pump, pump_ids=ids, now=now)
    return ids


def _pumps_of(queryset):
    return queryset.select_related("pump_model", "patient", "patient__clinic")


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
    limit = clinic.max_daily_dose_mcg_per_day
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
    if total > clinic.high_dose_threshold_mcg_per_day:
        errors["dose_change_confirmed"] = (
            f"{total.normalize():f} mcg/day is above the clinic's high-dose threshold of "
            f"{clinic.high_dose_threshold_mcg_per_day.normalize():f} mcg/day: confirm it is intended "
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


def _check_ordering_physician(pump: Pump, actor, ordered_by, errors: dict):
    """A nurse changing a dose names the ordering physician (DESIGN.md role table)."""
    if ordered_by is not None:
        if not ordered_by.is_superuser and role_in(ordered_by, pump.access_clinic_id) != Role.PHYSICIAN:
            errors["ordered_by"] = "The ordering clinician must be a physician of this clinic."
        return
    if actor is not None and not actor.is_superuser and role_in(actor, pump.access_clinic_id) == Role.NURSE:
        errors["ordered_by"] = "Name the physician who ordered this dose change."


# --- refills ------------------------------------------------------------------------


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
    if volume_added_ml <= 0:
        errors["volume_added_ml"] = "The volume added must be more than 0 mL."
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


@transaction.atomic
def record_refill(
    *,
    pump: Pump,
    actor,
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
    notes: str = "",
    now: datetime | None = None,
) -> RefillVisit:
    """Record a refill (CLINICAL.md "Refill visit"): the visit, the program it starts, the new
    projection, and signals for the alerting side. Also the way to bring a pump already in
    service into the app: record its last refill."""
    now = _now(now)
    pump = _pumps_of(Pump.objects.select_for_update()).get(pk=pump.pk)
    previous = pump.refills.order_by("-performed_at").first()
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
    )
    daily_dose_mcg = constant_flow_dose(pump, concentration_mcg_per_ml, daily_dose_mcg, errors)
    if daily_dose_mcg is None:
        errors["daily_dose_mcg"] = "Give the daily dose in mcg/day."
    if errors:
        _refuse(errors)
    reference = _reference_dose(pump, performed_at)
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
    if ordered_by is not None:
        _check_ordering_physician(pump, actor, ordered_by, errors)

    expected, discrepancy = _check_residual(
        pump, previous, pump.programs.all(), performed_at, aspirated_ml, discrepancy_reason, errors
    )
    if errors:
        _refuse(errors)

    program = _save(
        Program(
            pump=pump,
            effective_at=performed_at,
            concentration_mcg_per_ml=concentration_mcg_per_ml,
            daily_dose_mcg=daily_dose_mcg,
            bolus_mcg_per_day=bolus_mcg_per_day,
            stop_reason=stop_reason.strip() if daily_dose_mcg == 0 else "",
            ordered_by=ordered_by,
            entered_by=actor,
        ),
        actor,
    )
    refill = _save(
        RefillVisit(
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
            notes=notes,
        ),
        actor,
    )
    recompute_projection(pump, now)
    signals.refill_recorded.send(sender=RefillVisit, refill=refill, pump=pump, actor=actor, now=now)
    return refill


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
    tolerance = _tolerance(pump, expected)
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


def _tolerance(pump: Pump, expected: Decimal) -> Decimal:
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
    refill = RefillVisit.objects.select_related("program").get(pk=refill.pk)
    pump = _pumps_of(Pump.objects.select_for_update()).get(pk=refill.pump_id)
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
    # History's change-reason column is short; the full reason is on the refill itself.
    program._change_reason = Truncator(f"Refill amended: {amend_reason.strip()}").chars(100)
    _save(program, actor)
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
    recompute_projection(pump, now)
    signals.refill_recorded.send(
        sender=RefillVisit, refill=refill, pump=pump, actor=actor, now=now, amended=True, was_discrepant=was_discrepant
    )
    return refill


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
    verified_by=None,
    stop_reason: str = "",
    dose_change_confirmed: bool = False,
    now: datetime | None = None,
) -> Program:
    """Reprogram the pump. The concentration stays the last fill's; a nurse names the physician."""
    now = _now(now)
    pump = _pumps_of(Pump.objects.select_for_update()).get(pk=pump.pk)
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
    _check_ordering_physician(pump, actor, ordered_by, errors)
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
            verified_by=verified_by,
            entered_by=actor,
        ),
        actor,
    )
    recompute_projections([pump], now)
    return program


# --- patients and pumps ------------------------------------------------------------------


PATIENT_FIELDS = {
    "mrn",
    "given_name",
    "family_name",
    "birth_date",
    "phone",
    "contact_notes",
    "status",
    "sci_at_or_above_t6",
    "communication_difficulty",
    "prior_withdrawal",
    "extra_margin_days",
    "renal_impairment",
    "cns_depressants",
    "pregnancy_or_breastfeeding",
    "risk_notes",
}


def _full_clean(instance, exclude=None):
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise Refusal(exc.message_dict) from None


@transaction.atomic
def create_pump_model(*, actor, **fields) -> PumpModel:
    """A catalogue entry (superusers only)."""
    pump_model = PumpModel(**fields)
    _full_clean(pump_model)
    return _save(pump_model, actor)


@transaction.atomic
def create_patient(*, clinic: Clinic, actor, **fields) -> Patient:
    patient = Patient(clinic=clinic, **fields)
    _full_clean(patient)
    return _save(patient, actor)


@transaction.atomic
def update_patient(*, patient: Patient, actor, now: datetime | None = None, **fields) -> Patient:
    """Change a patient's details; status and risk flags move the refill margins and the worklist."""
    unknown = set(fields) - PATIENT_FIELDS
    if unknown:
        _refuse(dict.fromkeys(sorted(unknown), "This field cannot be changed here."))
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    for field, value in fields.items():
        setattr(patient, field, value)
    _full_clean(patient)
    _save(patient, actor)
    recompute_projections(_pumps_of(patient.pumps.all()), now)
    return patient


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
    pump = _pumps_of(Pump.objects.select_for_update()).get(pk=pump.pk)
    for field, value in fields.items():
        setattr(pump, field, value)
    if "explanted_on" in fields:
        pump.status = Pump.Status.EXPLANTED if pump.explanted_on else Pump.Status.ACTIVE
    errors = _pump_field_errors(pump)
    if errors:
        _refuse(errors)
    _full_clean(pump)
    _save(pump, actor)
    recompute_projections([pump], now)
    return pump


CLINIC_SETTINGS = {
    "name",
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


# --- appointments and events -----------------------------------------------------------


@transaction.atomic
def schedule_appointment(
    *,
    pump: Pump,
    actor,
    kind: str,
    scheduled_for: datetime,
    assigned_to=None,
    notes: str = "",
    now: datetime | None = None,
) -> tuple[Appointment, list[str]]:
    """Book an appointment; returns it with warnings (a refill booked after the due date)."""
    now = _now(now)
    errors: dict[str, str] = {}
    _require_aware("scheduled_for", scheduled_for, errors)
    if kind not in Appointment.Kind.values:
        errors["kind"] = f"Choose one of: {', '.join(Appointment.Kind.values)}."
    if pump.status != Pump.Status.ACTIVE:
        errors["pump"] = "This pump is explanted."
    care_roles = (Role.NURSE, Role.PHYSICIAN)
    if (
        assigned_to is not None
        and not assigned_to.is_superuser
        and role_in(assigned_to, pump.access_clinic_id) not in care_roles
    ):
        errors["assigned_to"] = "Assign the appointment to care staff of this clinic."
    if errors:
        _refuse(errors)
    appointment = _save(
        Appointment(
            pump=pump, kind=kind, scheduled_for=scheduled_for, assigned_to=assigned_to, notes=notes, created_by=actor
        ),
        actor,
    )
    warnings = []
    projection = PumpProjection.objects.filter(pump=pump).first()
    if kind == Appointment.Kind.REFILL and projection is not None:
        zone = pump.patient.clinic.zone
        if scheduled_for.astimezone(zone).date() > projection.refill_due_on:
            warnings.append(
                f"This refill is booked after the pump's refill due date ({projection.refill_due_on:%Y-%m-%d})."
            )
    if scheduled_for < now - CLOCK_SKEW:
        warnings.append("This appointment is in the past.")
    signals.appointment_changed.send(sender=Appointment, appointment=appointment, now=now)
    return appointment, warnings


def _set_appointment_status(appointment: Appointment, actor, status: str, now: datetime | None) -> Appointment:
    now = _now(now)
    with transaction.atomic():
        appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
        if appointment.status != Appointment.Status.SCHEDULED:
            _refuse({"status": f"This appointment is already {appointment.get_status_display().lower()}."})
        appointment.status = status
        appointment.status_changed_at = now
        _save(appointment, actor)
        signals.appointment_changed.send(sender=Appointment, appointment=appointment, now=now)
    return appointment


def complete_appointment(*, appointment: Appointment, actor, now: datetime | None = None) -> Appointment:
    return _set_appointment_status(appointment, actor, Appointment.Status.COMPLETED, now)


def mark_appointment_missed(*, appointment: Appointment, actor, now: datetime | None = None) -> Appointment:
    return _set_appointment_status(appointment, actor, Appointment.Status.MISSED, now)


def cancel_appointment(*, appointment: Appointment, actor, now: datetime | None = None) -> Appointment:
    return _set_appointment_status(appointment, actor, Appointment.Status.CANCELLED, now)


# Items of CLINICAL.md's "Patient call checklist": any of them means emergency care now.
WITHDRAWAL_SIGNS = {
    "severe_spasticity": "Return of severe spasticity or rigidity",
    "itching": "Itching without a rash",
    "high_fever": "High fever",
    "confusion": "Agitation, confusion or hallucinations",
    "seizures": "Seizures",
    "rapid_heart_rate": "Rapid heart rate",
    "low_blood_pressure": "Low blood pressure",
}
OVERDOSE_SIGNS = {
    "drowsiness": "Profound drowsiness",
    "slow_breathing": "Slow or shallow breathing",
    "weakness": "Marked weakness or floppiness",
}
SYMPTOMS = {**WITHDRAWAL_SIGNS, **OVERDOSE_SIGNS}


def is_emergency(kind: str, symptoms: Iterable[str]) -> bool:
    """A critical alarm, withdrawal or overdose signs: emergency care now, not a booked refill."""
    return kind in (PumpEvent.Kind.CRITICAL_ALARM, PumpEvent.Kind.WITHDRAWAL_SYMPTOMS) or bool(
        set(symptoms) & set(SYMPTOMS)
    )


@transaction.atomic
def record_pump_event(
    *,
    pump: Pump,
    actor,
    kind: str,
    occurred_at: datetime,
    source: str = PumpEvent.Source.PATIENT_CALL,
    symptoms: Iterable[str] = (),
    notes: str = "",
    now: datetime | None = None,
) -> PumpEvent:
    """Record an alarm or a call; the alerting side raises its alert at once (signal)."""
    now = _now(now)
    symptoms = list(dict.fromkeys(symptoms))
    errors: dict[str, str] = {}
    _require_aware("occurred_at", occurred_at, errors)
    if kind not in PumpEvent.Kind.values:
        errors["kind"] = f"Choose one of: {', '.join(PumpEvent.Kind.values)}."
    if not errors and occurred_at > now + CLOCK_SKEW:
        errors["occurred_at"] = "An event cannot be recorded in the future."
    unknown = [s for s in symptoms if s not in SYMPTOMS]
    if unknown:
        errors["symptoms"] = f"Unknown checklist items: {', '.join(unknown)}."
    if errors:
        _refuse(errors)
    event = _save(
        PumpEvent(
            pump=pump,
            kind=kind,
            occurred_at=occurred_at,
            reported_by=actor,
            source=source,
            symptoms=symptoms,
            notes=notes,
        ),
        actor,
    )
    signals.pump_event_recorded.send(
        sender=PumpEvent, event=event, pump=pump, emergency=is_emergency(kind, symptoms), now=now
    )
    return event
