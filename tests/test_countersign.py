"""Countersigning dose orders (issue 10 item 4): a nurse-entered dose change naming a physician
waits for a physician's countersignature; unsigned for ORDER_COUNTERSIGN_HOURS it escalates as a
physician review, which the countersignature resolves. Only physicians of the clinic sign."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.test import override_settings
from django.urls import reverse

from alerts import engine
from alerts.models import Alert, AlertKind, Notification, Severity
from clinics.models import Role
from patients import services

from .factories import filled_pump, member
from .test_api_helpers import client_for

PHX = ZoneInfo("America/Phoenix")
ORDERED = datetime(2026, 2, 1, 10, tzinfo=PHX)  # between the worked example's fill and its due date


def nurse_orders(pump, nurse, physician, dose=D(650), at=ORDERED):
    return services.change_program(
        pump=pump, actor=nurse, effective_at=at, daily_dose_mcg=dose, ordered_by=physician, now=at
    )


REFILLED = datetime(2026, 4, 20, 9, tzinfo=PHX)  # the worked example's next refill (8.5 mL expected back)


def refill(pump, actor, dose, **order):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=REFILLED,
        aspirated_ml=D("8.5"),
        volume_added_ml=D(40),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=dose,
        now=REFILLED,
        **order,
    )


@pytest.fixture
def pump(clinic, nurse, physician):
    return filled_pump(clinic, nurse, refill={"ordered_by": physician})


@pytest.fixture
def order(pump, nurse, physician):
    return nurse_orders(pump, nurse, physician)


@pytest.fixture
def recorded_on_the_order_day():
    """The pump page lists the record history, whose rows are stamped with the clock: the pump, its
    fill and the order are recorded on the order's day, not whenever the test runs (at 05:55Z,
    22:55 in Phoenix, a row read "22:55"). List it before the records' fixtures."""
    with time_machine.travel(ORDERED, tick=True):
        yield


def order_alerts():
    return Alert.objects.filter(kind=AlertKind.ORDER_UNSIGNED)


# --- who signs ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_dose_change_naming_a_physician_waits_for_a_countersignature(order, physician):
    assert order.ordered_by == physician
    assert order.countersign_requested_at == ORDERED
    assert order.verified_by is None and order.verified_at is None
    assert order.awaits_countersign


@pytest.mark.django_db
def test_physicians_own_dose_change_counts_as_signed(pump, physician):
    program = services.change_program(
        pump=pump, actor=physician, effective_at=ORDERED, daily_dose_mcg=D(650), now=ORDERED
    )
    assert (program.verified_by, program.verified_at) == (physician, ORDERED)
    assert not program.awaits_countersign


@pytest.mark.django_db
def test_nurse_refill_changing_the_dose_waits_for_a_countersignature(pump, nurse, physician):
    visit = refill(pump, nurse, D(650), ordered_by=physician)
    assert visit.program.awaits_countersign


@pytest.mark.django_db
def test_nurse_refill_at_the_same_dose_has_nothing_to_countersign(pump, nurse):
    visit = refill(pump, nurse, D(600))
    assert visit.program.countersign_requested_at is None


@pytest.mark.django_db
def test_ordering_physician_countersigns_through_the_api(order, physician):
    signed_at = ORDERED + timedelta(hours=3)
    with time_machine.travel(signed_at, tick=False):
        response = client_for(physician).post(reverse("api-program-countersign", args=[order.pk]), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["verified_by"] == physician.pk
    assert body["verified_at"] == "2026-02-01T13:00:00-07:00"
    order.refresh_from_db()
    assert (order.verified_by, order.verified_at) == (physician, signed_at)


@pytest.mark.django_db
def test_another_physician_of_the_clinic_may_countersign(clinic, order):
    colleague = member(clinic, Role.PHYSICIAN, username="dr-colleague")
    signed = services.countersign_program(program=order, actor=colleague, now=ORDERED + timedelta(hours=1))
    assert signed.verified_by == colleague


@pytest.mark.django_db
def test_nurse_cannot_countersign_through_the_api(order, nurse):
    response = client_for(nurse).post(reverse("api-program-countersign", args=[order.pk]), format="json")
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.verified_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.NURSE, Role.CLINIC_ADMIN])
def test_only_a_physician_countersigns_in_the_service(clinic, order, role):
    with pytest.raises(PermissionDenied):
        services.countersign_program(program=order, actor=member(clinic, role))


@pytest.mark.django_db
def test_superuser_cannot_countersign_a_clinical_order(order, superuser):
    response = client_for(superuser).post(reverse("api-program-countersign", args=[order.pk]), format="json")
    assert response.status_code == 403


@pytest.mark.django_db
def test_physician_of_another_clinic_gets_404(other_clinic, order):
    outsider = member(other_clinic, Role.PHYSICIAN, username="dr-elsewhere")
    response = client_for(outsider).post(reverse("api-program-countersign", args=[order.pk]), format="json")
    assert response.status_code == 404


@pytest.mark.django_db
def test_physician_of_another_clinic_gets_404_on_the_page(client, other_clinic, order):
    outsider = member(other_clinic, Role.PHYSICIAN, username="dr-elsewhere")
    client.force_login(outsider)
    assert client.post(reverse("program-countersign", args=[order.pk])).status_code == 404
    order.refresh_from_db()
    assert order.verified_at is None


@pytest.mark.django_db
def test_order_countersigned_twice_is_refused(order, physician):
    services.countersign_program(program=order, actor=physician, now=ORDERED + timedelta(hours=1))
    response = client_for(physician).post(reverse("api-program-countersign", args=[order.pk]), format="json")
    assert response.status_code == 400
    assert "program" in response.json()


@pytest.mark.django_db
def test_nurse_trying_to_countersign_on_the_page_is_told_why(client, order, nurse):
    client.force_login(nurse)
    response = client.post(reverse("program-countersign", args=[order.pk]), follow=True)
    assert response.status_code == 200
    assert "Only a physician of this clinic can countersign" in response.content.decode()
    order.refresh_from_db()
    assert order.verified_at is None


@pytest.mark.django_db
def test_nurse_amending_the_dose_of_a_signed_order_needs_a_new_countersignature(pump, nurse, physician):
    visit = refill(pump, physician, D(650))
    assert visit.program.verified_by == physician
    amended_at = REFILLED + timedelta(hours=2)
    visit = services.amend_refill(
        refill=visit,
        actor=nurse,
        amend_reason="Typed 650 for 640",
        daily_dose_mcg=D(640),
        ordered_by=physician,
        now=amended_at,
    )
    visit.program.refresh_from_db()
    assert visit.program.verified_at is None
    assert visit.program.countersign_requested_at == amended_at


# --- escalation -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_order_unsigned_for_24_hours_escalates_as_a_physician_review(order, physician):
    engine.run_scan(ORDERED + timedelta(hours=23, minutes=59))
    assert not order_alerts().exists()

    engine.run_scan(ORDERED + timedelta(hours=24))
    alert = order_alerts().get()
    assert alert.severity == Severity.REVIEW
    assert alert.program == order and alert.pump == order.pump
    assert alert.dedupe_key == f"order_unsigned:program:{order.pk}"
    assert "650 mcg/day" in alert.detail
    # The clinic's physician-review policy notifies its physicians.
    assert Notification.objects.filter(alert=alert, recipient=physician).exists()

    engine.run_scan(ORDERED + timedelta(hours=25))
    assert order_alerts().count() == 1  # one per order, however many scans


@pytest.mark.django_db
def test_countersigning_resolves_the_unsigned_order_alert(order, physician):
    engine.run_scan(ORDERED + timedelta(hours=24))
    services.countersign_program(program=order, actor=physician, now=ORDERED + timedelta(hours=26))
    alert = order_alerts().get()
    assert alert.status == Alert.Status.RESOLVED
    assert alert.resolved_by == physician
    assert alert.resolution == "Order countersigned"
    engine.run_scan(ORDERED + timedelta(hours=27))
    assert order_alerts().count() == 1  # not raised again


@pytest.mark.django_db
def test_two_unsigned_orders_on_one_pump_escalate_separately(pump, nurse, physician):
    first = nurse_orders(pump, nurse, physician, D(650))
    second = nurse_orders(pump, nurse, physician, D(700), at=ORDERED + timedelta(hours=1))
    engine.run_scan(ORDERED + timedelta(hours=25))
    assert set(order_alerts().values_list("program", flat=True)) == {first.pk, second.pk}


@pytest.mark.django_db
@override_settings(ORDER_COUNTERSIGN_HOURS=4)
def test_the_countersign_window_is_a_setting(order):
    engine.run_scan(ORDERED + timedelta(hours=4))
    assert order_alerts().count() == 1


@pytest.mark.django_db
def test_signed_order_never_escalates(pump, physician):
    services.change_program(pump=pump, actor=physician, effective_at=ORDERED, daily_dose_mcg=D(650), now=ORDERED)
    engine.run_scan(ORDERED + timedelta(days=3))
    assert not order_alerts().exists()


# --- the pump page ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pump_page_shows_an_unsigned_order_and_offers_the_physician_to_sign(client, order, physician):
    client.force_login(physician)
    with time_machine.travel(ORDERED + timedelta(hours=30), tick=False):
        page = client.get(reverse("pump-detail", args=[order.pump_id])).content.decode()
    assert "Not yet" in page
    assert "2026-02-01 10:00" in page  # entered at, clinic time
    assert "escalated as a physician review" in page
    assert reverse("program-countersign", args=[order.pk]) in page


@pytest.mark.django_db
def test_pump_page_offers_no_countersign_button_to_a_nurse(client, order, nurse):
    client.force_login(nurse)
    with time_machine.travel(ORDERED + timedelta(hours=1), tick=False):
        page = client.get(reverse("pump-detail", args=[order.pump_id])).content.decode()
    assert "Not yet" in page
    assert reverse("program-countersign", args=[order.pk]) not in page


@pytest.mark.django_db
def test_pump_page_shows_who_countersigned_and_when_in_clinic_time(recorded_on_the_order_day, client, order, physician):
    physician.first_name, physician.last_name = "Ada", "Okafor"
    physician.save()
    countersigned_at = datetime(2026, 2, 1, 22, 55, tzinfo=ZoneInfo("UTC"))
    with time_machine.travel(countersigned_at, tick=False):  # its record-history row: this moment
        services.countersign_program(program=order, actor=physician, now=countersigned_at)
    with time_machine.travel(ORDERED + timedelta(hours=30), tick=False):
        client.force_login(physician)
        page = client.get(reverse("pump-detail", args=[order.pump_id])).content.decode()
    assert "Yes, by Ada Okafor, 2026-02-01 15:55" in page
    assert "22:55" not in page
