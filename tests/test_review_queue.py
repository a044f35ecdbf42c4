"""The alert inbox's filters (kind, severity, "for me"; kept across pages and in the session) and
the physicians' "Needs physician review" queue with its counts (issue 10 item 5)."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import Alert, AlertKind, Notification, Severity, dedupe_key
from clinics.models import Role
from patients import services

from .factories import PatientFactory, PumpFactory, filled_pump, member

PHX = ZoneInfo("America/Phoenix")
NOW = datetime(2026, 2, 2, 9, tzinfo=PHX)


def raise_alert(pump, kind, severity=None, *, program=None, raised_at=NOW):
    severity = severity or {AlertKind.RESIDUAL_DISCREPANCY: Severity.REVIEW}.get(kind, Severity.URGENT)
    return Alert.objects.create(
        clinic_id=pump.patient.clinic_id,
        pump=pump,
        program=program,
        kind=kind,
        severity=severity,
        dedupe_key=dedupe_key(kind, pump.pk, program_id=program.pk if program else None),
        raised_at=raised_at,
        detail=f"{kind} test",
    )


def new_pump(clinic, **fields):
    return PumpFactory(patient=PatientFactory(clinic=clinic), **fields)


def inbox(client, **query):
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("alert-inbox"), query)
    assert response.status_code == 200
    return response


def listed(response) -> set[int]:
    return {alert.pk for alert in response.context["page"].object_list}


# --- inbox filters ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inbox_filters_by_kind_and_by_severity(client, clinic, nurse):
    overdue = raise_alert(new_pump(clinic), AlertKind.REFILL_OVERDUE, Severity.URGENT)
    review = raise_alert(new_pump(clinic), AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW)
    emergency = raise_alert(new_pump(clinic), AlertKind.PUMP_ALARM, Severity.EMERGENCY)
    client.force_login(nurse)
    assert listed(inbox(client)) == {overdue.pk, review.pk, emergency.pk}
    assert listed(inbox(client, kind=AlertKind.RESIDUAL_DISCREPANCY)) == {review.pk}
    assert listed(inbox(client, kind="", severity=Severity.EMERGENCY)) == {emergency.pk}
    assert listed(inbox(client, kind=AlertKind.PUMP_ALARM, severity=Severity.URGENT)) == set()


@pytest.mark.django_db
def test_for_me_lists_alerts_i_was_notified_of_my_assigned_pumps_and_orders_naming_me(client, clinic, nurse, physician):
    notified = raise_alert(new_pump(clinic), AlertKind.REFILL_OVERDUE)
    Notification.objects.create(
        alert=notified, step="s", recipient=physician, channel="in_app", address="x", created_at=NOW
    )
    assigned = raise_alert(new_pump(clinic, assigned_nurse=physician), AlertKind.REFILL_DUE, Severity.REMINDER)
    pump = filled_pump(clinic, nurse, refill={"ordered_by": physician})
    order = services.change_program(
        pump=pump, actor=nurse, effective_at=NOW, daily_dose_mcg=D(650), ordered_by=physician, now=NOW
    )
    unsigned = raise_alert(pump, AlertKind.ORDER_UNSIGNED, Severity.REVIEW, program=order)
    someone_elses = raise_alert(new_pump(clinic, assigned_nurse=nurse), AlertKind.REFILL_OVERDUE)
    client.force_login(physician)
    response = inbox(client, mine="1")
    assert listed(response) == {notified.pk, assigned.pk, unsigned.pk}
    assert someone_elses.pk in listed(inbox(client, mine=""))


@pytest.mark.django_db
def test_inbox_filters_survive_leaving_the_inbox_and_clear_on_request(client, clinic, nurse):
    review = raise_alert(new_pump(clinic), AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW)
    other = raise_alert(new_pump(clinic), AlertKind.REFILL_OVERDUE)
    client.force_login(nurse)
    inbox(client, kind=AlertKind.RESIDUAL_DISCREPANCY)
    with time_machine.travel(NOW, tick=False):
        client.get(reverse("alert-detail", args=[review.pk]))
    came_back = inbox(client)  # the navigation's plain link
    assert listed(came_back) == {review.pk}
    assert 'value="residual_discrepancy" selected' in came_back.content.decode()
    assert listed(inbox(client, clear="1")) == {review.pk, other.pk}
    assert listed(inbox(client)) == {review.pk, other.pk}


@pytest.mark.django_db
def test_pagination_links_carry_the_filters(client, clinic, nurse):
    pumps = [new_pump(clinic) for _ in range(51)]
    for pump in pumps:
        raise_alert(pump, AlertKind.REFILL_OVERDUE)
    raise_alert(new_pump(clinic), AlertKind.PUMP_ALARM, Severity.EMERGENCY)
    client.force_login(nurse)
    first = inbox(client, kind=AlertKind.REFILL_OVERDUE, severity=Severity.URGENT)
    assert first.context["page"].paginator.count == 51
    page = first.content.decode()
    assert "?show=open&amp;kind=refill_overdue&amp;severity=20&amp;page=2" in page
    second = inbox(client, show="open", kind=AlertKind.REFILL_OVERDUE, severity=Severity.URGENT, page=2)
    assert len(second.context["page"].object_list) == 1
    # A bare "?page=2" (the filters from the session) keeps them too.
    assert len(inbox(client, page=2).context["page"].object_list) == 1


@pytest.mark.django_db
def test_resolved_tab_keeps_the_kind_filter(client, clinic, nurse):
    raise_alert(new_pump(clinic), AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW)
    client.force_login(nurse)
    page = inbox(client, kind=AlertKind.RESIDUAL_DISCREPANCY).content.decode()
    assert "?kind=residual_discrepancy&amp;show=resolved" in page


def _count_queries(client, url_name, query=None):
    with CaptureQueriesContext(connection) as queries, time_machine.travel(NOW, tick=False):
        response = client.get(reverse(url_name), query or {})
    assert response.status_code == 200
    return len(queries)


@pytest.mark.django_db
def test_inbox_queries_do_not_grow_with_the_alerts(client, clinic, physician):
    client.force_login(physician)
    for _ in range(3):
        raise_alert(new_pump(clinic, assigned_nurse=physician), AlertKind.REFILL_OVERDUE)
    _count_queries(client, "alert-inbox", {"mine": "1"})  # the session's first request does its own bookkeeping
    few = _count_queries(client, "alert-inbox", {"mine": "1"})
    for _ in range(20):
        raise_alert(new_pump(clinic, assigned_nurse=physician), AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW)
    assert _count_queries(client, "alert-inbox", {"mine": "1"}) == few


# --- the review queue --------------------------------------------------------------------------------


@pytest.fixture
def orders(clinic, nurse, physician):
    """Two nurse-entered orders: one naming a colleague (older), one naming ``physician``."""
    colleague = member(clinic, Role.PHYSICIAN, username="dr-colleague")
    theirs = filled_pump(clinic, nurse, refill={"ordered_by": physician})
    mine = filled_pump(clinic, nurse, refill={"ordered_by": physician})
    at = NOW - timedelta(hours=30)
    return [
        services.change_program(pump=pump, actor=nurse, effective_at=at, daily_dose_mcg=D(650), ordered_by=who, now=at)
        for pump, who in ((theirs, colleague), (mine, physician))
    ]


def review_page(client):
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("review-queue"))
    assert response.status_code == 200
    return response


@pytest.mark.django_db
def test_review_queue_lists_orders_to_countersign_mine_first_and_open_reviews_with_counts(
    client, clinic, physician, orders
):
    theirs, mine = orders
    review = raise_alert(new_pump(clinic), AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW)
    unsigned = raise_alert(mine.pump, AlertKind.ORDER_UNSIGNED, Severity.REVIEW, program=mine)
    not_a_review = raise_alert(new_pump(clinic), AlertKind.REFILL_OVERDUE)
    client.force_login(physician)
    response = review_page(client)
    assert [o.pk for o in response.context["orders"]] == [mine.pk, theirs.pk]
    assert {a.pk for a in response.context["reviews"]} == {review.pk, unsigned.pk}
    assert not_a_review.pk not in {a.pk for a in response.context["reviews"]}
    page = response.content.decode()
    assert "<strong>2</strong> orders to countersign · <strong>2</strong> open reviews" in page
    assert "Residual volume discrepancy: 1" in page
    assert "over 24 h" in page
    # The navigation's badge: two orders and one review (the unsigned order's alert counts once).
    assert response.context["review_count"] == 3


@pytest.mark.django_db
def test_countersigning_from_the_queue_takes_the_order_off_it(client, physician, orders):
    theirs, mine = orders
    client.force_login(physician)
    with time_machine.travel(NOW, tick=False):
        response = client.post(reverse("program-countersign", args=[theirs.pk]), {"next": "review"})
    assert response.url == reverse("review-queue")
    assert [o.pk for o in review_page(client).context["orders"]] == [mine.pk]


@pytest.mark.django_db
def test_review_queue_is_for_physicians(client, nurse):
    client.force_login(nurse)
    assert client.get(reverse("review-queue")).status_code == 403
    page = inbox(client).content.decode()
    assert reverse("review-queue") not in page  # no Reviews link in the navigation


@pytest.mark.django_db
def test_review_queue_shows_no_other_clinics_orders(client, other_clinic, orders):
    outsider = member(other_clinic, Role.PHYSICIAN, username="dr-elsewhere")
    client.force_login(outsider)
    response = review_page(client)
    assert response.context["orders"] == []
    assert response.context["review_count"] == 0


@pytest.mark.django_db
def test_a_physician_with_a_long_backlog_pages_through_every_review_and_order(
    client, clinic, nurse, physician, orders, monkeypatch
):
    monkeypatch.setattr("alerts.views.REVIEW_QUEUE_PAGE", 2)
    theirs, mine = orders
    third = services.change_program(
        pump=filled_pump(clinic, nurse, refill={"ordered_by": physician}),
        actor=nurse,
        effective_at=NOW,
        daily_dose_mcg=D(650),
        ordered_by=physician,
        now=NOW,
    )
    reviews = [
        raise_alert(new_pump(clinic), AlertKind.RESIDUAL_DISCREPANCY, raised_at=NOW - timedelta(hours=hours))
        for hours in (3, 2, 1)
    ]
    client.force_login(physician)
    first = review_page(client)
    assert [a.pk for a in first.context["reviews"]] == [r.pk for r in reviews[:2]]  # oldest first
    page = first.content.decode()
    # The counts are the whole queue's, not the page's.
    assert "<strong>3</strong> orders to countersign · <strong>3</strong> open reviews" in page
    assert "Residual volume discrepancy: 3" in page
    assert 'aria-label="Pages of open reviews"' in page and "Page 1 of 2" in page
    with time_machine.travel(NOW, tick=False):
        second = client.get(reverse("review-queue"), {"orders_page": 2, "reviews_page": 2})
    assert [a.pk for a in second.context["reviews"]] == [reviews[2].pk]
    assert [o.pk for o in second.context["orders"]] == [theirs.pk]  # the physician's own two came first
    assert {mine.pk, third.pk} == {o.pk for o in first.context["orders"]}
    # Each list's links keep the other list's page.
    assert "?orders_page=2&amp;reviews_page=1" in second.content.decode()


@pytest.mark.django_db
def test_review_queue_queries_do_not_grow_with_the_orders_and_alerts(client, clinic, nurse, physician, orders):
    client.force_login(physician)
    raise_alert(new_pump(clinic), AlertKind.DELIVERY_DRIFT, Severity.REVIEW)
    _count_queries(client, "review-queue")  # the session's first request does its own bookkeeping
    few = _count_queries(client, "review-queue")
    for _ in range(4):
        pump = filled_pump(clinic, nurse, refill={"ordered_by": physician})
        services.change_program(
            pump=pump, actor=nurse, effective_at=NOW, daily_dose_mcg=D(650), ordered_by=physician, now=NOW
        )
        raise_alert(pump, AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW)
    with CaptureQueriesContext(connection) as queries, time_machine.travel(NOW, tick=False):
        client.get(reverse("review-queue"))
    assert len(queries) == few, "\n".join(q["sql"][:300] for q in queries.captured_queries)
