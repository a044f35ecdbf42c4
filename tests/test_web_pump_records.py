"""A pump's settings and a dose change between refills from the staff pages: the live preview of
the new due date stores nothing, the service's refusals show beside their fields (the ordering
physician, the dose-change confirmation, the stop reason, the hard limit), nothing typed is lost."""

import re
from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from clinics.models import Role
from patients.models import Program, PumpProjection

from .factories import PatientFactory, PumpFactory, filled_pump, member, pump_model
from .test_web_patient_records import error_beside, field_tag

PHX = ZoneInfo("America/Phoenix")
DAY = datetime(2026, 2, 2, 10, tzinfo=PHX)


@pytest.fixture
def pump(clinic, nurse):
    """The worked example: 600 mcg/day of 2000 mcg/mL from 40 mL on 2026-01-05 09:00, due 2026-04-29."""
    return filled_pump(clinic, nurse)


def dose_data(**overrides):
    data = {
        "effective_at": "2026-02-02T09:30",
        "daily_dose_mcg": "660",
        "bolus_mcg_per_day": "0",
        "ordered_by": "",
        "stop_reason": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
def test_nurse_changes_the_dose_naming_the_physician_and_the_due_date_moves(client, nurse, physician, pump):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        page = client.get(reverse("pump-detail", args=[pump.pk])).content.decode()
        assert reverse("program-change", args=[pump.pk]) in page
        form = client.get(reverse("program-change", args=[pump.pk])).content.decode()
        assert 'value="600"' in field_tag(form, "daily_dose_mcg")
        assert physician.get_full_name() in form
        response = client.post(reverse("program-change", args=[pump.pk]), dose_data(ordered_by=physician.pk))
    assert response.status_code == 302 and response["Location"] == reverse("pump-detail", args=[pump.pk])
    program = Program.objects.filter(pump=pump).latest("effective_at")
    assert program.daily_dose_mcg == D("660") and program.ordered_by == physician and program.entered_by == nurse
    assert program.concentration_mcg_per_ml == D("2000")
    assert PumpProjection.objects.get(pump=pump).refill_due_on < date(2026, 4, 29)


@pytest.mark.django_db
def test_nurses_dose_change_without_a_physician_is_refused_beside_the_field(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        text = client.post(reverse("program-change", args=[pump.pk]), dose_data()).content.decode()
    error_beside(text, "ordered_by", "Name the physician who ordered this dose change.")
    assert "The dose change was not saved." in text
    assert 'value="660"' in field_tag(text, "daily_dose_mcg")  # nothing typed is lost
    assert Program.objects.filter(pump=pump).count() == 1


@pytest.mark.django_db
def test_physicians_own_dose_change_needs_no_other_name(client, physician, pump):
    client.force_login(physician)
    with time_machine.travel(DAY, tick=False):
        response = client.post(reverse("program-change", args=[pump.pk]), dose_data())
    assert response.status_code == 302
    assert Program.objects.filter(pump=pump).count() == 2


@pytest.mark.django_db
def test_dose_change_refusals_show_beside_their_fields(client, nurse, physician, pump):
    client.force_login(nurse)
    url = reverse("program-change", args=[pump.pk])
    with time_machine.travel(DAY, tick=False):
        too_big = client.post(url, dose_data(daily_dose_mcg="900", ordered_by=physician.pk)).content.decode()
        zero = client.post(url, dose_data(daily_dose_mcg="0", ordered_by=physician.pk)).content.decode()
        hard = client.post(
            url, dose_data(daily_dose_mcg="2900", bolus_mcg_per_day="200", ordered_by=physician.pk)
        ).content.decode()
        early = client.post(url, dose_data(effective_at="2026-01-01T09:00", ordered_by=physician.pk)).content.decode()
        future = client.post(url, dose_data(effective_at="2026-03-01T09:00", ordered_by=physician.pk)).content.decode()
    error_beside(too_big, "dose_change_confirmed", "confirm the new dose")
    error_beside(zero, "stop_reason", "A zero dose stops therapy")
    error_beside(hard, "daily_dose_mcg", "above the hard limit")
    error_beside(early, "effective_at", "cannot start before the pump")
    error_beside(future, "effective_at", "in the future")
    assert Program.objects.filter(pump=pump).count() == 1


@pytest.mark.django_db
def test_a_superuser_is_not_an_ordering_physician_choice(client, nurse, superuser, pump):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        text = client.post(
            reverse("program-change", args=[pump.pk]), dose_data(ordered_by=superuser.pk)
        ).content.decode()
    error_beside(text, "ordered_by", "Select a valid choice")
    assert Program.objects.filter(pump=pump).count() == 1


@pytest.mark.django_db
def test_stop_for_an_mri_with_a_reason_is_recorded(client, nurse, physician, pump):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        response = client.post(
            reverse("program-change", args=[pump.pk]),
            dose_data(daily_dose_mcg="0", ordered_by=physician.pk, stop_reason="MRI on 2026-02-03"),
        )
    assert response.status_code == 302
    assert PumpProjection.objects.get(pump=pump).is_stopped


@pytest.mark.django_db
def test_dose_preview_shows_the_new_due_date_and_stores_nothing(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        text = client.post(reverse("program-preview", args=[pump.pk]), dose_data(daily_dose_mcg="900")).content.decode()
    assert "<html" not in text
    assert "currently due 2026-04-29" in text
    assert "0.4500 mL/day" in text  # 900 mcg/day ÷ 2000 mcg/mL
    assert "600 → 900 mcg/day (50%)" in text and "tick the confirmation" in text
    assert Program.objects.filter(pump=pump).count() == 1


@pytest.mark.django_db
def test_dose_preview_agrees_with_the_saved_change(client, nurse, physician, pump):
    client.force_login(nurse)
    data = dose_data(daily_dose_mcg="700", ordered_by=physician.pk)
    with time_machine.travel(DAY, tick=False):
        preview = client.post(reverse("program-preview", args=[pump.pk]), data).content.decode()
        client.post(reverse("program-change", args=[pump.pk]), data)
    projection = PumpProjection.objects.get(pump=pump)
    assert f"{projection.refill_due_on:%Y-%m-%d}" in re.search(r'id="preview-due">(.*?)<', preview).group(1)


@pytest.mark.django_db
def test_pump_settings_change_through_the_service_with_history(client, clinic, nurse, pump):
    other = member(clinic, Role.NURSE, username="nurse2", first_name="Noor", last_name="Second")
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        form = client.get(reverse("pump-edit", args=[pump.pk])).content.decode()
        assert 'value="2"' in field_tag(form, "lra_ml")
        assert 'name="flow_rate_ml_per_day"' not in form  # programmable pump
        response = client.post(
            reverse("pump-edit", args=[pump.pk]), {"assigned_nurse": other.pk, "lra_ml": "4", "eri_on": "2031-06-01"}
        )
    assert response.status_code == 302
    pump.refresh_from_db()
    assert pump.assigned_nurse == other and pump.lra_ml == D("4") and pump.eri_on == date(2031, 6, 1)
    assert pump.history.order_by("-history_id").first().history_user == nurse
    # A higher alarm threshold brings the alarm (and so the due date) earlier.
    assert PumpProjection.objects.get(pump=pump).refill_due_on < date(2026, 4, 29)


@pytest.mark.django_db
def test_pump_settings_refusals_show_beside_their_fields(client, clinic, nurse, clinic_admin, pump):
    client.force_login(nurse)
    too_high = client.post(reverse("pump-edit", args=[pump.pk]), {"lra_ml": "45"}).content.decode()
    error_beside(too_high, "lra_ml", "The alarm threshold must be below the reservoir")
    admin = client.post(
        reverse("pump-edit", args=[pump.pk]), {"assigned_nurse": clinic_admin.pk, "lra_ml": "3"}
    ).content.decode()
    error_beside(admin, "assigned_nurse", "Select a valid choice")  # an admin is not care staff
    assert 'value="3"' in field_tag(admin, "lra_ml")
    pump.refresh_from_db()
    assert pump.lra_ml == D("2.00") and pump.assigned_nurse is None


@pytest.mark.django_db
def test_constant_flow_pump_settings_show_and_require_the_flow_rate(client, clinic, nurse):
    codman = pump_model("3000 30 mL", manufacturer="Codman")
    pump = PumpFactory(patient=PatientFactory(clinic=clinic), pump_model=codman, flow_rate_ml_per_day=D("0.3"))
    client.force_login(nurse)
    form = client.get(reverse("pump-edit", args=[pump.pk])).content.decode()
    assert 'value="0.3"' in field_tag(form, "flow_rate_ml_per_day")
    text = client.post(
        reverse("pump-edit", args=[pump.pk]), {"lra_ml": "2", "flow_rate_ml_per_day": ""}
    ).content.decode()
    error_beside(text, "flow_rate_ml_per_day", "A constant-flow pump needs its measured flow rate")
