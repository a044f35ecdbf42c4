"""Writes people make on alerts: acknowledge, resolve, and clinic admins' webhooks."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from clinics.models import Rotation
from patients.models import Appointment

from . import engine
from .models import (
    PHYSICIAN_REVIEW_KINDS,
    Alert,
    AlertEvent,
    AlertKind,
    Channel,
    EscalationLevel,
    EscalationPolicy,
    Notification,
    ReviewConclusion,
    Webhook,
)
from .review_models import NOTE_MAX_CHARS


@transaction.atomic
def acknowledge_alert(*, alert: Alert, actor, now: datetime | None = None) -> Alert:
    """Someone is on it: repeats pause until the policy's re-alert interval, then notify again
    if still unresolved. A worsening condition escalates regardless."""
    now = now or timezone.now()
    if not actor.has_perm("alerts.acknowledge", alert):
        raise PermissionDenied
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.status != Alert.Status.TRIGGERED:
        raise ValidationError({"status": f"This alert is already {alert.get_status_display().lower()}."})
    snapshot = alert.policy_snapshot or {}
    # A snapshot that says None (a rota gap: once per gap) never re-alerts after an acknowledgement.
    once = "realert_minutes" in snapshot and snapshot["realert_minutes"] is None
    minutes = snapshot.get("realert_minutes") or 240
    alert.status = Alert.Status.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = actor
    alert.next_step_at = None if once else now + timedelta(minutes=minutes)
    alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "next_step_at"])
    Notification.objects.filter(alert=alert, channel=Channel.IN_APP, read_at__isnull=True).update(read_at=now)
    # Personal rules' later steps ("SMS after 5 minutes unless acknowledged") no longer go out.
    Notification.objects.filter(alert=alert, unless_acknowledged=True, status=Notification.Status.PENDING).update(
        status=Notification.Status.CANCELLED, last_error="alert acknowledged before this step"
    )
    AlertEvent.objects.create(
        alert=alert,
        at=now,
        kind=AlertEvent.Kind.ACKNOWLEDGED,
        actor=actor,
        detail="Acknowledged: no more notifications for it"
        if once
        else "Repeats paused; re-alerts if still unresolved at",
        subject_at=alert.next_step_at,
    )
    return alert


@transaction.atomic
def resolve_alert(*, alert: Alert, actor, reason: str, now: datetime | None = None) -> Alert:
    """Close an alert by hand (a physician's review done, an alarm dealt with). A physician review
    (discrepancy, drift, refill after empty) is closed by a physician only; others acknowledge it."""
    now = now or timezone.now()
    if not actor.has_perm(alert.resolve_permission, alert):
        raise PermissionDenied("Only a physician resolves a physician review; you may acknowledge it.")
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say how it was resolved."})
    longest = Alert._meta.get_field("resolution").max_length
    if len(reason.strip()) > longest:
        # Refused, not cut short: the resolution is kept whole on the alert and its timeline.
        raise ValidationError({"reason": f"Say it in at most {longest} characters (it has {len(reason.strip())})."})
    if not alert.is_open:
        raise ValidationError({"status": "This alert is already resolved."})
    engine.resolve_alerts(Alert.objects.filter(pk=alert.pk), now, reason.strip(), actor)
    alert.refresh_from_db()
    return alert


def mark_read(*, user, alert: Alert, now: datetime | None = None) -> int:
    return Notification.objects.filter(
        alert=alert, recipient=user, channel=Channel.IN_APP, read_at__isnull=True
    ).update(read_at=now or timezone.now())


@transaction.atomic
def add_webhook(*, clinic, actor, url: str) -> Webhook:
    """Clinic admins only. The destination is checked now as it will be at every send."""
    from .channels import DeliveryError
    from .channels.webhook import check_destination

    if not actor.has_perm("clinics.manage_clinic", clinic):
        raise PermissionDenied
    try:
        check_destination(url)
    except DeliveryError as exc:
        raise ValidationError({"url": str(exc)}) from None
    hook = Webhook(clinic=clinic, url=url, secret=secrets.token_hex(32))
    hook._history_user = actor
    hook.full_clean()
    hook.save()
    return hook


@transaction.atomic
def save_escalation_policy(
    *, policy: EscalationPolicy, actor, repeat_count: int | None, realert_minutes: int, levels: list[dict]
) -> EscalationPolicy:
    """Replace a policy's settings and its ordered levels; each history row names ``actor``.

    ``levels`` are dicts of roles, on_call_rotations, assigned_nurse, users, channels, wait_minutes and
    optionally the ``id`` of an existing level to keep; existing levels not listed are removed.
    Alerts already raised keep the snapshot they were raised with: only alerts raised (or raised
    to a higher severity) from now on follow the edited policy.
    """
    if not actor.has_perm("clinics.manage_clinic", policy.clinic):
        raise PermissionDenied
    if not levels:
        raise ValidationError({"levels": "A policy needs at least one level."})
    named = {int(pk) for fields in levels for pk in fields.get("on_call_rotations", [])}
    if named - set(Rotation.objects.filter(clinic_id=policy.clinic_id, pk__in=named).values_list("pk", flat=True)):
        raise ValidationError({"on_call_rotations": "Only this clinic's rotas can be named."})
    policy = EscalationPolicy.objects.select_for_update().get(pk=policy.pk)  # one editor at a time
    policy.repeat_count = repeat_count
    policy.realert_minutes = realert_minutes
    policy._history_user = actor
    policy.save()
    existing = {level.pk: level for level in policy.levels.all()}
    kept = {fields["id"] for fields in levels if fields.get("id")}
    for pk, level in existing.items():
        if pk not in kept:
            level._history_user = actor
            level.delete()
    for position, fields in enumerate(levels):
        level = existing.get(fields.get("id")) or EscalationLevel(policy=policy)
        level.position = position
        for name in ("roles", "assigned_nurse", "channels", "wait_minutes"):
            setattr(level, name, fields[name])
        level.on_call_rotation_ids = sorted(int(pk) for pk in fields.get("on_call_rotations", []))
        level._history_user = actor
        level.full_clean(exclude=["policy", "users"])
        level.save()
        level.users.set(fields.get("users", []))
    return policy


@transaction.atomic
def conclude_review(
    *,
    alert: Alert,
    actor,
    outcome: str,
    action: str,
    note: str = "",
    follow_up_on: date | None = None,
    now: datetime | None = None,
) -> ReviewConclusion:
    """A physician ends a review: the outcome, the action taken, a note and, where needed, a
    follow-up date that books a device-check appointment (at the clinic's opening time). The
    conclusion goes on the alert's timeline and resolves the alert, in one transaction."""
    from patients import services as patient_services

    from .context import reviewed_refill

    now = now or timezone.now()
    if not actor.has_perm("patients.review_clinical", alert):
        raise PermissionDenied
    alert = Alert.objects.select_for_update(of=("self",)).select_related("pump__patient__clinic").get(pk=alert.pk)
    errors: dict[str, str] = {}
    if alert.kind not in PHYSICIAN_REVIEW_KINDS:
        errors["alert"] = "Only physician reviews are concluded."
    elif not alert.is_open:
        errors["alert"] = "This review is already resolved."
    if outcome not in ReviewConclusion.Outcome.values:
        errors["outcome"] = "Choose an outcome."
    if action not in ReviewConclusion.Action.values:
        errors["action"] = "Choose the action taken."
    note = (note or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        errors["note"] = f"At most {NOTE_MAX_CHARS} characters."
    if outcome == ReviewConclusion.Outcome.OTHER and not note:
        errors["note"] = "Say what it was."
    clinic = alert.clinic
    if follow_up_on is not None and follow_up_on <= now.astimezone(clinic.zone).date():
        errors["follow_up_on"] = "A follow-up date is after today."
    if errors:
        raise ValidationError(errors)
    pump = alert.pump
    appointment = None
    if follow_up_on is not None:
        try:
            appointment, _warnings = patient_services.schedule_appointment(
                pump=pump,
                actor=actor,
                kind=Appointment.Kind.DEVICE_CHECK,
                scheduled_for=datetime.combine(follow_up_on, clinic.opens_at, tzinfo=clinic.zone),
                notes=f"Follow-up of physician review {alert.reference}",
                now=now,
            )
        except ValidationError as exc:
            # The appointment's refusal (a closed day, an explanted pump) belongs to the date field.
            raise ValidationError({"follow_up_on": exc.messages}) from None
    event = AlertEvent.objects.create(alert=alert, at=now, kind=AlertEvent.Kind.CONCLUDED, actor=actor)
    conclusion = ReviewConclusion(
        alert=alert,
        event=event,
        pump=pump,
        refill=reviewed_refill(alert) if alert.kind != AlertKind.DELIVERY_DRIFT else None,
        outcome=outcome,
        action=action,
        note=note,
        follow_up_on=follow_up_on,
        follow_up_appointment=appointment,
        concluded_by=actor,
        concluded_at=now,
    )
    conclusion._history_user = actor
    # The pump page's history shows this line (history keeps 100 characters of a reason; the
    # note is on the alert's timeline and in the audit report).
    conclusion._change_reason = conclusion.summary()[:100]
    conclusion.save()
    engine.resolve_alerts(Alert.objects.filter(pk=alert.pk), now, conclusion.summary(), actor)
    return conclusion
