"""Physician reviews (issue 9, item 1): one review per refill, resolved by a physician only.

The worked example pump (tests/factories.py) holds 40 mL of 2000 mcg/mL at 600 mcg/day: 0.3 mL/day.
"""

import importlib
from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from rest_framework.test import APIClient

from alerts import engine
from alerts import services as alert_services
from alerts.models import Alert, AlertKind, Severity
from patients import services

from .factories import filled_pump

PHX = ZoneInfo("America/Phoenix")
FIRST_REVIEW = datetime(2026, 4, 20, 9, tzinfo=PHX)  # 105 days on: 8.5 mL expected
SECOND_REVIEW = datetime(2026, 6, 20, 9, tzinfo=PHX)  # 61 days after a 40 mL fill: 21.7 mL expected


def discrepant_refill(pump, actor, at, aspirated_ml, reason):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=at,
        aspirated_ml=D(aspirated_ml),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
        discrepancy_reason=reason,
        now=at,
    )


@pytest.fixture
def review(clinic, nurse):
    pump = filled_pump(clinic, nurse, assigned_nurse=nurse, patient={"family_name": "Reviewson"})
    discrepant_refill(pump, nurse, FIRST_REVIEW, "3", "Short by 5.5 mL")
    return Alert.objects.get(pump=pump, kind=AlertKind.RESIDUAL_DISCREPANCY)


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_second_discrepancy_on_the_same_pump_raises_its_own_review(clinic, nurse, review):
    pump = review.pump
    first = pump.refills.latest()
    second = discrepant_refill(pump, nurse, SECOND_REVIEW, "10", "Pocket fill suspected")
    reviews = Alert.objects.open().filter(pump=pump, kind=AlertKind.RESIDUAL_DISCREPANCY).order_by("pk")
    assert [(a.refill_id, a.dedupe_key, a.severity) for a in reviews] == [
        (first.pk, f"residual_discrepancy:refill:{first.pk}", Severity.REVIEW),
        (second.pk, f"residual_discrepancy:refill:{second.pk}", Severity.REVIEW),
    ]


@pytest.mark.django_db
def test_nurse_acknowledges_a_discrepancy_review_but_cannot_resolve_it(nurse, clinic_admin, review):
    for someone in (nurse, clinic_admin):
        with pytest.raises(PermissionDenied):
            alert_services.resolve_alert(alert=review, actor=someone, reason="looked fine to me", now=FIRST_REVIEW)
    alert_services.acknowledge_alert(alert=review, actor=nurse, now=FIRST_REVIEW)
    review.refresh_from_db()
    assert review.status == Alert.Status.ACKNOWLEDGED


@pytest.mark.django_db
def test_physician_resolves_the_discrepancy_review(physician, review):
    alert_services.resolve_alert(alert=review, actor=physician, reason="Catheter checked: intact", now=FIRST_REVIEW)
    review.refresh_from_db()
    assert (review.status, review.resolved_by, review.resolution) == (
        Alert.Status.RESOLVED,
        physician,
        "Catheter checked: intact",
    )


@pytest.mark.django_db
def test_drift_and_refill_after_empty_reviews_need_a_physician_too(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    for kind in (AlertKind.DELIVERY_DRIFT, AlertKind.REFILL_AFTER_EMPTY):
        alert, _ = engine.raise_alert(
            pump_id=pump.pk, clinic_id=clinic.pk, kind=kind, severity=Severity.REVIEW, now=FIRST_REVIEW
        )
        with pytest.raises(PermissionDenied):
            alert_services.resolve_alert(alert=alert, actor=nurse, reason="fine", now=FIRST_REVIEW)
        alert_services.resolve_alert(alert=alert, actor=physician, reason="Reviewed", now=FIRST_REVIEW)


@pytest.mark.django_db
def test_nurse_still_resolves_a_pump_alarm(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    alarm, _ = engine.raise_alert(
        pump_id=pump.pk, clinic_id=clinic.pk, kind=AlertKind.PUMP_ALARM, severity=Severity.URGENT, now=FIRST_REVIEW
    )
    alert_services.resolve_alert(alert=alarm, actor=nurse, reason="Alarm was the ERI beep", now=FIRST_REVIEW)
    alarm.refresh_from_db()
    assert alarm.status == Alert.Status.RESOLVED


@pytest.mark.django_db
def test_api_refuses_a_nurse_resolving_a_review_with_403_and_lets_the_physician(nurse, physician, review):
    with time_machine.travel(FIRST_REVIEW + timedelta(minutes=5), tick=False):
        refused = client_for(nurse).post(
            f"/api/v1/alerts/{review.pk}/resolve/", {"reason": "looked fine"}, format="json"
        )
        assert refused.status_code == 403
        review.refresh_from_db()
        assert review.is_open
        listed = client_for(nurse).get("/api/v1/alerts/").json()
        assert [(a["id"], a["refill"]) for a in listed] == [(review.pk, review.refill_id)]
        resolved = client_for(physician).post(
            f"/api/v1/alerts/{review.pk}/resolve/", {"reason": "Pocket fill ruled out"}, format="json"
        )
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolution"]) == ("resolved", "Pocket fill ruled out")
    assert (
        client_for(physician)
        .post(f"/api/v1/alerts/{review.pk}/resolve/", {"reason": "again"}, format="json")
        .status_code
        == 400
    )


@pytest.mark.django_db
def test_api_resolve_needs_a_reason(physician, review):
    response = client_for(physician).post(f"/api/v1/alerts/{review.pk}/resolve/", {}, format="json")
    assert response.status_code == 400 and "reason" in response.json()


@pytest.mark.django_db
def test_alert_page_shows_resolve_to_the_physician_only(client, nurse, physician, review):
    page = reverse("alert-detail", args=[review.pk])
    resolve = reverse("alert-resolve", args=[review.pk]).encode()
    client.force_login(nurse)
    nurse_page = client.get(page)
    assert b"Acknowledge" in nurse_page.content and resolve not in nurse_page.content
    assert b"A physician review is resolved by a physician." in nurse_page.content
    client.force_login(physician)
    # a physician closes it with a conclusion (issue #10 item 3), the form that resolves it
    assert reverse("alert-conclude", args=[review.pk]).encode() in client.get(page).content


@pytest.mark.django_db
def test_nurse_posting_resolve_on_a_review_gets_an_error_and_it_stays_open(client, nurse, review):
    client.force_login(nurse)
    response = client.post(reverse("alert-resolve", args=[review.pk]), {"reason": "fine"}, follow=True)
    assert response.status_code == 200
    assert b"Only a physician resolves a physician review" in response.content
    review.refresh_from_db()
    assert review.is_open


@pytest.mark.django_db
def test_upgrade_links_an_open_review_to_the_discrepant_refill_it_was_raised_for(clinic, nurse):
    from django.apps import apps

    link_open_reviews = importlib.import_module("alerts.migrations.0007_alert_refill").link_open_reviews
    pump = filled_pump(clinic, nurse)
    with time_machine.travel(FIRST_REVIEW, tick=False):  # the row's created_at is the clock's
        refill = discrepant_refill(pump, nurse, FIRST_REVIEW, "3", "Short by 5.5 mL")
    # As the upgrade finds it: one review per pump, its key naming the pump, no refill.
    Alert.objects.filter(pump=pump).update(refill=None, dedupe_key=f"residual_discrepancy:pump:{pump.pk}")
    unmatched, _ = engine.raise_alert(
        pump_id=filled_pump(clinic, nurse).pk,
        clinic_id=clinic.pk,
        kind=AlertKind.RESIDUAL_DISCREPANCY,
        severity=Severity.REVIEW,
        now=FIRST_REVIEW,
    )

    link_open_reviews(apps, None)

    linked = Alert.objects.get(pump=pump)
    assert (linked.refill_id, linked.dedupe_key) == (refill.pk, f"residual_discrepancy:refill:{refill.pk}")
    unmatched.refresh_from_db()
    assert (unmatched.refill_id, unmatched.dedupe_key) == (None, f"residual_discrepancy:pump:{unmatched.pump_id}")
