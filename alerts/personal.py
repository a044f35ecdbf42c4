"""Personal fan-out: each person an escalation level names is reached by their own rules.

The escalation engine decides *who* (roles, on-call, named people, the assigned nurse — whatever
list a level resolves to); this module decides *how* for each of them: the ordered steps of their
notification rule for the alert's severity ("email at once, push at once, SMS after 5 minutes
unless acknowledged"). Each step and method is one ``Notification`` row; a later step carries
``next_attempt_at`` (the delivery claim waits for it) and ``unless_acknowledged`` (acknowledging
cancels it, and delivery checks again).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import EMAIL_STEP, Channel, ContactMethod, Notification, NotificationRule, Severity

# Defaults (a member who has set no rule for a severity): reminders and reviews by email; urgent
# and above by email and the first verified phone method at once, a second method after 5 minutes.
SECOND_METHOD_AFTER_MINUTES = 5


@dataclass(frozen=True)
class Step:
    method: str | int  # EMAIL_STEP or a ContactMethod id
    after_minutes: int


def default_steps(severity: int, phone_method_ids: list[int]) -> list[Step]:
    steps = [Step(EMAIL_STEP, 0)]
    if severity >= Severity.URGENT:
        if phone_method_ids:
            steps.append(Step(phone_method_ids[0], 0))
        if len(phone_method_ids) > 1:
            steps.append(Step(phone_method_ids[1], SECOND_METHOD_AFTER_MINUTES))
    return steps


def effective_steps(severity: int, rule_steps: list[dict] | None, usable: dict[int, ContactMethod]) -> list[Step]:
    """The steps that will run: the member's rule (or the defaults), leaving out methods that are
    not usable now (unverified, suspended, removed). A rule left with nothing falls back to email,
    so a suspended phone never silences a person."""
    if rule_steps is None:
        return default_steps(severity, list(usable))
    steps = [
        Step(s["method"], int(s.get("after_minutes", 0)))
        for s in rule_steps
        if s.get("method") == EMAIL_STEP or s.get("method") in usable
    ]
    return sorted(steps, key=lambda s: s.after_minutes) or [Step(EMAIL_STEP, 0)]


class PersonalRules:
    """The rules and usable phone methods of a set of people, loaded in two queries."""

    def __init__(self, user_ids):
        user_ids = set(user_ids)
        self.rules: dict[tuple[int, int], list[dict]] = {}
        self.methods: dict[int, dict[int, ContactMethod]] = defaultdict(dict)
        if not user_ids:
            return
        for rule in NotificationRule.objects.filter(user_id__in=user_ids):
            self.rules[(rule.user_id, rule.severity)] = rule.steps
        usable = ContactMethod.objects.filter(
            user_id__in=user_ids, verified_at__isnull=False, suspended_at__isnull=True, removed_at__isnull=True
        ).order_by("created_at", "id")
        for method in usable:
            self.methods[method.user_id][method.pk] = method

    def steps_for(self, user_id: int, severity: int) -> list[Step]:
        return effective_steps(severity, self.rules.get((user_id, severity)), self.methods.get(user_id, {}))

    def notifications(self, *, alert, step: str, member, now: datetime) -> list[Notification]:
        """One row per rule step and method for ``member`` (a Membership: its email is per clinic)."""
        rows = []
        for position, rule_step in enumerate(self.steps_for(member.user_id, alert.severity)):
            later = rule_step.after_minutes > 0
            common = {
                "alert": alert,
                "step": f"{step}/{position}",
                "recipient": member.user,
                "created_at": now,
                "next_attempt_at": now + timedelta(minutes=rule_step.after_minutes) if later else None,
                "unless_acknowledged": later,
            }
            if rule_step.method == EMAIL_STEP:
                if member.email:
                    rows.append(Notification(channel=Channel.EMAIL, address=member.email, **common))
                continue
            method = self.methods[member.user_id][rule_step.method]
            rows.append(Notification(channel=Channel.PHONE, address=method.address, contact_method=method, **common))
        return rows


def without_phone(memberships) -> list:
    """The members among ``memberships`` with no usable phone method (one query)."""
    memberships = list(memberships)
    reachable = set(
        ContactMethod.objects.filter(
            user_id__in={m.user_id for m in memberships},
            verified_at__isnull=False,
            suspended_at__isnull=True,
            removed_at__isnull=True,
        ).values_list("user_id", flat=True)
    )
    return [m for m in memberships if m.user_id not in reachable]


def urgent_responders_without_phone(clinic, now: datetime | None = None) -> list:
    """Active members whom the clinic's urgent-and-above escalation levels name (by role, on a
    rota they name, by name, or as a pump's assigned nurse) and who have no usable phone method: at
    02:00 an email reaches nobody, so the clinic's admins see them. "On a rota" is everyone in the
    turn order of a rotation a level names, and whoever covers it now or later by an override (on
    call is computed at each step, so anyone who will take a turn counts). Each membership returned
    carries ``rota_names``: the named rotations it is on."""
    from django.utils import timezone

    from clinics.models import Membership, RotaOverride, Rotation
    from patients.models import Pump

    from .models import EscalationLevel
    from .oncall import named_rotations

    now = now or timezone.now()
    levels = EscalationLevel.objects.filter(policy__clinic=clinic, policy__severity__gte=Severity.URGENT)
    rotations = {r.pk: r for r in Rotation.objects.filter(clinic=clinic)}
    roles, rotation_ids, assigned, named = set(), set(), False, set()
    for level in levels.prefetch_related("users"):
        roles.update(level.roles)
        rotation_ids |= named_rotations({"on_call_rotation_ids": level.on_call_rotation_ids}, rotations) & set(
            rotations
        )
        assigned = assigned or level.assigned_nurse
        named.update(u.pk for u in level.users.all())
    rota_names: dict[int, list[str]] = defaultdict(list)  # membership id -> rotation names
    for pk in sorted(rotation_ids):
        for membership_id in rotations[pk].member_ids:
            rota_names[int(membership_id)].append(rotations[pk].name)
    if rotation_ids:
        covers = RotaOverride.objects.filter(rotation_id__in=rotation_ids, ends_at__gt=now).order_by("starts_at", "pk")
        for membership_id, rotation_id in covers.values_list("membership_id", "rotation_id"):
            if rotations[rotation_id].name not in rota_names[membership_id]:
                rota_names[membership_id].append(rotations[rotation_id].name)
    assigned_nurses = set()
    if assigned:
        assigned_nurses = set(
            Pump.objects.in_service()
            .filter(patient__clinic=clinic, assigned_nurse__isnull=False)
            .values_list("assigned_nurse_id", flat=True)
        )
    members = []
    for m in Membership.objects.active().filter(clinic=clinic).select_related("user"):
        m.rota_names = rota_names.get(m.pk, [])
        if m.role in roles or m.rota_names or m.user_id in named or m.user_id in assigned_nurses:
            members.append(m)
    return without_phone(members)
