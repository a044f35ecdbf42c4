"""Rota gaps as clinic-level alerts: hours in the next 14 days with nobody on call on a rota in use.

Each gap is one ``rota_gap`` alert (no pump) that follows a fixed one-level chain to the clinic's
admins (in-app and email), through the same scan, notifications and delivery as every alert:
at least once, and once per gap (no repeats, no re-alert after an acknowledgement). A gap that
moves or grows keeps its alert (matched by overlap on the same rotation); when it is covered, or
its hours pass, the alert resolves. An escalation that reaches an empty rota anyway still falls
back to the admins (engine.advance_escalations).

Run by the ``alerts.rota_gaps`` beat task (hourly: the window moves an hour at a time), by
``manage.py escalate``, and at once after every rota change (``clinics.signals.rota_changed``),
so covering a gap clears its banner immediately. Kept out of ``run_scan``: the scan's work and
query count stay what they were.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from clinics.selectors import rota_gaps

from .engine import StepReport, _timeline, resolve_alerts
from .models import Alert, AlertEvent, AlertKind, Channel, Severity

GAP_SEVERITY = Severity.URGENT
GAP_SNAPSHOT = {
    "severity": int(GAP_SEVERITY),
    "repeat_count": 0,
    "realert_minutes": None,  # once per gap: an acknowledgement ends it until the gap is covered
    "levels": [{"roles": ["clinic_admin"], "channels": [Channel.IN_APP, Channel.EMAIL], "wait_minutes": 60}],
}


def describe(rotation, starts_at: datetime, ends_at: datetime) -> str:
    zone = rotation.clinic.zone
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    hours = (ends_at - starts_at).total_seconds() / 3600
    return (
        f"{rotation.name}: nobody on call {start:%a %d %b %H:%M} – {end:%a %d %b %H:%M} "
        f"({hours:.0f} h, {rotation.clinic.timezone})"
    )[:255]


@transaction.atomic
def sync_rota_gaps(now: datetime | None = None, clinic_ids=None) -> StepReport:
    """Raise an alert for each new gap, keep the open ones in step with their gap, resolve the
    ones covered or past. Returns what it did."""
    now = now or timezone.now()
    report = StepReport()
    gaps = rota_gaps(now, clinic_ids=clinic_ids)
    open_alerts = Alert.objects.open().filter(kind=AlertKind.ROTA_GAP)
    if clinic_ids is not None:
        open_alerts = open_alerts.filter(clinic_id__in=set(clinic_ids))
    # Locked: a scheduled check and a rota edit's check take their turns on the same alerts.
    by_rotation = defaultdict(list)
    for alert in open_alerts.order_by("period_starts_at", "pk").select_for_update():
        by_rotation[alert.rotation_id].append(alert)

    kept: dict[int, list[tuple]] = defaultdict(list)  # alert pk → the gaps it now stands for
    merged: dict[int, int] = {}
    new = []
    for rotation, starts_at, ends_at in gaps:
        overlapping = [
            a for a in by_rotation[rotation.pk] if a.period_starts_at < ends_at and starts_at < a.period_ends_at
        ]
        if not overlapping:
            new.append((rotation, starts_at, ends_at))
            continue
        keeper = overlapping[0]
        kept[keeper.pk].append((rotation, starts_at, ends_at))
        for other in overlapping[1:]:  # a gap that grew into the next one: one gap now
            merged.setdefault(other.pk, keeper.pk)

    changed = []
    for alerts in by_rotation.values():
        for alert in alerts:
            if alert.pk not in kept or alert.pk in merged:
                continue
            rotation, first_start, _ = kept[alert.pk][0]
            last_end = kept[alert.pk][-1][2]
            # A gap under way is clipped to ``now`` by the window: it still began when it began.
            start = min(alert.period_starts_at, first_start) if first_start <= now else first_start
            detail = describe(rotation, start, last_end)
            if (alert.period_starts_at, alert.period_ends_at, alert.detail) != (start, last_end, detail):
                alert.period_starts_at, alert.period_ends_at, alert.detail = start, last_end, detail
                changed.append(alert)
    if changed:
        Alert.objects.bulk_update(changed, ["period_starts_at", "period_ends_at", "detail"])
        report.upgraded = len(changed)

    if new:
        token = uuid.uuid4().hex
        Alert.objects.bulk_create(
            [
                Alert(
                    clinic_id=rotation.clinic_id,
                    pump=None,
                    kind=AlertKind.ROTA_GAP,
                    severity=GAP_SEVERITY,
                    dedupe_key=f"rota_gap:rotation:{rotation.pk}:{starts_at.timestamp():.0f}",
                    detail=describe(rotation, starts_at, ends_at),
                    raised_at=now,
                    policy_snapshot=GAP_SNAPSHOT,
                    next_step_at=now,
                    claim=token,
                    rotation=rotation,
                    period_starts_at=starts_at,
                    period_ends_at=ends_at,
                )
                for rotation, starts_at, ends_at in new
            ],
            ignore_conflicts=True,
        )
        ours = list(Alert.objects.filter(claim=token).values_list("pk", "detail"))
        AlertEvent.objects.bulk_create([_timeline(pk, AlertEvent.Kind.RAISED, now, detail) for pk, detail in ours])
        Alert.objects.filter(claim=token).update(claim="")
        report.raised = len(ours)

    gone = [a for alerts in by_rotation.values() for a in alerts if a.pk not in kept or a.pk in merged]
    for alert in gone:
        if alert.pk in merged:
            reason = f"Joined the gap of ALR-{merged[alert.pk]:06d}"
        elif alert.period_ends_at <= now:
            reason = "The gap's hours have passed"
        else:
            reason = "Covered: someone is on call for these hours now"
        report.resolved += resolve_alerts(Alert.objects.filter(pk=alert.pk), now, reason)
    return report
