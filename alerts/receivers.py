"""The alerting side's answers to clinical writes (patients sends signals, never imports alerts).

Receivers run inside the writing service's transaction: the alert commits with the record.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from clinics.models import Clinic
from clinics.signals import rota_changed
from patients import signals
from patients.models import PumpEvent, PumpProjection

from . import engine, enqueue, gaps
from .models import REFILL_FAMILY, Alert, AlertKind, Severity
from .policies import ensure_default_policies

log = logging.getLogger(__name__)

# How much above the alarm threshold a reported low-reservoir beep counts as unexpected (mL).
LOW_BEEP_MISMATCH_ML = 1


@receiver(post_save, sender=Clinic)
def seed_policies_for_new_clinic(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        ensure_default_policies(instance)


@receiver(rota_changed)
def on_rota_changed(sender, clinic, now, **kwargs):
    # In the rota write's transaction: a covered gap's banner clears with the change that covers it.
    gaps.sync_rota_gaps(now, clinic_ids=[clinic.pk])


@receiver(signals.refill_recorded)
def on_refill(
    sender,
    refill,
    pump,
    now,
    actor=None,
    amended=False,
    was_discrepant=False,
    cleared_reason="",
    discrepancy_changed=True,
    after_empty=False,
    evaluate=True,
    first_fill=False,
    **kwargs,
):
    if not amended and not first_fill:  # a pump's first fill: a pump this new has no alerts yet
        # A refill resolves the pump's refill, missed-appointment and alarm alerts.
        engine.resolve_alerts(
            Alert.objects.open().filter(
                pump=pump, kind__in=[*REFILL_FAMILY, AlertKind.APPOINTMENT_MISSED, AlertKind.PUMP_ALARM]
            ),
            now,
            "Refill recorded, performed at",
            actor,
            subject_at=refill.performed_at,
        )
    if amended and was_discrepant and not refill.discrepancy:
        # An amendment (of this refill or an earlier one) put the residual back within tolerance.
        engine.resolve_alerts(
            Alert.objects.open().filter(refill=refill, kind=AlertKind.RESIDUAL_DISCREPANCY),
            now,
            cleared_reason or "Residual within tolerance after an amendment",
            actor,
        )
    if refill.discrepancy and discrepancy_changed:
        # An amendment that leaves the residual as it was (a lot, a note) leaves its review alone:
        # open, it stays open; concluded, it is not raised again.
        engine.raise_alert(
            pump_id=pump.pk,
            clinic_id=pump.patient.clinic_id,
            kind=AlertKind.RESIDUAL_DISCREPANCY,
            severity=Severity.REVIEW,
            now=now,
            detail="Residual out of tolerance: physician review",
            refill_id=refill.pk,
        )
    if not amended and refill.withdrawal_signs:
        # CLINICAL.md "Refill after a projected empty reservoir": a sign ticked is an emergency.
        engine.raise_alert(
            pump_id=pump.pk,
            clinic_id=pump.patient.clinic_id,
            kind=AlertKind.PUMP_ALARM,
            severity=Severity.EMERGENCY,
            now=now,
            detail=f"Withdrawal signs at the refill ({len(refill.withdrawal_signs)}): emergency",
        )
        _wake_scan_after_commit()
    elif not amended and after_empty:
        engine.raise_alert(
            pump_id=pump.pk,
            clinic_id=pump.patient.clinic_id,
            kind=AlertKind.REFILL_AFTER_EMPTY,
            severity=Severity.REVIEW,
            now=now,
            detail="Refilled after a projected empty reservoir: physician review",
            refill_id=refill.pk,
        )
    if evaluate:  # otherwise a batch (an import) evaluates all its pumps at once when it ends
        engine.evaluate_conditions(now, pump_ids=[pump.pk])


@receiver(signals.pump_event_recorded)
def on_pump_event(sender, event, pump, emergency, now, **kwargs):
    high_risk = pump.patient.has_withdrawal_risk
    if emergency:
        engine.raise_alert(
            pump_id=pump.pk,
            clinic_id=pump.patient.clinic_id,
            kind=AlertKind.PUMP_ALARM,
            severity=Severity.EMERGENCY,
            now=now,
            detail=f"{event.get_kind_display()} reported: emergency",
        )
    elif event.kind == PumpEvent.Kind.LOW_RESERVOIR_ALARM:
        projection = PumpProjection.objects.filter(pump=pump).first()
        expected_ml = projection.reservoir_ml_at(event.occurred_at) if projection else None
        mismatch = expected_ml is None or expected_ml > pump.lra_ml + LOW_BEEP_MISMATCH_ML
        severity = engine.severity_for(AlertKind.REFILL_OVERDUE, high_risk)  # urgent: a refill within days
        if mismatch:
            severity = max(severity, Severity.CRITICAL)
        detail = "Low-reservoir alarm reported"
        if mismatch:
            detail += (
                f"; MISMATCH: the app expected {expected_ml:.1f} mL"
                if expected_ml is not None
                else "; MISMATCH: no fill on record"
            )
        engine.raise_alert(
            pump_id=pump.pk,
            clinic_id=pump.patient.clinic_id,
            kind=AlertKind.PUMP_ALARM,
            severity=severity,
            now=now,
            detail=detail,
        )
    else:
        return
    _wake_scan_after_commit()


@receiver(signals.appointment_changed)
def on_appointment(sender, appointment, now, **kwargs):
    engine.evaluate_conditions(now, pump_ids=[appointment.pump_id])


@receiver(signals.care_ended)
def on_care_ended(sender, pump_ids, reason, now, actor=None, tell=False, **kwargs):
    """Pumps out of the scan: the alerts the scan raised resolve with the reason on their timeline;
    pump alarms and physician reviews stay open for a person to close."""
    engine.resolve_alerts(
        Alert.objects.open().filter(pump_id__in=pump_ids, kind__in=engine.SCANNED_KINDS), now, reason, actor
    )
    if tell:
        engine.tell_care_ended(pump_ids, reason, now, actor)


@receiver(signals.projections_changed)
def on_projections(sender, pump_ids, now, **kwargs):
    engine.evaluate_conditions(now, pump_ids=pump_ids)


def _wake_scan_after_commit():
    """An emergency should not wait for the next beat: ask for a scan as soon as this commits."""

    def publish():
        try:
            enqueue.scan()
        except Exception as exc:  # broker down: beat's next scan (or `manage.py escalate`) takes it up
            log.warning("could not enqueue an immediate scan: %s", exc)

    transaction.on_commit(publish)


@receiver(signals.program_countersigned)
def on_program_countersigned(sender, program, now, actor=None, **kwargs):
    # In the countersignature's transaction: the order's escalation stops with the signature.
    engine.resolve_alerts(
        Alert.objects.open().filter(kind=AlertKind.ORDER_UNSIGNED, program=program), now, "Order countersigned", actor
    )
