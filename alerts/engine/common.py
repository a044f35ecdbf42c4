"""What the scan's steps share: each kind's severity, the step report, timeline rows, the batch size."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import AlertEvent, AlertKind, Severity, one_step_higher

KIND_SEVERITY = {
    AlertKind.REFILL_DUE: Severity.REMINDER,
    AlertKind.REFILL_OVERDUE: Severity.URGENT,
    AlertKind.RESERVOIR_CRITICAL: Severity.CRITICAL,
    AlertKind.APPOINTMENT_MISSED: Severity.URGENT,
    AlertKind.PUMP_ALARM: Severity.EMERGENCY,
    AlertKind.RESIDUAL_DISCREPANCY: Severity.REVIEW,
    AlertKind.DELIVERY_DRIFT: Severity.REVIEW,
    AlertKind.REPLACEMENT_DUE: Severity.REMINDER,
    AlertKind.REFILL_AFTER_EMPTY: Severity.REVIEW,
    AlertKind.CARE_ENDED: Severity.REMINDER,
    AlertKind.ORDER_UNSIGNED: Severity.REVIEW,
}

BATCH = 1000


def severity_for(kind: str, high_risk: bool) -> int:
    """The kind's severity; a withdrawal-risk flag moves it one step up."""
    base = KIND_SEVERITY[kind]
    return one_step_higher(base) if high_risk else base


@dataclass
class StepReport:
    raised: int = 0
    upgraded: int = 0
    resolved: int = 0
    details: list[str] = field(default_factory=list)

    def __int__(self):
        return self.raised + self.upgraded + self.resolved


def _timeline(alert_id, kind, now, detail="", actor=None, subject_at=None) -> AlertEvent:
    return AlertEvent(alert_id=alert_id, kind=kind, at=now, detail=detail[:255], actor=actor, subject_at=subject_at)
