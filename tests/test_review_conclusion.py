"""Physician reviews end with a conclusion (issue #10 item 3): outcome, action, note, follow-up;
it resolves the review and shows on the alert's timeline, the pump page's history and the audit
report and its CSV."""

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from alerts.models import Alert, AlertEvent, AlertKind, ReviewConclusion
from alerts.services import conclude_review
from patients import services
from patients.models import Appointment

from .factories import filled_pump

PHOENIX = ZoneInfo("America/Phoenix")
SECOND_REFILL = datetime(2026, 3, 2, 9, tzinfo=PHOENIX)  # Monday
NOW = SECOND_REFILL + timedelta(hours=3)
FOLLOW_UP = date(2026, 3, 10)  # a Tuesday


@pytest.fixture
def review(clinic, nurse):
    """A residual-discrepancy review: 18 mL aspirated where 23.2 mL was expected."""
    pump = filled_pump(clinic, nurse, patient={"family_name": "Residual"})
    services.record_refill(
        pump=pump,
        actor=nurse,
        performed_at=SECOND_REFILL,
        aspirated_ml=Decimal("18.00"),
        volume_added_ml=Decimal(40),
        concentration_mcg_per_ml=Decimal(2000),
        daily_dose_mcg=Decimal(600),
        discrepancy_reason="Suspected pocket fill",
        now=SECOND_REFILL,
    )
    return Alert.objects.open().get(pump=pump, kind=AlertKind.RESIDUAL_DISCREPANCY)


def conclude(alert, actor, **fields):
    values = {"outcome": "pocket_fill", "action": "dye_or_rotor_study", "note": "", "follow_up_on": None, "now": NOW}
    values.update(fields)
    return conclude_review(alert=alert, actor=actor, **values)


@pytest.mark.django_db
def test_physician_concludes_a_pocket_fill_review_and_books_the_device_check(review, physician):
    conclusion = conclude(review, physician, note="Dye study booked with radiology", follow_up_on=FOLLOW_UP)
    review.refresh_from_db()
    assert review.status == Alert.Status.RESOLVED and review.resolved_by == physician
    assert review.resolution == (
        "Review concluded: Pocket fill suspected; action: dye or rotor study; device check 2026-03-10"
    )
    assert conclusion.refill.performed_at == SECOND_REFILL
    appointment = conclusion.follow_up_appointment
    assert appointment.kind == Appointment.Kind.DEVICE_CHECK
    assert appointment.status == Appointment.Status.SCHEDULED
    # at the clinic's opening time, in its zone
    assert appointment.scheduled_for == datetime(2026, 3, 10, 8, tzinfo=PHOENIX)
    kinds = list(review.timeline.values_list("kind", flat=True))
    assert kinds[-2:] == [AlertEvent.Kind.CONCLUDED, AlertEvent.Kind.RESOLVED]
    assert conclusion.event.kind == AlertEvent.Kind.CONCLUDED


@pytest.mark.django_db
def test_a_nurse_cannot_conclude_a_physician_review(client, review, nurse):
    with pytest.raises(PermissionDenied):
        conclude(review, nurse)
    client.force_login(nurse)
    response = client.post(reverse("alert-conclude", args=[review.pk]), {"outcome": "entry_error", "action": "none"})
    assert response.status_code == 403
    page = client.get(reverse("alert-detail", args=[review.pk])).content.decode()
    assert 'id="conclusion-form"' not in page and 'id="awaiting-physician"' in page
    assert reverse("alert-resolve", args=[review.pk]) not in page  # reviews are concluded, not resolved
    review.refresh_from_db()
    assert review.is_open and not ReviewConclusion.objects.exists()


@pytest.mark.django_db
def test_conclusion_refusals_store_nothing(review, physician):
    for fields, field in (
        ({"note": "x" * 2001}, "note"),
        ({"outcome": "other", "note": ""}, "note"),
        ({"outcome": "unsure"}, "outcome"),
        ({"action": "surgery_now"}, "action"),
        ({"follow_up_on": NOW.date()}, "follow_up_on"),  # today is not a follow-up
        ({"follow_up_on": date(2026, 3, 8)}, "follow_up_on"),  # a Sunday: the clinic is closed
    ):
        with pytest.raises(ValidationError) as refused:
            conclude(review, physician, **fields)
        assert field in refused.value.message_dict, fields
    review.refresh_from_db()
    assert review.is_open
    assert not ReviewConclusion.objects.exists()
    assert not Appointment.objects.filter(kind=Appointment.Kind.DEVICE_CHECK).exists()


@pytest.mark.django_db
def test_only_open_physician_reviews_are_concluded(review, physician, clinic):
    conclude(review, physician)
    with pytest.raises(ValidationError):
        conclude(review, physician, outcome="entry_error")
    alarm = filled_pump(clinic, physician)
    services.record_pump_event(pump=alarm, actor=physician, kind="critical_alarm", occurred_at=NOW, now=NOW)
    with pytest.raises(ValidationError) as refused:
        conclude(Alert.objects.get(pump=alarm, kind=AlertKind.PUMP_ALARM), physician)
    assert "alert" in refused.value.message_dict


@pytest.mark.django_db
def test_the_conclusion_shows_on_the_alert_timeline_and_the_pump_page_history(client, review, physician):
    client.force_login(physician)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("alert-conclude", args=[review.pk]),
            {
                "outcome": "catheter",
                "action": "surgical_referral",
                "note": "Refer to neurosurgery for catheter study",
                "follow_up_on": "2026-03-10",
            },
        )
        assert response.status_code == 302
        page = client.get(reverse("alert-detail", args=[review.pk])).content.decode()
        pump_page = client.get(reverse("pump-detail", args=[review.pump_id])).content.decode()
    assert "Review concluded" in page and "Catheter problem suspected" in page
    assert "Refer to neurosurgery for catheter study" in page
    assert "Tue 2026-03-10 08:00" in page  # the booked device check, clinic time
    assert 'id="conclusion-form"' not in page  # concluded: no second conclusion
    assert "Physician review" in pump_page
    assert "Review concluded: Catheter problem suspected; action: surgical referral" in pump_page
    assert "Device check" in pump_page


@pytest.mark.django_db
def test_a_refused_conclusion_shows_the_form_again_with_the_error(client, review, physician):
    client.force_login(physician)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            reverse("alert-conclude", args=[review.pk]),
            {"outcome": "other", "action": "none", "note": "", "follow_up_on": ""},
        )
    assert response.status_code == 400
    assert "Say what it was." in response.content.decode()


@pytest.mark.django_db
def test_the_review_conclusion_is_in_the_audit_report_and_its_csv(client, review, physician, clinic_admin, clinic):
    conclude(review, physician, note="=HYPERLINK(bad)", follow_up_on=FOLLOW_UP)
    physician.first_name, physician.last_name = "Ada", "Reviewer"
    physician.save()
    client.force_login(clinic_admin)
    url = reverse("clinic-audit", args=[clinic.pk])
    page = client.get(url).content.decode()
    assert "Reviewed" in page and "Ada Reviewer" in page and "Pocket fill suspected" in page
    response = client.get(url, {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    reviewed = next(row for row in rows if row["discrepancy"] == "yes")
    assert reviewed["review_outcome"] == "Pocket fill suspected"
    assert reviewed["review_action"] == "Dye or rotor study"
    assert reviewed["review_note"] == "'=HYPERLINK(bad)"  # a formula is defused
    assert reviewed["review_follow_up_on"] == "2026-03-10"
    assert reviewed["reviewed_by"] == "Ada Reviewer"
    assert reviewed["reviewed_at"] == "2026-03-02T12:00-07:00"
    first_fill = next(row for row in rows if row["discrepancy"] == "no")
    assert first_fill["review_outcome"] == ""


def test_every_conclusion_summary_fits_the_history_reason_and_the_resolution():
    longest = max(
        len(ReviewConclusion(outcome=outcome, action=action, follow_up_on=FOLLOW_UP).summary())
        for outcome in ReviewConclusion.Outcome.values
        for action in ReviewConclusion.Action.values
    )
    assert longest <= 100  # django-simple-history keeps 100 characters of a change reason
