"""The stored projection: catalogue look-ups, the depletion fill of a record, recomputation."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from django.db.models import Prefetch, Q, QuerySet

from clinics.calendar import ClinicCalendar, calendar_of
from clinics.models import Clinic

from .. import depletion, signals
from ..models import (
    DrugProduct,
    Patient,
    Program,
    Pump,
    PumpProjection,
    RefillVisit,
)
from .common import (
    DEFAULT_MAX_DAYS_IN_PUMP,
    ZERO,
    _now,
)

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


def delivery_samples(pump: Pump, refills: list[RefillVisit], programs: list[Program]):
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


def compute_projection(
    pump: Pump, now: datetime | None = None, calendar: ClinicCalendar | None = None
) -> depletion.Projection | None:
    """The pump's projection from its stored record; None when it was never filled."""
    projection, _fill = _project(pump, _now(now), calendar)
    return projection


HISTORY_PREFETCH = (
    Prefetch(
        "refills",
        queryset=RefillVisit.objects.select_related("drug_product").order_by("performed_at"),
        to_attr="refill_history",
    ),
    Prefetch("programs", queryset=Program.objects.order_by("effective_at", "id"), to_attr="program_history"),
)


def _project(pump: Pump, now: datetime, calendar: ClinicCalendar | None = None):
    # recompute_projections prefetches the histories of many pumps at once (HISTORY_PREFETCH).
    refills = getattr(pump, "refill_history", None)
    if refills is None:
        refills = list(pump.refills.select_related("drug_product").order_by("performed_at"))
    programs = getattr(pump, "program_history", None)
    if programs is None:
        programs = list(pump.programs.order_by("effective_at", "id"))
    return project_record(pump, refills, programs, now, calendar)


def project_record(
    pump: Pump,
    refills: list[RefillVisit],
    programs: list[Program],
    now: datetime,
    calendar: ClinicCalendar | None = None,
):
    """(projection, fill) of a pump's record — saved rows, or unsaved ones for the refill form's
    preview — from its last refill; (None, None) when it was never filled. ``calendar``: the
    clinic's closed days (read when not given: one query)."""
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
        measured_delivery_ratio=depletion.delivery_ratio(delivery_samples(pump, refills, programs)),
        is_closed=calendar if calendar is not None else calendar_of(clinic),
    )
    return projection, fill


def _ratio_for_storage(value: Decimal | None) -> Decimal | None:
    # Rounded up: a stored ratio never understates a pump's over-delivery.
    return None if value is None else value.quantize(Decimal("0.0001"), rounding=ROUND_CEILING)


def recompute_projection(
    pump: Pump, now: datetime | None = None, calendar: ClinicCalendar | None = None
) -> PumpProjection | None:
    """Store the pump's projection (derived, unaudited). Explanted or never-filled pumps have none."""
    now = _now(now)
    projection, fill = _project(pump, now, calendar) if pump.status == Pump.Status.ACTIVE else (None, None)
    if projection is None:
        PumpProjection.objects.filter(pump=pump).delete()
        return None
    row = projection_row(pump, projection, fill, now)
    store_projections([row])
    return row


def projection_row(pump: Pump, projection: depletion.Projection, fill, now: datetime) -> PumpProjection:
    """The stored form of a pump's projection (unsaved: ``store_projections`` writes it)."""
    return PumpProjection(
        pump=pump,
        computed_at=now,
        filled_at=projection.filled_at,
        reservoir_at_fill_ml=projection.reservoir_at_fill_ml,
        rate_ml_per_day=projection.rate_ml_per_day.quantize(Decimal("0.0001"), rounding=ROUND_CEILING),
        conservative_factor=_ratio_for_storage(projection.conservative_factor),
        lra_at=projection.lra_at,
        empty_at=projection.empty_at,
        conservative_lra_at=projection.conservative_lra_at,
        drug_expires_at=projection.drug_expires_at,
        refill_due_on=projection.refill_due_on,
        unmoved_refill_due_on=projection.unmoved_refill_due_on,
        delivery_ratio=_ratio_for_storage(projection.delivery_ratio),
        critical_from=projection.critical_from,
        overdue_from=projection.overdue_from,
        due_soon_from=projection.due_soon_from,
        is_stopped=projection.is_stopped,
        end_of_service_on=pump.end_of_service_on,
        segments=[[s.start.isoformat(), str(s.rate_ml_per_day)] for s in fill.segments],
    )


_PROJECTION_FIELDS = [f.name for f in PumpProjection._meta.concrete_fields if f.name not in ("id", "pump")]


def store_projections(rows: list[PumpProjection]) -> None:
    """Insert or replace the pumps' stored projections: one INSERT … ON CONFLICT DO UPDATE
    statement for them all (update_or_create would take four a pump: savepoint, SELECT … FOR
    UPDATE, UPDATE or INSERT, release); atomic against a concurrent first insert too."""
    for row in rows:
        row.pump_id = row.pump.pk  # a pump inserted after its row was built
    PumpProjection.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["pump"], update_fields=_PROJECTION_FIELDS
    )


_batched_signals: ContextVar[list | None] = ContextVar("batched_projection_signals", default=None)


@contextmanager
def batched_projection_signals():
    """Within the block, ``recompute_projections`` tells the alerting side nothing; at its end it
    is told once about every pump recomputed (an import of hundreds of pumps evaluates their
    alerts in one pass, not one per pump). Nothing is sent when the block raises."""
    pending: list = []
    token = _batched_signals.set(pending)
    try:
        yield
    finally:
        _batched_signals.reset(token)
    if pending:
        ids = list(dict.fromkeys(pk for batch, _now_at in pending for pk in batch))
        signals.projections_changed.send(sender=Pump, pump_ids=ids, now=pending[-1][1])


def alert_evaluation_deferred(pump_id: int, now: datetime) -> bool:
    """Inside ``batched_projection_signals``: note the pump for the one evaluation at the end and
    say so (the caller's signal then asks the alerting side not to evaluate it on its own)."""
    pending = _batched_signals.get()
    if pending is None:
        return False
    pending.append(([pump_id], now))
    return True


def recompute_projections(pumps: Iterable[Pump], now: datetime | None = None) -> list[int]:
    """Recompute several pumps' projections and tell the alerting side once; returns their ids."""
    now = _now(now)
    if isinstance(pumps, QuerySet):
        # Two queries per thousand pumps for their histories, not two per pump.
        pumps = pumps.prefetch_related(*HISTORY_PREFETCH).iterator(chunk_size=1000)
    ids = []
    calendars: dict[int, ClinicCalendar] = {}  # one closures query per clinic, not per pump
    for pump in pumps:
        clinic = pump.patient.clinic
        if clinic.pk not in calendars:
            calendars[clinic.pk] = calendar_of(clinic)
        recompute_projection(pump, now, calendars[clinic.pk])
        ids.append(pump.pk)
    pending = _batched_signals.get()
    if ids and pending is not None:
        pending.append((ids, now))
    elif ids:
        signals.projections_changed.send(sender=Pump, pump_ids=ids, now=now)
    return ids


def redate_projections(clinic: Clinic, now: datetime | None = None) -> list[int]:
    """After the clinic's closed days changed (a closure entered, edited or removed): move every
    stored due date of its pumps by the new calendar and tell the alerting side; returns the ids of
    the pumps whose due date moved.

    The calendar enters the projection only where the unmoved due date (stored) moves to an open
    day, so this is the same as recomputing every pump, without reading any history. Set-based:
    the pumps sharing an unmoved due date share the moved one — one query for the distinct dates,
    one UPDATE per date that moves, one for the ids: never a query per pump.
    """
    now = _now(now)
    calendar = calendar_of(clinic)
    rows = PumpProjection.objects.filter(pump__patient__clinic=clinic)
    changes = []
    for unmoved, stored in rows.order_by().values_list("unmoved_refill_due_on", "refill_due_on").distinct():
        moved = depletion.last_open_day_on_or_before(unmoved, calendar)
        if moved != stored:
            changes.append((unmoved, stored, moved))
    if not changes:
        return []
    changed_q = None
    for unmoved, stored, moved in changes:
        overdue_from, due_soon_from = depletion.status_instants(moved, clinic.zone, clinic.reminder_days)
        group = Q(unmoved_refill_due_on=unmoved, refill_due_on=stored)
        rows.filter(group).update(refill_due_on=moved, overdue_from=overdue_from, due_soon_from=due_soon_from)
        moved_q = Q(unmoved_refill_due_on=unmoved, refill_due_on=moved)
        changed_q = moved_q if changed_q is None else changed_q | moved_q
    ids = list(rows.filter(changed_q).values_list("pump_id", flat=True))
    if ids:
        signals.projections_changed.send(sender=Pump, pump_ids=ids, now=now)
    return ids
