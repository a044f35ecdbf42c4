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
    _now,
    _refuse,
    _require_aware,
    _save,
)

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
