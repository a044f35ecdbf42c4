"""Escalation policies change through one service: admins only, levels in order, history kept."""

import pytest
from django.core.exceptions import PermissionDenied

from alerts.models import EscalationPolicy, Severity
from alerts.services import save_escalation_policy
from clinics.models import Rotation


def level(**fields):
    return {
        "roles": [],
        "on_call_rotations": [],
        "assigned_nurse": False,
        "channels": ["in_app"],
        "wait_minutes": 30,
        **fields,
    }


@pytest.mark.django_db
def test_clinic_admin_replaces_the_urgent_chain_and_history_names_them(clinic, clinic_admin, physician):
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.URGENT)
    first = policy.levels.order_by("position").first()
    nurse_rota = Rotation.objects.get(clinic=clinic, role="nurse")
    save_escalation_policy(
        policy=policy,
        actor=clinic_admin,
        repeat_count=None,
        realert_minutes=60,
        levels=[
            level(id=first.pk, roles=["nurse"], on_call_rotations=[nurse_rota.pk], wait_minutes=120),
            level(users=[physician], channels=["email", "in_app"]),
        ],
    )
    policy.refresh_from_db()
    levels = list(policy.levels.order_by("position"))
    assert (policy.repeat_count, policy.realert_minutes) == (None, 60)
    assert [lv.wait_minutes for lv in levels] == [120, 30]
    assert levels[0].pk == first.pk and list(levels[1].users.all()) == [physician]
    assert levels[0].on_call_rotation_ids == [nurse_rota.pk]
    assert policy.history.order_by("-history_id").first().history_user == clinic_admin


@pytest.mark.django_db
def test_a_nurse_cannot_change_escalation_policies(clinic, nurse):
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.CRITICAL)
    with pytest.raises(PermissionDenied):
        save_escalation_policy(policy=policy, actor=nurse, repeat_count=0, realert_minutes=30, levels=[level()])
