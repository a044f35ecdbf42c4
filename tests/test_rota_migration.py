"""The on-call flags become rotations (clinics 0005) and the levels that paged "the on-call
members" name them (alerts 0004): the same people are reached the day after the upgrade."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from alerts import engine
from alerts.models import Alert, EscalationLevel, Severity
from clinics.models import Membership

BEFORE = [("clinics", "0004_clinic_calendar"), ("alerts", "0003_alert_event_subject_at")]
AFTER = [("clinics", "0005_on_call_rotas"), ("alerts", "0004_on_call_rotas")]

# Transactional (SQLite cannot change a schema inside the test's transaction) but not serialized:
# it needs none of the catalogues, and restoring them would collide with the content types a
# preceding non-serialized transactional test's flush recreated. It leaves the database as such a
# test does (flushed); pytest-django runs transactional tests last.
pytestmark = [
    pytest.mark.django_db(transaction=True, available_apps=[app.name for app in apps.get_app_configs()]),
    pytest.mark.xdist_group("migrations"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def test_flagged_members_become_the_rotation_of_their_role_and_levels_point_at_them():
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        # The upgrade on a Wednesday: this week's Monday 08:00 hand-over has passed, so the first of
        # the flagged nurses is on call. On a Monday before 08:00 in the clinic's zone (a run at
        # 06:58Z) the week before's turn, the last of them, still was.
        with time_machine.travel(datetime(2026, 3, 11, 12, tzinfo=ZoneInfo("America/New_York")), tick=True):
            _flags_become_rotations(leaves)
    finally:
        migrate(leaves)  # whatever happened, the next test finds every migration applied


def _flags_become_rotations(leaves):
    old = migrate(BEFORE)
    Clinic = old.get_model("clinics", "Clinic")
    User = old.get_model("auth", "User")
    OldMembership = old.get_model("clinics", "Membership")
    OldPolicy = old.get_model("alerts", "EscalationPolicy")
    OldLevel = old.get_model("alerts", "EscalationLevel")

    flagged = Clinic.objects.create(name="Flagged Clinic", timezone="America/New_York")
    unflagged = Clinic.objects.create(name="Unflagged Clinic", timezone="America/Phoenix")
    people = {}
    for clinic, username, role, on_call in [
        (flagged, "zoe-nurse", "nurse", True),
        (flagged, "amy-nurse", "nurse", True),
        (flagged, "ben-nurse", "nurse", False),
        (flagged, "dr-cho", "physician", True),
        (flagged, "ada-admin", "clinic_admin", False),
        (unflagged, "eve-nurse", "nurse", False),
    ]:
        user = User.objects.create(username=username, email=f"{username}@clinic.example")
        people[username] = OldMembership.objects.create(user=user, clinic=clinic, role=role, on_call=on_call)
    for clinic in (flagged, unflagged):  # the default policies as 0002 seeded them for older clinics
        policy = OldPolicy.objects.create(clinic=clinic, severity=int(Severity.CRITICAL), repeat_count=None)
        OldLevel.objects.create(policy=policy, roles=["physician"], on_call=True, channels=["email"], wait_minutes=30)
        edited = OldPolicy.objects.create(clinic=clinic, severity=int(Severity.REMINDER), repeat_count=0)
        OldLevel.objects.create(policy=edited, assigned_nurse=True, channels=["email"], wait_minutes=60)

    # Read with the models as these migrations left them: later migrations add columns.
    new = migrate(AFTER)
    NewRotation = new.get_model("clinics", "Rotation")
    NewLevel = new.get_model("alerts", "EscalationLevel")
    nurse_rota = NewRotation.objects.get(clinic_id=flagged.pk, role="nurse")
    physician_rota = NewRotation.objects.get(clinic_id=flagged.pk, role="physician")
    assert nurse_rota.member_ids == [people["amy-nurse"].pk, people["zoe-nurse"].pk]  # username order
    assert physician_rota.member_ids == [people["dr-cho"].pk]
    assert (nurse_rota.handover_weekday, nurse_rota.length_days, nurse_rota.starts_on.weekday()) == (0, 7, 0)
    assert NewRotation.objects.filter(clinic_id=flagged.pk).count() == 2  # one per role, no admin was flagged
    assert sorted(NewRotation.objects.filter(clinic_id=unflagged.pk).values_list("member_ids", flat=True)) == [
        [],
        [],
    ]
    levels = NewLevel.objects.filter(policy__clinic_id=flagged.pk)
    assert levels.get(policy__severity=Severity.CRITICAL).on_call_rotation_ids == [nurse_rota.pk, physician_rota.pk]
    assert levels.get(policy__severity=Severity.REMINDER).on_call_rotation_ids == []

    migrate(leaves)  # every later migration too: the real models from here on
    assert not hasattr(Membership(), "on_call")
    critical = EscalationLevel.objects.get(policy__clinic_id=flagged.pk, policy__severity=Severity.CRITICAL)

    # The day after: the on-call nurse this week is the first of the flagged nurses, the physician
    # the flagged one; the unflagged clinic's on-call levels find nobody, as before (its admins are told).
    now = timezone.now()
    members = list(Membership.objects.active().filter(clinic_id=flagged.pk))
    on_call = engine.oncall.on_call_by_rotation([flagged.pk], now)[flagged.pk]
    alert = Alert(clinic_id=flagged.pk, kind="rota_gap", severity=Severity.CRITICAL, raised_at=now)
    reached = engine.oncall.level_recipients(critical.snapshot(), alert, members, on_call)
    assert {m.user.username for m in reached} == {"amy-nurse", "dr-cho"}
