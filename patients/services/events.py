"""Pump events: alarms and patient calls (CLINICAL.md "Patient call checklist")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from .. import signals
from ..models import (
    Pump,
    PumpEvent,
)
from .common import (
    CLOCK_SKEW,
    _lock_pump,
    _now,
    _refuse,
    _require_aware,
    _save,
    _text_errors,
)
from .projections import recompute_projections

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
EMERGENCY_MESSAGE = (
    "Withdrawal or overdose signs: this is an emergency — send the patient to emergency care now, not a booked refill."
)


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
    _text_errors(PumpEvent, errors, notes=notes)
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
    if kind == PumpEvent.Kind.ERI_ALARM:
        _set_eri_from_alarm(pump, occurred_at, actor, now)
    signals.pump_event_recorded.send(
        sender=PumpEvent, event=event, pump=pump, emergency=is_emergency(kind, symptoms), now=now
    )
    return event


def _set_eri_from_alarm(pump: Pump, occurred_at: datetime, actor, now: datetime) -> None:
    """A reported ERI alarm sets the pump's ERI date to the event's clinic-zone date when it has
    none or a later one (the earlier date wins: the battery's end comes from the first report)."""
    pump = _lock_pump(pump.pk)
    reported_on = occurred_at.astimezone(pump.patient.clinic.zone).date()
    if pump.eri_on is not None and pump.eri_on <= reported_on:
        return
    pump.eri_on = reported_on
    pump._change_reason = "ERI alarm reported"
    _save(pump, actor)
    recompute_projections([pump], now)
