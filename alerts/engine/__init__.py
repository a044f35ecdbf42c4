"""The escalation engine: the scan's steps, each a small function that reports the work it found.

Flow (DESIGN.md "Flows" 2 and 3), after healthchecks' ``sendalerts`` and Grafana OnCall:

1. ``evaluate_conditions`` raises, upgrades and resolves alerts from the stored projections with
   set-based, indexed queries (never a Python loop over every pump).
2. ``advance_escalations`` takes the alerts whose next step is due — claimed with one
   compare-and-set UPDATE, so two scanners never take the same step — and creates one
   notification row per recipient and channel.
3. ``release_expired_leases`` puts back notifications whose delivery lease ran out unsent (a
   killed worker): they are pending again.
4. ``enqueue_pending`` claims pending notifications not yet (or long ago) handed to the broker and
   enqueues their delivery after commit; a broker outage leaves them pending for the next scan.
5. ``record_heartbeat``: the banner reads it.

Each step runs in its own transaction: a broker outage in step 4 never loses step 1's alerts.
The query count of a scan depends on neither the number of pumps nor the number of new alerts.

This package is the entry point: every name callers use is importable from ``alerts.engine``.
Here: the pass (``run_scan``), the heartbeat, and the reconciling of wanted alerts with open ones
(``raise_alert``, ``evaluate_conditions``, ``resolve_alerts``). Beside it: ``conditions.py``
(step 1's queries), ``escalation.py`` (step 2), ``outbox.py`` (steps 3 and 4), ``care_ended.py``
(the "left care" notice) and ``common.py`` (what they share). Tests replace ``_policies_for`` and
``advance_escalations`` on this module, so the code that calls them lives here.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from patients.services import apply_due_status_changes

from .. import (
    oncall,  # noqa: F401 - reached as ``engine.oncall`` (tests/test_rota_migration.py)
    quiet_hours,
)
from ..models import REFILL_FAMILY, Alert, AlertEvent, EscalationPolicy, Heartbeat, Notification, dedupe_key
from .care_ended import tell_care_ended
from .common import BATCH, KIND_SEVERITY, StepReport, _timeline, severity_for
from .conditions import END_OF_SERVICE_CRITICAL_DAYS, SCANNED_KINDS, Wanted, _in_service_q, wanted_alerts
from .escalation import advance_escalations
from .outbox import enqueue_pending, publish_deliveries, release_expired_leases

FAMILY_RANK = {kind: rank for rank, kind in enumerate(REFILL_FAMILY)}


def _policies_for(clinic_ids) -> dict[tuple[int, int], dict]:
    policies = EscalationPolicy.objects.filter(clinic_id__in=set(clinic_ids)).prefetch_related("levels__users")
    return {(p.clinic_id, p.severity): p.snapshot() for p in policies}


def _snapshot(policies, clinic_id, severity) -> dict:
    # A clinic without a policy for this severity still gets its admins told (fallback in step 2).
    return policies.get((clinic_id, severity)) or {"severity": severity, "repeat_count": 0, "levels": []}


def raise_alert(
    *,
    pump_id: int,
    clinic_id: int,
    kind: str,
    severity: int,
    now: datetime,
    detail: str = "",
    refill_id: int | None = None,
):
    """Raise (or upgrade) one alert at once: the path for reported alarms and discrepancies.
    ``refill_id``: the refill a review is about (one review per refill, REFILL_REVIEW_KINDS)."""
    key = dedupe_key(kind, pump_id, refill_id)
    report = _reconcile(now, {key: Wanted(pump_id, clinic_id, kind, severity, detail, refill_id)}, ())
    return Alert.objects.open().filter(dedupe_key=key).first(), report


def evaluate_conditions(now: datetime, pump_ids=None) -> StepReport:
    """Raise, upgrade and resolve the scanned kinds; resolve every alert of pumps out of service."""
    report = _reconcile(now, wanted_alerts(now, pump_ids), SCANNED_KINDS, pump_ids)
    # Explanted pumps and transferred or deceased patients raise nothing, and keep no scanned
    # alert open; pump alarms and physician reviews stay open for a person to close.
    gone = Alert.objects.open().filter(pump__isnull=False, kind__in=SCANNED_KINDS).exclude(_in_service_q("pump__"))
    if pump_ids is not None:
        gone = gone.filter(pump_id__in=pump_ids)
    report.resolved += resolve_alerts(gone, now, "Pump explanted or patient no longer under the clinic's care")
    return report


def _reconcile(now, wanted: dict[str, Wanted], resolvable_kinds, pump_ids=None) -> StepReport:
    report = StepReport()
    # Locked until this step commits: a concurrent scanner waits here, then reads the alerts as this
    # one left them (already upgraded) instead of upgrading them again from a stale copy.
    open_alerts = Alert.objects.open().filter(dedupe_key__in=list(wanted)).order_by("pk").select_for_update()
    existing = {a.dedupe_key: a for a in open_alerts}
    policies = _policies_for(w.clinic_id for w in wanted.values())
    token = uuid.uuid4().hex

    new = [
        Alert(
            clinic_id=w.clinic_id,
            pump_id=w.pump_id,
            refill_id=w.refill_id,
            program_id=w.program_id,
            kind=w.kind,
            severity=w.severity,
            dedupe_key=key,
            detail=w.detail,
            raised_at=now,
            policy_snapshot=_snapshot(policies, w.clinic_id, w.severity),
            next_step_at=now,
            claim=token,
        )
        for key, w in wanted.items()
        if key not in existing
    ]
    if new:
        # A concurrent scanner may have raised the same alert: the partial unique index refuses the
        # second row, and only rows carrying this scan's token are ours to record.
        Alert.objects.bulk_create(new, batch_size=BATCH, ignore_conflicts=True)
        ours = list(Alert.objects.filter(claim=token).values_list("pk", "detail"))
        AlertEvent.objects.bulk_create(
            [_timeline(pk, AlertEvent.Kind.RAISED, now, detail) for pk, detail in ours], batch_size=BATCH
        )
        Alert.objects.filter(claim=token).update(claim="")
        report.raised = len(ours)

    upgrades = []
    for key, alert in existing.items():
        w = wanted[key]
        worse_kind = FAMILY_RANK.get(w.kind, -1) > FAMILY_RANK.get(alert.kind, -1)
        if w.severity > alert.severity or worse_kind:
            before = alert.get_severity_display()
            alert.kind = w.kind
            alert.detail = w.detail or alert.detail
            if w.severity > alert.severity:
                alert.severity = w.severity
            # A worsening condition escalates again from the first level, acknowledged or not.
            alert.status = Alert.Status.TRIGGERED
            alert.policy_snapshot = _snapshot(policies, alert.clinic_id, alert.severity)
            alert.escalation_level = 0
            alert.repeat_round = 0
            alert.next_step_at = now
            upgrades.append(alert)
            report.details.append(f"{alert.reference}: {before} → {alert.get_severity_display()}")
    if upgrades:
        Alert.objects.bulk_update(
            upgrades,
            [
                "kind",
                "detail",
                "severity",
                "status",
                "policy_snapshot",
                "escalation_level",
                "repeat_round",
                "next_step_at",
            ],
            batch_size=BATCH,
        )
        AlertEvent.objects.bulk_create(
            [
                _timeline(
                    a.pk, AlertEvent.Kind.UPGRADED, now, f"Now {a.get_kind_display()}, {a.get_severity_display()}"
                )
                for a in upgrades
            ]
        )
        report.upgraded = len(upgrades)
        quiet_hours.release_waiting((a.pk for a in upgrades), now)

    if resolvable_kinds:
        cleared = Alert.objects.open().filter(kind__in=resolvable_kinds).exclude(dedupe_key__in=list(wanted))
        if pump_ids is not None:
            cleared = cleared.filter(pump_id__in=pump_ids)
        report.resolved = resolve_alerts(cleared, now, "Condition cleared")
    return report


def resolve_alerts(queryset, now: datetime, reason: str, actor=None, subject_at: datetime | None = None) -> int:
    """Resolve open alerts with a reason; their undelivered notifications are cancelled.
    ``subject_at``: the moment the reason speaks of (a refill's time), shown in the clinic's zone."""
    # Locked, so that two resolvers (a scan and a refill, two scans) record one resolution.
    ids = list(
        queryset.filter(status__in=Alert.OPEN_STATUSES)
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    Alert.objects.filter(pk__in=ids, status__in=Alert.OPEN_STATUSES).update(
        status=Alert.Status.RESOLVED, resolved_at=now, resolved_by=actor, resolution=reason[:255], next_step_at=None
    )
    Notification.objects.filter(alert_id__in=ids, status=Notification.Status.PENDING).update(
        status=Notification.Status.CANCELLED
    )
    AlertEvent.objects.bulk_create(
        [_timeline(pk, AlertEvent.Kind.RESOLVED, now, reason, actor, subject_at) for pk in ids], batch_size=BATCH
    )
    return len(ids)


# --- 5. heartbeat and the whole pass ------------------------------------------------------------------

SCAN = "scan"


def record_heartbeat(now: datetime, summary: dict) -> None:
    Heartbeat.objects.update_or_create(
        name=SCAN, defaults={"last_success_at": now, "last_started_at": now, "last_summary": summary}
    )


def run_scan(now: datetime | None = None) -> dict:
    """One pass of every step, each in its own transaction. Returns what each step found."""
    now = now or timezone.now()
    started = time.monotonic()
    summary = {}
    # Status changes dated ahead (a transfer) whose day has come: each commits on its own.
    summary["status_changes"] = apply_due_status_changes(now)
    with transaction.atomic():
        report = evaluate_conditions(now)
        summary.update(raised=report.raised, upgraded=report.upgraded, resolved=report.resolved)
    with transaction.atomic():
        summary["escalated"] = advance_escalations(now)
    with transaction.atomic():
        summary["released"] = release_expired_leases(now)
    with transaction.atomic():
        summary["enqueued"] = enqueue_pending(now)
    # The heartbeat also keeps how long the pass took (exported by /metrics).
    record_heartbeat(now, {**summary, "duration_seconds": round(time.monotonic() - started, 3)})
    return summary


def alerting_is_stale(now: datetime | None = None) -> bool:
    """True when the last successful scan is older than three scan periods."""
    now = now or timezone.now()
    last = Heartbeat.objects.filter(name=SCAN).values_list("last_success_at", flat=True).first()
    return last is None or now - last > timedelta(seconds=3 * settings.ALERT_SCAN_SECONDS)


__all__ = [
    "BATCH",
    "END_OF_SERVICE_CRITICAL_DAYS",
    "FAMILY_RANK",
    "KIND_SEVERITY",
    "SCAN",
    "SCANNED_KINDS",
    "StepReport",
    "Wanted",
    "advance_escalations",
    "alerting_is_stale",
    "enqueue_pending",
    "evaluate_conditions",
    "publish_deliveries",
    "raise_alert",
    "record_heartbeat",
    "release_expired_leases",
    "resolve_alerts",
    "run_scan",
    "severity_for",
    "tell_care_ended",
    "wanted_alerts",
]
