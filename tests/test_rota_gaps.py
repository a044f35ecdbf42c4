"""Gaps in the on-call rota: shown to the clinic's admins and emailed to them, once per gap and at
least once, through the alerts' own delivery; resolved when covered."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from alerts import delivery, engine, gaps
from alerts import services as alert_services
from alerts.models import Alert, AlertKind, Notification
from clinics import services as clinic_services
from clinics.models import Membership, Role, Rotation

from .factories import ClinicFactory, member

NY = ZoneInfo("America/New_York")
# Wednesday 4 March 2026, 10:00: Nora's week runs to Monday 9 March 08:00, then Olive's (16 March 08:00).
NOW = datetime(2026, 3, 4, 10, tzinfo=NY)
OLIVE_WEEK = (datetime(2026, 3, 9, 8, tzinfo=NY), datetime(2026, 3, 16, 8, tzinfo=NY))


@pytest.fixture
def ny_clinic(db):
    return ClinicFactory(name="Hudson Pump Clinic", timezone="America/New_York")


@pytest.fixture
def team(ny_clinic):
    people = {
        "nora": member(ny_clinic, Role.NURSE, username="nora"),
        "olive": member(ny_clinic, Role.NURSE, username="olive"),
        "pia": member(ny_clinic, Role.NURSE, username="pia"),
        "admin": member(ny_clinic, Role.CLINIC_ADMIN, username="ada"),
    }
    people["m"] = {m.user.username: m for m in Membership.objects.filter(clinic=ny_clinic).select_related("user")}
    people["rota"] = clinic_services.save_rotation(
        actor=people["admin"],
        clinic=ny_clinic,
        rotation=Rotation.objects.get(clinic=ny_clinic, role=Role.NURSE),
        name="On-call nurse",
        role=Role.NURSE,
        member_ids=[people["m"]["nora"].pk, people["m"]["olive"].pk],
        handover_weekday=0,
        handover_time=time(8, 0),
        length_days=7,
        starts_on=date(2026, 2, 16),
        now=NOW,
    )
    return people


def olive_leaves(team, now=NOW):
    with time_machine.travel(now, tick=False):
        clinic_services.update_membership(team["m"]["olive"], team["admin"], is_active=False)


def gap_alerts():
    return Alert.objects.filter(kind=AlertKind.ROTA_GAP)


def deliver_all(now):
    for pk in Notification.objects.filter(channel="email", status="pending").values_list("pk", flat=True):
        delivery.deliver(pk, now)


@pytest.mark.django_db
def test_a_week_with_nobody_on_call_is_one_alert_emailed_to_the_admins_once(ny_clinic, team):
    assert gaps.sync_rota_gaps(NOW).raised == 0  # Nora and Olive cover every hour
    olive_leaves(team)  # the change itself looks for gaps: Olive's week is one now
    alert = gap_alerts().get()
    assert (alert.pump, alert.clinic, alert.rotation) == (None, ny_clinic, team["rota"])
    assert (alert.period_starts_at, alert.period_ends_at) == OLIVE_WEEK
    assert alert.detail == "On-call nurse: nobody on call Mon 09 Mar 08:00 – Mon 16 Mar 08:00 (168 h, America/New_York)"

    for minutes in (0, 5, 10, 65, 24 * 60):  # scans and hourly checks go on; the gap stays the same
        at = NOW + timedelta(minutes=minutes)
        gaps.sync_rota_gaps(at)
        engine.run_scan(at)
        deliver_all(at)
    assert gap_alerts().count() == 1
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["ada@clinic.example"], f"[ITB Tracker] URGENT: Nobody on call (rota gap) — {alert.reference}")
    ]
    assert "olive" not in mail.outbox[0].body and "Olive" not in mail.outbox[0].body


@pytest.mark.django_db
def test_the_gap_email_is_sent_again_when_its_sender_died_before_sending(ny_clinic, team):
    olive_leaves(team)
    engine.advance_escalations(NOW)
    email = Notification.objects.get(alert__kind=AlertKind.ROTA_GAP, channel="email")
    assert delivery.claim(email.pk, NOW)  # a worker took it, then died
    later = NOW + timedelta(minutes=5)
    assert engine.release_expired_leases(later) == 1
    assert delivery.deliver(email.pk, later) == "sent"
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_acknowledged_gap_is_not_sent_again(ny_clinic, team):
    olive_leaves(team)
    engine.advance_escalations(NOW)
    alert = gap_alerts().get()
    alert_services.acknowledge_alert(alert=alert, actor=team["admin"], now=NOW + timedelta(minutes=1))
    alert.refresh_from_db()
    assert alert.next_step_at is None
    engine.advance_escalations(NOW + timedelta(days=2))
    assert Notification.objects.filter(alert=alert, channel="email").count() == 1


@pytest.mark.django_db
def test_cover_for_the_gap_resolves_it_and_a_partial_cover_keeps_the_same_alert(ny_clinic, team):
    olive_leaves(team)
    alert = gap_alerts().get()
    with time_machine.travel(NOW, tick=False):
        clinic_services.add_rota_override(  # Pia covers the first three days only
            actor=team["admin"],
            rotation=team["rota"],
            membership=team["m"]["pia"],
            starts_at=OLIVE_WEEK[0],
            ends_at=OLIVE_WEEK[0] + timedelta(days=3),
        )
    alert.refresh_from_db()
    assert gap_alerts().count() == 1 and alert.is_open
    assert (alert.period_starts_at, alert.period_ends_at) == (OLIVE_WEEK[0] + timedelta(days=3), OLIVE_WEEK[1])
    with time_machine.travel(NOW, tick=False):
        clinic_services.add_rota_override(
            actor=team["admin"],
            rotation=team["rota"],
            membership=team["m"]["pia"],
            starts_at=OLIVE_WEEK[0] + timedelta(days=3),
            ends_at=OLIVE_WEEK[1],
        )
    alert.refresh_from_db()
    assert (alert.status, alert.resolution) == ("resolved", "Covered: someone is on call for these hours now")


@pytest.mark.django_db
def test_a_gap_under_way_keeps_its_alert_and_resolves_when_its_hours_have_passed(ny_clinic, team):
    olive_leaves(team)
    alert = gap_alerts().get()
    during = OLIVE_WEEK[0] + timedelta(days=2)
    report = gaps.sync_rota_gaps(during)
    alert.refresh_from_db()
    assert alert.is_open and alert.period_starts_at == OLIVE_WEEK[0]  # clipped to now in the window, not here
    assert report.raised == 1  # Olive's next turn (from 23 March) has come into the 14-day window
    gaps.sync_rota_gaps(OLIVE_WEEK[1] + timedelta(minutes=1))
    alert.refresh_from_db()
    assert (alert.status, alert.resolution) == ("resolved", "The gap's hours have passed")
    following = gap_alerts().open().get()
    assert (following.period_starts_at, following.period_ends_at) == tuple(t + timedelta(weeks=2) for t in OLIVE_WEEK)


@pytest.mark.django_db
def test_a_clinic_with_no_one_on_any_rota_has_no_gap_alerts(ny_clinic):
    member(ny_clinic, Role.CLINIC_ADMIN, username="ada")
    assert gaps.sync_rota_gaps(NOW).raised == 0 and not gap_alerts().exists()


@pytest.mark.django_db
def test_admins_see_the_gap_hours_on_their_pages_and_nurses_do_not(client, ny_clinic, team):
    olive_leaves(team)
    client.force_login(team["admin"])
    page = client.get(reverse("clinic-staff", args=[ny_clinic.pk])).content.decode()
    assert "Nobody on call" in page and "Mon 09 Mar 08:00 – Mon 16 Mar 08:00" in page
    assert reverse("clinic-rota", args=[ny_clinic.pk]) in page
    client.force_login(team["nora"])
    assert "Mon 09 Mar 08:00 – Mon 16 Mar 08:00" not in client.get(reverse("home")).content.decode()
    alert = gap_alerts().get()
    assert client.get(reverse("alert-detail", args=[alert.pk])).status_code == 200
    assert client.get(reverse("alert-inbox")).status_code == 200
