"""The refill form: pre-filled values, the live preview that stores nothing, the service's
rules as field errors, the patient card, amendments, and who may record care."""

import re
from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from patients import services
from patients.models import Program, PumpProjection, RefillVisit

from .factories import PatientFactory, PumpFactory, drug_product, filled_pump, pump_model

PHX = ZoneInfo("America/Phoenix")


def at(*args):
    return datetime(*args, tzinfo=PHX)


REFILL_DAY = at(2026, 4, 20, 9, 30)


@pytest.fixture
def pump(clinic, nurse):
    """The CLINICAL.md worked example: due 2026-04-29; 8.5 mL expected on 2026-04-20 09:00."""
    pump = filled_pump(clinic, nurse, at(2026, 1, 5, 9), refill={"drug_product": drug_product("2000")})
    return pump


def refill_data(**overrides):
    data = {
        "performed_at": "2026-04-20T09:00",
        "aspirated_ml": "8.40",
        "volume_added_ml": "40",
        "drug_product": str(drug_product("2000").pk),
        "concentration_mcg_per_ml": "2000",
        "drug_lot": "LOT-A1",
        "drug_expires_on": "",
        "daily_dose_mcg": "600",
        "bolus_mcg_per_day": "0",
        "ordered_by": "",
        "stop_reason": "",
        "discrepancy_reason": "",
        "performed_elsewhere": "",
        "notes": "",
    }
    data.update(overrides)
    return data


def counts():
    return RefillVisit.objects.count(), Program.objects.count()


@pytest.mark.django_db
def test_refill_form_prefills_expected_residual_and_current_program(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(at(2026, 4, 20, 9), tick=False):
        response = client.get(reverse("refill-create", args=[pump.pk]))
    text = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'name="aspirated_ml" value="8.50"', text)
    assert re.search(r'name="daily_dose_mcg" value="600"', text)
    assert re.search(r'name="performed_at" value="2026-04-20T09:00"', text)  # clinic time, not UTC
    for label in (
        "Residual aspirated (mL)",
        "Volume added — the new reservoir volume (mL)",
        "Concentration (mcg/mL)",
        "Daily dose (mcg/day)",
        "Bolus allowance (mcg/day)",
    ):
        assert label in text
    assert f'hx-post="{reverse("refill-preview", args=[pump.pk])}"' in text
    assert 'hx-trigger="load, input changed delay:400ms' in text


@pytest.mark.django_db
def test_nurse_records_a_refill_and_lands_on_the_patient_card(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(REFILL_DAY, tick=False):
        response = client.post(reverse("refill-create", args=[pump.pk]), refill_data())
    refill = RefillVisit.objects.get(performed_at=at(2026, 4, 20, 9))
    assert response.status_code == 302 and response["Location"] == reverse("refill-card", args=[refill.pk])
    assert refill.performed_by == nurse and refill.drug_lot == "LOT-A1" and refill.expected_residual_ml == D("8.50")
    projection = PumpProjection.objects.get(pump=pump)
    assert projection.refill_due_on > datetime(2026, 4, 29).date()
    with time_machine.travel(REFILL_DAY, tick=False):
        card = client.get(response["Location"]).content.decode()
    assert f"{projection.refill_due_on:%A %-d %B %Y}" in card
    assert f"{projection.lra_at.astimezone(PHX):%A %-d %B %Y}" in card
    assert pump.patient.clinic.phone in card
    assert "Print card" in card


@pytest.mark.django_db
def test_over_capacity_refill_shows_the_field_error_and_stores_nothing(client, nurse, pump):
    client.force_login(nurse)
    before = counts()
    with time_machine.travel(REFILL_DAY, tick=False):
        response = client.post(reverse("refill-create", args=[pump.pk]), refill_data(volume_added_ml="45"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "45.00 mL is more than the reservoir holds (40.00 mL): never overfill." in text
    # The message sits with its field (crispy renders it under the input, marked invalid).
    field = re.search(r'<input[^>]*name="volume_added_ml"[^>]*>', text).group(0)
    assert "is-invalid" in field
    assert counts() == before
    assert PumpProjection.objects.get(pump=pump).filled_at == at(2026, 1, 5, 9)


@pytest.mark.django_db
def test_out_of_tolerance_residual_asks_for_a_reason_on_its_field(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(REFILL_DAY, tick=False):
        refused = client.post(reverse("refill-create", args=[pump.pk]), refill_data(aspirated_ml="4"))
        assert "document the reason" in refused.content.decode()
        assert re.search(
            r'<textarea[^>]*name="discrepancy_reason"[^>]*is-invalid|<textarea[^>]*is-invalid[^>]*name="discrepancy_reason"',
            refused.content.decode(),
        )
        accepted = client.post(
            reverse("refill-create", args=[pump.pk]),
            refill_data(aspirated_ml="4", discrepancy_reason="Pocket fill suspected"),
        )
    assert accepted.status_code == 302
    assert RefillVisit.objects.get(performed_at=at(2026, 4, 20, 9)).discrepancy is True


@pytest.mark.django_db
def test_large_dose_change_needs_the_confirmation_tick(client, nurse, physician, pump):
    client.force_login(nurse)
    with time_machine.travel(REFILL_DAY, tick=False):
        refused = client.post(
            reverse("refill-create", args=[pump.pk]), refill_data(daily_dose_mcg="900", ordered_by=physician.pk)
        )
        assert "confirm the new dose" in refused.content.decode()
        accepted = client.post(
            reverse("refill-create", args=[pump.pk]),
            refill_data(daily_dose_mcg="900", ordered_by=physician.pk, dose_change_confirmed="on"),
        )
    assert accepted.status_code == 302
    assert RefillVisit.objects.get(performed_at=at(2026, 4, 20, 9)).program.ordered_by == physician


@pytest.mark.django_db
def test_compounded_concentration_needs_its_beyond_use_date(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(REFILL_DAY, tick=False):
        response = client.post(
            reverse("refill-create", args=[pump.pk]),
            refill_data(drug_product="", concentration_mcg_per_ml="1500", daily_dose_mcg="600"),
        )
    assert "not a catalogue product (compounded): enter its beyond-use date" in response.content.decode()
    assert RefillVisit.objects.count() == 1


@pytest.mark.django_db
def test_preview_shows_new_dates_and_tolerance_and_stores_nothing(client, nurse, pump):
    client.force_login(nurse)
    before = counts()
    projection_before = PumpProjection.objects.get(pump=pump)
    with time_machine.travel(REFILL_DAY, tick=False):
        response = client.post(
            reverse("refill-preview", args=[pump.pk]), refill_data(aspirated_ml="4"), HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    text = response.content.decode()
    assert "<html" not in text  # a partial for htmx
    assert "Residual out of tolerance" in text and "Expected 8.50 mL ± 2.00 mL" in text
    assert "0.3000 mL/day" in text
    # 40 mL from 2026-04-20 09:00 at 0.3 mL/day: alarm after 126.67 days, empty after 133.33 (clinic time).
    assert "2026-08-25 01:00" in text and "2026-08-31 17:00" in text
    assert counts() == before
    assert PumpProjection.objects.get(pump=pump).computed_at == projection_before.computed_at


@pytest.mark.django_db
def test_preview_agrees_with_the_saved_refill(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(REFILL_DAY, tick=False):
        preview = client.post(reverse("refill-preview", args=[pump.pk]), refill_data()).content.decode()
        client.post(reverse("refill-create", args=[pump.pk]), refill_data())
    projection = PumpProjection.objects.get(pump=pump)
    assert f"{projection.refill_due_on:%Y-%m-%d}" in re.search(r'id="preview-due">(.*?)<', preview).group(1)
    assert f"{projection.conservative_lra_at.astimezone(PHX):%Y-%m-%d %H:%M}" in preview


@pytest.mark.django_db
def test_preview_of_an_over_capacity_fill_warns(client, nurse, pump):
    client.force_login(nurse)
    with time_machine.travel(REFILL_DAY, tick=False):
        text = client.post(
            reverse("refill-preview", args=[pump.pk]), refill_data(volume_added_ml="45")
        ).content.decode()
    assert "Over capacity" in text
    assert RefillVisit.objects.count() == 1


@pytest.mark.django_db
def test_preview_asks_for_missing_values(client, nurse, pump):
    client.force_login(nurse)
    text = client.post(reverse("refill-preview", args=[pump.pk]), refill_data(volume_added_ml="")).content.decode()
    assert "To see the new dates, fill in" in text


@pytest.mark.django_db
def test_clinic_admin_cannot_record_refills(client, clinic_admin, pump):
    client.force_login(clinic_admin)
    with time_machine.travel(REFILL_DAY, tick=False):
        assert client.get(reverse("refill-create", args=[pump.pk])).status_code == 403
        assert client.post(reverse("refill-create", args=[pump.pk]), refill_data()).status_code == 403
        assert client.post(reverse("refill-preview", args=[pump.pk]), refill_data()).status_code == 403
        assert client.get(reverse("pump-detail", args=[pump.pk])).status_code == 200  # reading is allowed
    assert RefillVisit.objects.count() == 1


@pytest.mark.django_db
def test_refill_time_is_read_in_the_clinics_zone(client, other_clinic):
    from clinics.models import Role

    from .factories import member

    chicago_nurse = member(other_clinic, Role.NURSE, username="chicago")
    chicago_doctor = member(other_clinic, Role.PHYSICIAN, username="chicago-dr")  # a first fill is a dose change
    pump = PumpFactory(patient=PatientFactory(clinic=other_clinic), pump_model=pump_model("SynchroMed II 40 mL"))
    client.force_login(chicago_nurse)
    with time_machine.travel(datetime(2026, 3, 2, 12, tzinfo=ZoneInfo("America/Chicago")), tick=False):
        response = client.post(
            reverse("refill-create", args=[pump.pk]),
            refill_data(
                performed_at="2026-03-02T10:15",
                aspirated_ml="0",
                drug_product=str(drug_product("2000").pk),
                ordered_by=str(chicago_doctor.pk),
            ),
        )
    assert response.status_code == 302
    refill = RefillVisit.objects.get(pump=pump)
    assert refill.performed_at == datetime(2026, 3, 2, 10, 15, tzinfo=ZoneInfo("America/Chicago"))


@pytest.mark.django_db
def test_a_time_skipped_by_the_clocks_changing_is_refused(client, other_clinic):
    from clinics.models import Role

    from .factories import member

    chicago_nurse = member(other_clinic, Role.NURSE, username="chicago")
    pump = PumpFactory(patient=PatientFactory(clinic=other_clinic), pump_model=pump_model("SynchroMed II 40 mL"))
    client.force_login(chicago_nurse)
    with time_machine.travel(datetime(2026, 3, 9, 12, tzinfo=ZoneInfo("America/Chicago")), tick=False):
        response = client.post(
            reverse("refill-create", args=[pump.pk]), refill_data(performed_at="2026-03-08T02:30", aspirated_ml="0")
        )
    assert "does not exist in the clinic&#x27;s time zone" in response.content.decode()
    assert not RefillVisit.objects.filter(pump=pump).exists()


@pytest.mark.django_db
def test_amending_a_refill_needs_a_reason_and_keeps_the_original_in_history(client, nurse, pump):
    refill = pump.refills.get()
    client.force_login(nurse)
    url = reverse("refill-amend", args=[refill.pk])
    initial = client.get(url).content.decode()
    assert re.search(r'name="volume_added_ml" value="40.00"', initial)
    data = refill_data(performed_at="2026-01-05T09:00", aspirated_ml="0", volume_added_ml="38", amend_reason="")
    with time_machine.travel(at(2026, 1, 6, 9), tick=False):
        refused = client.post(url, data)
        assert refused.status_code == 200 and "This field is required" in refused.content.decode()
        data["amend_reason"] = "Typed 40, filled 38"
        accepted = client.post(url, data)
    assert accepted.status_code == 302
    refill.refresh_from_db()
    assert refill.volume_added_ml == D("38") and refill.amend_reason == "Typed 40, filled 38"
    assert [h.volume_added_ml for h in refill.history.order_by("history_id")] == [D("40"), D("38")]
    assert refill.performed_at == at(2026, 1, 5, 9)  # unchanged fields are not "amended"


@pytest.mark.django_db
def test_card_of_an_older_refill_points_to_the_latest(client, nurse, pump):
    first = pump.refills.get()
    with time_machine.travel(REFILL_DAY, tick=False):
        services.record_refill(
            pump=pump,
            actor=nurse,
            performed_at=at(2026, 4, 20, 9),
            aspirated_ml=D("8.5"),
            volume_added_ml=D("40"),
            concentration_mcg_per_ml=D("2000"),
            daily_dose_mcg=D("600"),
        )
    client.force_login(nurse)
    text = client.get(reverse("refill-card", args=[first.pk])).content.decode()
    assert "A later refill has been recorded" in text


@pytest.mark.django_db
def test_nurse_amending_the_dose_names_the_ordering_physician_on_the_form(client, nurse, pump):
    from .factories import clinic_physician

    refill = pump.refills.get()
    physician = clinic_physician(pump.patient.clinic)
    client.force_login(nurse)
    url = reverse("refill-amend", args=[refill.pk])
    data = refill_data(performed_at="2026-01-05T09:00", aspirated_ml="0", daily_dose_mcg="650", amend_reason="Typo")
    with time_machine.travel(at(2026, 1, 6, 9), tick=False):
        refused = client.post(url, data)
        assert refused.status_code == 200
        assert "Name the physician who ordered" in refused.content.decode()
        data["ordered_by"] = str(physician.pk)
        assert client.post(url, data).status_code == 302
    refill.refresh_from_db()
    assert (refill.program.daily_dose_mcg, refill.program.ordered_by) == (D("650"), physician)
