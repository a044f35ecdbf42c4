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
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, Min, OuterRef, Q, Subquery
from django.utils import timezone

from clinics.models import Membership, Role
from patients import depletion
from patients.models import Appointment, Patient, Program, Pump
from patients.selectors import with_status
from patients.services import apply_due_status_changes

from . import delivery, enqueue, oncall, quiet_hours
from .models import (
    REFILL_FAMILY,
    Alert,
    AlertEvent,
    AlertKind,
    Channel,
    EscalationPolicy,
    Heartbeat,
    Notification,
    Severity,
    Webhook,
    dedupe_key,
    one_step_higher,
)
from .personal import PersonalRules

log = logging.getLogger(__name__)

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
# CLINICAL.md "Battery end of service": critical within this many days of the end of service.
END_OF_SERVICE_CRITICAL_DAYS = 30
# Kinds whose condition the scan evaluates (and so also resolves when it clears, or when the pump
# leaves the scan). Pump alarms, physician reviews and "left care" notices are raised by the
# recording services' signals and resolved by people (or by a refill).
SCANNED_KINDS = (
    *REFILL_FAMILY,
    AlertKind.APPOINTMENT_MISSED,
    AlertKind.DELIVERY_DRIFT,
    AlertKind.REPLACEMENT_DUE,
    AlertKind.ORDER_UNSIGNED,
)
FAMILY_RANK = {kind: rank for rank, kind in enumerate(REFILL_FAMILY)}


def _high_risk(prefix: str = "") -> Q:
    """The patient has a withdrawal-risk flag (Gablofen label), as a boolean SQL expression."""
    return (
        Q(**{f"{prefix}patient__sci_at_or_above_t6": True})
        | Q(**{f"{prefix}patient__communication_difficulty": True})
        | Q(**{f"{prefix}patient__prior_withdrawal": True})
    )


BATCH = 1000


def severity_for(kind: str, high_risk: bool) -> int:
    """The kind's severity; a withdrawal-risk flag moves it one step up."""
    base = KIND_SEVERITY[kind]
    return one_step_higher(base) if high_risk else base


@dataclass
class Wanted:
    pump_id: int
    clinic_id: int
    kind: str
    severity: int
    detail: str = ""
    refill_id: int | None = None
    program_id: int | None = None


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


# --- 1. conditions -------------------------------------------------------------------------


def _in_service(pump_ids):
    # No ORDER BY: the pump list's default order would join and sort patients for nothing.
    pumps = Pump.objects.in_service().order_by()
    return pumps if pump_ids is None else pumps.filter(pk__in=pump_ids)


def _in_service_q(prefix: str, pump_ids=None) -> Q:
    """In service as join conditions on ``prefix`` (not ``pump__in=<every pump in service>``)."""
    condition = Q(**{f"{prefix}status": Pump.Status.ACTIVE, f"{prefix}patient__status": Patient.Status.ACTIVE})
    return condition if pump_ids is None else condition & Q(**{f"{prefix}pk__in": pump_ids})


def wanted_alerts(now: datetime, pump_ids=None) -> dict[str, Wanted]:
    """Every scanned condition that holds now, keyed by dedupe key. A handful of queries."""
    wanted: dict[str, Wanted] = {}
    pumps = _in_service(pump_ids)

    def want(pump_id, clinic_id, kind, high_risk, detail=""):
        wanted[dedupe_key(kind, pump_id)] = Wanted(pump_id, clinic_id, kind, severity_for(kind, high_risk), detail)

    # Refill family: only pumps at least "due soon" (an indexed range on the stored instant).
    timely_appointment = Appointment.objects.filter(
        pump=OuterRef("pk"),
        kind=Appointment.Kind.REFILL,
        status=Appointment.Status.SCHEDULED,
        # "on or before the due date": before the start of the day after it, in the clinic's zone
        scheduled_for__lt=OuterRef("projection__overdue_from"),
    )
    rows = (
        with_status(pumps.filter(projection__due_soon_from__lte=now, projection__is_stopped=False), now)
        .annotate(has_timely_appointment=Exists(timely_appointment), high_risk=_high_risk())
        .values_list("pk", "patient__clinic_id", "refill_status", "has_timely_appointment", "high_risk")
    )
    for pump_id, clinic_id, status, has_appointment, high_risk in rows:
        if status == depletion.CRITICAL:
            want(pump_id, clinic_id, AlertKind.RESERVOIR_CRITICAL, high_risk, "Conservative alarm within hours")
        elif status == depletion.OVERDUE:
            want(pump_id, clinic_id, AlertKind.REFILL_OVERDUE, high_risk, "Past its refill due date")
        elif status == depletion.DUE_SOON and not has_appointment:
            want(pump_id, clinic_id, AlertKind.REFILL_DUE, high_risk, "Due soon, no refill booked on or before it")

    # Missed refill appointments: marked missed, or still open past the clinic's grace period,
    # with no refill since and no newer refill appointment booked.
    newer_booking = Appointment.objects.filter(
        pump=OuterRef("pump"),
        kind=Appointment.Kind.REFILL,
        status=Appointment.Status.SCHEDULED,
        scheduled_for__gt=OuterRef("scheduled_for"),
    )
    missed = (
        Appointment.objects.filter(
            _in_service_q("pump__", pump_ids), kind=Appointment.Kind.REFILL, scheduled_for__lte=now
        )
        .filter(Q(status=Appointment.Status.MISSED) | Q(status=Appointment.Status.SCHEDULED))
        .filter(Q(pump__projection__isnull=True) | Q(scheduled_for__gt=F("pump__projection__filled_at")))
        .exclude(Exists(newer_booking))
        .annotate(high_risk=_high_risk("pump__"))
        .values_list(
            "pump_id",
            "pump__patient__clinic_id",
            "status",
            "scheduled_for",
            "pump__patient__clinic__appointment_grace_hours",
            "high_risk",
        )
    )
    for pump_id, clinic_id, status, scheduled_for, grace_hours, high_risk in missed:
        if status == Appointment.Status.MISSED or scheduled_for + timedelta(hours=grace_hours) <= now:
            want(pump_id, clinic_id, AlertKind.APPOINTMENT_MISSED, high_risk, "Refill appointment missed")

    # Delivery drift: the measured ratio above the clinic's threshold (physician review). The lowest
    # threshold of all clinics, a constant, lets the range use the index on the ratio.
    lowest_drift_ratio, longest_warning_days = _clinic_bounds()
    drifting = (
        pumps.filter(projection__delivery_ratio__gt=lowest_drift_ratio)
        .filter(projection__delivery_ratio__gt=F("patient__clinic__drift_alert_ratio"))
        .values_list("pk", "patient__clinic_id", "projection__delivery_ratio")
    )
    for pump_id, clinic_id, ratio in drifting:
        want(pump_id, clinic_id, AlertKind.DELIVERY_DRIFT, False, f"Measured delivery ratio {ratio:.2f}")

    # Replacement (CLINICAL.md "Battery end of service"): a reminder within the clinic's warning
    # window before the ERI date, urgent once ERI is reached (reported), critical within 30 days of
    # the end of service (ERI + the model's days). A replacement booked before the end of service
    # quiets it, as a booked refill quiets a refill reminder.
    horizon = (now + timedelta(days=longest_warning_days)).date()
    first_booking = (
        Appointment.objects.filter(
            pump=OuterRef("pk"), kind=Appointment.Kind.REPLACEMENT, status=Appointment.Status.SCHEDULED
        )
        .order_by("scheduled_for")
        .values("scheduled_for")[:1]
    )
    approaching = (
        pumps.filter(eri_on__isnull=False, eri_on__lte=horizon)
        .annotate(high_risk=_high_risk(), booked_for=Subquery(first_booking))
        .values_list(
            "pk",
            "patient__clinic_id",
            "eri_on",
            "pump_model__days_eri_to_end_of_service",
            "patient__clinic__replacement_warning_days",
            "patient__clinic__timezone",
            "high_risk",
            "booked_for",
        )
    )
    for pump_id, clinic_id, eri_on, eos_days, days, zone_name, high_risk, booked_for in approaching:
        zone = _zone(zone_name)
        today = now.astimezone(zone).date()
        if eri_on > today + timedelta(days=days):
            continue
        end_of_service = eri_on + timedelta(days=eos_days) if eos_days is not None else None
        if booked_for is not None and (
            end_of_service is None or booked_for < depletion.start_of_day(end_of_service, zone)
        ):
            continue
        eos_text = f"; end of service {end_of_service:%Y-%m-%d}" if end_of_service else ""
        if end_of_service is not None and today >= end_of_service - timedelta(days=END_OF_SERVICE_CRITICAL_DAYS):
            severity, detail = Severity.CRITICAL, f"End of service {end_of_service:%Y-%m-%d}: replace now"
        elif eri_on <= today:
            severity, detail = Severity.URGENT, f"ERI reached {eri_on:%Y-%m-%d}{eos_text}"
        else:
            severity, detail = Severity.REMINDER, f"ERI date {eri_on:%Y-%m-%d}{eos_text}"
        if high_risk:
            severity = one_step_higher(severity)
        key = dedupe_key(AlertKind.REPLACEMENT_DUE, pump_id)
        wanted[key] = Wanted(pump_id, clinic_id, AlertKind.REPLACEMENT_DUE, severity, detail)

    # Nurse-entered dose orders no physician has countersigned within ORDER_COUNTERSIGN_HOURS
    # (a range on the partial index of orders waiting for a countersignature).
    unsigned = Program.objects.filter(
        _in_service_q("pump__", pump_ids),
        countersign_requested_at__isnull=False,
        countersign_requested_at__lte=now - timedelta(hours=settings.ORDER_COUNTERSIGN_HOURS),
        verified_at__isnull=True,
    ).values_list(
        "pk",
        "pump_id",
        "pump__patient__clinic_id",
        "daily_dose_mcg",
        "ordered_by__first_name",
        "ordered_by__last_name",
        "ordered_by__username",
    )
    for program_id, pump_id, clinic_id, dose, first_name, last_name, username in unsigned:
        name = f"{first_name} {last_name}".strip() or username or "a physician"
        detail = f"{dose.normalize():f} mcg/day ordered by {name}: countersign it"
        key = dedupe_key(AlertKind.ORDER_UNSIGNED, pump_id, program_id=program_id)
        wanted[key] = Wanted(
            pump_id,
            clinic_id,
            AlertKind.ORDER_UNSIGNED,
            KIND_SEVERITY[AlertKind.ORDER_UNSIGNED],
            detail,
            program_id=program_id,
        )
    return wanted


def _zone(name):
    return ZoneInfo(name)


def _clinic_bounds() -> tuple[Decimal, int]:
    """The lowest drift threshold and the longest replacement warning of all clinics, in one query."""
    from clinics.models import Clinic

    bounds = Clinic.objects.aggregate(drift=Min("drift_alert_ratio"), warning=Max("replacement_warning_days"))
    return bounds["drift"] or Decimal(1), bounds["warning"] or 180


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


# --- 2. escalation ------------------------------------------------------------------------------


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


# --- 3 and 4. delivery hand-off -----------------------------------------------------------------


def release_expired_leases(now: datetime) -> int:
    """Notifications whose sender died mid-delivery (lease expired, not sent) become pending again;
    one that has killed its sender ``NOTIFICATION_MAX_ATTEMPTS`` times fails instead of looping."""
    expired = Notification.objects.filter(status=Notification.Status.SENDING, lease_until__lt=now)
    exhausted = list(
        expired.filter(attempts__gte=settings.NOTIFICATION_MAX_ATTEMPTS).values_list("pk", "alert_id", "channel")
    )
    if exhausted:
        error = "the sender stopped mid-delivery on every attempt"
        Notification.objects.filter(pk__in=[pk for pk, _, _ in exhausted], status=Notification.Status.SENDING).update(
            status=Notification.Status.FAILED, lease_until=None, last_error=error
        )
        AlertEvent.objects.bulk_create(
            [
                _timeline(alert_id, AlertEvent.Kind.FAILED, now, f"{channel}: {error}")
                for _, alert_id, channel in exhausted
            ]
        )
    return expired.update(status=Notification.Status.PENDING, enqueued_at=None, next_attempt_at=None) + len(exhausted)


def enqueue_pending(now: datetime, limit: int = BATCH) -> int:
    """Hand pending notifications to the broker after commit: new ones, and ones whose enqueue was
    lost (a broker outage) or never consumed within ``NOTIFICATION_REQUEUE_SECONDS``."""
    # A later step of a personal rule ("SMS after 5 minutes") due before the next scan is handed
    # over now with a countdown, so it leaves on its minute rather than at the following scan.
    soon = now + timedelta(seconds=min(settings.ALERT_SCAN_SECONDS, settings.CELERY_MAX_COUNTDOWN_SECONDS))
    # Most urgent first: after a burst of alerts, emergencies leave before reminders.
    mine, countdowns = delivery.take_for_broker(
        Notification.objects.all(), now, soon, order_by=("-alert__severity", "created_at"), limit=limit
    )
    if mine:
        transaction.on_commit(lambda: publish_deliveries(mine, countdowns))
    return len(mine)


def publish_deliveries(ids: list[int], countdowns: dict[int, int] | None = None) -> int:
    """Enqueue delivery tasks; on a broker failure the rest go back to the outbox for the next scan."""
    return delivery.publish_rows(Notification.objects.all(), ids, countdowns, enqueue.delivery, what="deliveries")


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


__all__ = ["run_scan", "evaluate_conditions", "advance_escalations", "release_expired_leases", "enqueue_pending"]
