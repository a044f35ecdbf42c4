"""The "left care" notice: raised by the patients' signal, not by the scan, and closed by a person."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from clinics.models import Membership, Role
from patients.models import Pump

from ..models import Alert, AlertEvent, AlertKind, Channel, Notification, dedupe_key
from .common import KIND_SEVERITY


def tell_care_ended(pump_ids, reason: str, now: datetime, actor=None) -> int:
    """A patient left care: the pump's assigned nurse and the clinic's physicians are told in the
    app (a notice that stays open until a person closes it, so a wrong "deceased" never silently
    stops the alerting). Nobody to tell: the clinic's admins. Returns the notices raised."""
    pumps = list(Pump.objects.filter(pk__in=pump_ids).select_related("patient"))
    clinic_ids = {p.patient.clinic_id for p in pumps}
    members = defaultdict(list)
    for m in Membership.objects.active().filter(clinic_id__in=clinic_ids).select_related("user"):
        members[m.clinic_id].append(m)
    notices = 0
    for pump in pumps:
        clinic_members = members[pump.patient.clinic_id]
        told = [m for m in clinic_members if m.role == Role.PHYSICIAN or m.user_id == pump.assigned_nurse_id]
        nobody = not told
        if nobody:
            told = [m for m in clinic_members if m.role == Role.CLINIC_ADMIN]
        key = dedupe_key(AlertKind.CARE_ENDED, pump.pk)
        alert = Alert.objects.open().filter(dedupe_key=key).first()
        if alert is None:
            alert = Alert.objects.create(
                clinic_id=pump.patient.clinic_id,
                pump=pump,
                kind=AlertKind.CARE_ENDED,
                severity=KIND_SEVERITY[AlertKind.CARE_ENDED],
                dedupe_key=key,
                detail=reason[:255],
                raised_at=now,
                policy_snapshot={},
                next_step_at=None,
                nobody_to_notify=nobody,
            )
            notices += 1
        AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.RAISED, at=now, detail=reason[:255], actor=actor)
        step = f"care-ended:{now:%Y%m%dT%H%M%S}"
        Notification.objects.bulk_create(
            [
                Notification(
                    alert=alert,
                    step=step,
                    recipient=m.user,
                    channel=Channel.IN_APP,
                    address=f"user:{m.user_id}",
                    status=Notification.Status.SENT,
                    sent_at=now,
                    created_at=now,
                )
                for m in told
            ],
            ignore_conflicts=True,
        )
        names = ", ".join(sorted(m.user.get_username() for m in told)) or "nobody"
        AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.NOTIFIED, at=now, detail=f"In the app: {names}")
    return notices
