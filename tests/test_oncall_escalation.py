"""Escalation levels that name an on-call rota resolve it at each step, at the time of the step."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from alerts import engine, oncall
from alerts.models import Alert, AlertKind, EscalationPolicy, Severity
from clinics import services as clinic_services
from clinics.models import Membership, Role, Rotation
from patients import services
from patients.models import PumpEvent

from .factories import ClinicFactory, PatientFactory, PumpFactory, member

NY = ZoneInfo("America/New_York")
# Monday 9 March 2026, the day after the clocks went forward: the nurses hand over at 08:00 EDT.
MONDAY_0740 = datetime(2026, 3, 9, 7, 40, tzinfo=NY)


@pytest.fixture
def ny_clinic(db):
    return ClinicFactory(name="Hudson Pump Clinic", timezone="America/New_York")


@pytest.fixture
def team(ny_clinic):
    people = {
        "nora": member(ny_clinic, Role.NURSE, username="nora"),
        "olive": member(ny_clinic, Role.NURSE, username="olive"),
        "pia": member(ny_clinic, Role.NURSE, username="pia"),
        "dr": member(ny_clinic, Role.PHYSICIAN, username="dr-quinn"),
        "admin": member(ny_clinic, Role.CLINIC_ADMIN, username="ada"),
    }
    memberships = {m.user.username: m for m in Membership.objects.filter(clinic=ny_clinic).select_related("user")}
    nurse_rota = Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE)
    clinic_services.save_rotation(
        actor=people["admin"],
        clinic=ny_clinic,
        rotation=nurse_rota,
        name="On-call nurse",
        role=Role.NURSE,
        member_ids=[memberships["nora"].pk, memberships["olive"].pk],
        handover_weekday=0,
        handover_time=time(8, 0),
        length_days=7,
        starts_on=date(2026, 3, 2),
        now=datetime(2026, 3, 1, tzinfo=NY),
    )
    people["memberships"] = memberships
    people["nurse_rota"] = nurse_rota
    return people


def emergency(clinic, team, when):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic), assigned_nurse=team["pia"])
    services.record_pump_event(
        pump=pump, actor=team["pia"], kind=PumpEvent.Kind.CRITICAL_ALARM, occurred_at=when, now=when
    )
    return Alert.objects.get(pump=pump)


def told(alert, step_at):
    """Who the step at ``step_at`` emailed."""
    stamp = f"{step_at:%Y%m%dT%H%M%S}"
    return sorted(n.recipient.username for n in alert.notifications.filter(channel="email", step__startswith=stamp))


@pytest.mark.django_db
def test_emergency_repeats_reach_whichever_nurse_is_on_call_at_each_step(ny_clinic, team):
    with time_machine.travel(MONDAY_0740, tick=False):
        alert = emergency(ny_clinic, team, MONDAY_0740)
        engine.advance_escalations(MONDAY_0740)
    assert told(alert, MONDAY_0740) == ["dr-quinn", "nora"]  # Nora's week ends at 08:00

    repeat = MONDAY_0740 + timedelta(minutes=30)  # 08:10: Olive has taken over
    with time_machine.travel(repeat, tick=False):
        engine.advance_escalations(repeat)
    assert told(alert, repeat) == ["dr-quinn", "olive"]
    assert alert.policy_snapshot["levels"][0]["on_call_rotation_ids"] == sorted(
        Rotation.objects.filter(clinic=ny_clinic).values_list("pk", flat=True)
    )


@pytest.mark.django_db
def test_a_swap_added_while_the_alert_runs_changes_who_the_next_step_reaches(ny_clinic, team):
    with time_machine.travel(MONDAY_0740, tick=False):
        alert = emergency(ny_clinic, team, MONDAY_0740)
        engine.advance_escalations(MONDAY_0740)
        clinic_services.add_rota_override(
            actor=team["admin"],
            rotation=team["nurse_rota"],
            membership=team["memberships"]["pia"],
            starts_at=datetime(2026, 3, 9, 8, tzinfo=NY),
            ends_at=datetime(2026, 3, 10, 8, tzinfo=NY),
            reason="Olive off sick",
        )
    repeat = MONDAY_0740 + timedelta(minutes=30)
    with time_machine.travel(repeat, tick=False):
        engine.advance_escalations(repeat)
    assert told(alert, repeat) == ["dr-quinn", "pia"]


@pytest.mark.django_db
def test_urgent_default_level_names_the_on_call_nurse_only(ny_clinic, team):
    nurse_rota = team["nurse_rota"]
    first = EscalationPolicy.objects.get(clinic=ny_clinic, severity=Severity.URGENT).levels.order_by("position")[0]
    assert first.on_call_rotation_ids == [nurse_rota.pk]
    assert oncall.on_call_users(ny_clinic, MONDAY_0740, [nurse_rota.pk]) == [team["nora"]]


@pytest.mark.django_db
def test_a_deactivated_on_call_nurse_reaches_nobody_and_the_admins_are_told(ny_clinic, team):
    clinic_services.update_membership(team["memberships"]["nora"], team["admin"], is_active=False)
    policy = EscalationPolicy.objects.get(clinic=ny_clinic, severity=Severity.EMERGENCY)
    level = policy.levels.get()
    level.roles = []
    level.save()
    with time_machine.travel(MONDAY_0740, tick=False):
        alert = emergency(ny_clinic, team, MONDAY_0740)
        engine.advance_escalations(MONDAY_0740)
    alert.refresh_from_db()
    assert told(alert, MONDAY_0740) == ["ada"]
    assert alert.nobody_to_notify and alert.timeline.filter(kind="nobody").exists()


@pytest.mark.django_db
def test_an_alert_raised_before_rotas_existed_reaches_everyone_on_call_on_every_rota(ny_clinic, team):
    physician_rota = Rotation.objects.get(clinic=ny_clinic, role=Role.PHYSICIAN)
    physician_rota.member_ids = [team["memberships"]["dr-quinn"].pk]
    physician_rota.starts_on = date(2026, 3, 2)
    physician_rota.save()
    with time_machine.travel(MONDAY_0740, tick=False):
        alert = emergency(ny_clinic, team, MONDAY_0740)
        # The snapshot an alert kept from before the rota: "on_call": true, no rotation ids.
        alert.policy_snapshot["levels"] = [{"roles": [], "on_call": True, "channels": ["email"], "wait_minutes": 30}]
        alert.save()
        engine.advance_escalations(MONDAY_0740)
    assert told(alert, MONDAY_0740) == ["dr-quinn", "nora"]
    assert alert.kind == AlertKind.PUMP_ALARM
