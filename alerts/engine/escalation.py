"""Step 2: notify the next level of every alert whose step is due (compare-and-set claims)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings

from clinics.models import Membership, Role

from .. import oncall, quiet_hours
from ..models import Alert, AlertEvent, Channel, Notification, Webhook
from ..personal import PersonalRules
from .common import BATCH, _timeline


def _current_level(alert: Alert) -> dict:
    """The level this step will notify (a re-alert starts the chain again)."""
    levels = (alert.policy_snapshot or {}).get("levels") or [{}]
    index = 0 if alert.status == Alert.Status.ACKNOWLEDGED else alert.escalation_level
    return levels[min(index, len(levels) - 1)]


def advance_escalations(now: datetime, limit: int = BATCH) -> int:
    """Notify the next level of every alert whose step is due. Returns the number of steps taken."""
    token = uuid.uuid4().hex
    due = list(
        Alert.objects.filter(next_step_at__lte=now, status__in=Alert.OPEN_STATUSES)
        .order_by("next_step_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not due:
        return 0
    # Compare-and-set claim: the UPDATE takes only rows still due, and pushes their step a lease
    # ahead. A concurrent scanner's UPDATE finds them no longer due and takes none of them.
    Alert.objects.filter(pk__in=due, next_step_at__lte=now, status__in=Alert.OPEN_STATUSES).update(
        claim=token, next_step_at=now + timedelta(seconds=settings.ALERT_STEP_LEASE_SECONDS)
    )
    claimed = list(Alert.objects.filter(claim=token).select_related("pump", "clinic"))
    if not claimed:
        return 0
    clinic_ids = {a.clinic_id for a in claimed}
    members_by_clinic = defaultdict(list)
    for m in Membership.objects.active().filter(clinic_id__in=clinic_ids).select_related("user"):
        members_by_clinic[m.clinic_id].append(m)
    personal_rules = PersonalRules(m.user_id for members in members_by_clinic.values() for m in members)
    webhooks_by_clinic = defaultdict(list)
    for hook in Webhook.objects.filter(clinic_id__in=clinic_ids, is_active=True):
        webhooks_by_clinic[hook.clinic_id].append(hook)
    # Who is on call on each rota at this step's time: one query, only when a level names a rota.
    rota_clinics = {a.clinic_id for a in claimed if oncall.needs_rota(_current_level(a))}
    on_call = oncall.on_call_by_rotation(rota_clinics, now) if rota_clinics else {}

    notifications, events = [], []
    for alert in claimed:
        snapshot = alert.policy_snapshot or {}
        levels = snapshot.get("levels") or [
            {"roles": [], "channels": [Channel.IN_APP, Channel.EMAIL], "wait_minutes": 30}
        ]
        realert = alert.status == Alert.Status.ACKNOWLEDGED
        if realert:
            # The re-alert interval after an acknowledgement has passed and the alert is unresolved.
            alert.status = Alert.Status.TRIGGERED
            alert.escalation_level = 0
            alert.repeat_round = 0
            events.append(_timeline(alert.pk, AlertEvent.Kind.REALERTED, now, "Still unresolved after acknowledgement"))
        index = min(alert.escalation_level, len(levels) - 1)
        level = levels[index]
        step = f"{now:%Y%m%dT%H%M%S}:{alert.repeat_round}:{index}"
        recipients = oncall.level_recipients(
            level, alert, members_by_clinic.get(alert.clinic_id, []), on_call.get(alert.clinic_id, {})
        )
        channels = level.get("channels", [])
        if not recipients:
            # Nobody at this level: the clinic's admins are told instead, and the banner shows it.
            recipients = [m for m in members_by_clinic.get(alert.clinic_id, []) if m.role == Role.CLINIC_ADMIN]
            alert.nobody_to_notify = True
            events.append(
                _timeline(
                    alert.pk,
                    AlertEvent.Kind.NOBODY,
                    now,
                    f"Level {index + 1} had nobody to notify; "
                    + ("told the clinic's admins" if recipients else "the clinic has no admin either"),
                )
            )
            channels = sorted(set(channels) | {Channel.IN_APP, Channel.EMAIL})
        for member in recipients:
            if Channel.IN_APP in channels:
                notifications.append(
                    Notification(
                        alert=alert,
                        step=step,
                        recipient=member.user,
                        channel=Channel.IN_APP,
                        address=f"user:{member.user_id}",
                        status=Notification.Status.SENT,
                        sent_at=now,
                        created_at=now,
                    )
                )
            if Channel.EMAIL in channels:
                # Each person is reached by their own rules: email, phone methods, later steps.
                notifications.extend(personal_rules.notifications(alert=alert, step=step, member=member, now=now))
        if Channel.WEBHOOK in channels:
            for hook in webhooks_by_clinic.get(alert.clinic_id, []):
                notifications.append(
                    Notification(alert=alert, step=step, channel=Channel.WEBHOOK, address=hook.url, created_at=now)
                )
        if not realert:
            kind = AlertEvent.Kind.NOTIFIED
            if index > 0:
                kind = AlertEvent.Kind.ESCALATED
            elif alert.repeat_round > 0:
                kind = AlertEvent.Kind.REPEATED
            names = ", ".join(sorted(m.user.get_full_name() or m.user.get_username() for m in recipients)) or "nobody"
            events.append(_timeline(alert.pk, kind, now, f"Level {index + 1}: {names} ({', '.join(channels)})"))

        # The next step: the next level after this one's wait, or the chain again, or nothing.
        wait = timedelta(minutes=level.get("wait_minutes", 30))
        repeat_count = snapshot.get("repeat_count", 0)
        if index + 1 < len(levels):
            alert.escalation_level = index + 1
            alert.next_step_at = now + wait
        elif repeat_count is None or alert.repeat_round < repeat_count:
            alert.escalation_level = 0
            alert.repeat_round += 1
            alert.next_step_at = now + wait
        else:
            alert.next_step_at = None
        alert.claim = ""

    # Reminder emails and webhooks raised while the clinic is closed wait for it to open.
    quiet_hours.hold_reminders(notifications, now)
    Notification.objects.bulk_create(notifications, batch_size=BATCH, ignore_conflicts=True)
    AlertEvent.objects.bulk_create(events, batch_size=BATCH)
    # One UPDATE per distinct outcome (a handful: they follow the policies' shapes), not bulk_update's
    # CASE WHEN per row and field, which Django builds and the database evaluates in O(rows × fields).
    outcomes = defaultdict(list)
    for alert in claimed:
        key = (alert.status, alert.escalation_level, alert.repeat_round, alert.next_step_at, alert.nobody_to_notify)
        outcomes[key].append(alert.pk)
    for (status, level, repeat_round, next_step_at, nobody), ids in outcomes.items():
        Alert.objects.filter(pk__in=ids).update(
            status=status,
            escalation_level=level,
            repeat_round=repeat_round,
            next_step_at=next_step_at,
            nobody_to_notify=nobody,
            claim="",
        )
    return len(claimed)
