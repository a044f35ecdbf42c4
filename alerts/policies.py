"""Default escalation policies, seeded for every clinic (clinic admins edit them in-app)."""

from django.db import transaction

from clinics.models import Role
from clinics.services import ensure_default_rotations

from .models import Channel, EscalationLevel, EscalationPolicy, Severity

EMAIL_AND_INBOX = [Channel.IN_APP, Channel.EMAIL]
ALL_CHANNELS = [Channel.IN_APP, Channel.EMAIL, Channel.WEBHOOK]

# severity: (repeat_count, realert_minutes, [level fields, …]); repeat_count None = until acknowledged.
# "on_call": the roles whose rota's on-call member the level notifies (the clinic's default rotas).
DEFAULT_POLICIES = {
    # Reminders go to the pump's nurse, once; re-notify daily while unresolved after an acknowledgement.
    Severity.REMINDER: (0, 24 * 60, [{"assigned_nurse": True, "channels": EMAIL_AND_INBOX, "wait_minutes": 24 * 60}]),
    # Physician reviews (residual discrepancy, delivery drift).
    Severity.REVIEW: (0, 24 * 60, [{"roles": [Role.PHYSICIAN], "channels": EMAIL_AND_INBOX, "wait_minutes": 24 * 60}]),
    # Overdue: the nurses and the on-call nurse, then the physician after 4 hours.
    Severity.URGENT: (
        1,
        4 * 60,
        [
            {"roles": [Role.NURSE], "on_call": [Role.NURSE], "channels": EMAIL_AND_INBOX, "wait_minutes": 4 * 60},
            {"roles": [Role.PHYSICIAN], "channels": EMAIL_AND_INBOX, "wait_minutes": 4 * 60},
        ],
    ),
    # Critical and pump alarms: the on-call nurse and physician and the physicians at once, every
    # 30 minutes until acknowledged.
    Severity.CRITICAL: (
        None,
        60,
        [
            {
                "roles": [Role.PHYSICIAN],
                "on_call": [Role.NURSE, Role.PHYSICIAN],
                "channels": ALL_CHANNELS,
                "wait_minutes": 30,
            }
        ],
    ),
    Severity.EMERGENCY: (
        None,
        30,
        [
            {
                "roles": [Role.PHYSICIAN],
                "on_call": [Role.NURSE, Role.PHYSICIAN],
                "channels": ALL_CHANNELS,
                "wait_minutes": 30,
            }
        ],
    ),
}


@transaction.atomic
def ensure_default_policies(clinic) -> int:
    """Create any missing default policy for ``clinic``; existing ones are left as edited."""
    created = 0
    rotation_of_role = {rotation.role: rotation.pk for rotation in ensure_default_rotations(clinic)}
    existing = set(EscalationPolicy.objects.filter(clinic=clinic).values_list("severity", flat=True))
    for severity, (repeat_count, realert_minutes, levels) in DEFAULT_POLICIES.items():
        if severity in existing:
            continue
        policy = EscalationPolicy.objects.create(
            clinic=clinic, severity=severity, repeat_count=repeat_count, realert_minutes=realert_minutes
        )
        for position, fields in enumerate(levels):
            EscalationLevel.objects.create(
                policy=policy,
                position=position,
                roles=[str(r) for r in fields.get("roles", [])],
                on_call_rotation_ids=sorted(rotation_of_role[role] for role in fields.get("on_call", [])),
                assigned_nurse=fields.get("assigned_nurse", False),
                channels=[str(c) for c in fields["channels"]],
                wait_minutes=fields["wait_minutes"],
            )
        created += 1
    return created
