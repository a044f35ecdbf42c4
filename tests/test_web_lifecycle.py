"""Implant, explant, replacement, leaving care and the refill after an empty reservoir from the
staff pages: one service call each, every refusal beside its field with nothing typed lost, and
the pages that show the result (both pumps of a replacement linked, the handover summary)."""

import re
from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from alerts.engine import run_scan
from alerts.models import Alert, AlertKind
from patients.models import Patient, Pump, PumpProjection, RefillVisit

from .factories import PatientFactory, drug_product, filled_pump, pump_model
from .test_web_patient_records import error_beside, field_tag

PHX = ZoneInfo("America/Phoenix")
DAY = datetime(2026, 2, 2, 10, tzinfo=PHX)


def implant_data(**overrides):
    data = {
        "pump_model": str(pump_model().pk),
        "serial_number": "NGV-100",
        "implanted_on": "2026-02-02",
        "lra_ml": "",
        "assigned_nurse": "",
        "eri_on": "",
        "flow_rate_ml_per_day": "",
        "performed_at": "2026-02-02T09:00",
        "volume_added_ml": "40",
        "drug_product": str(drug_product("2000").pk),
        "concentration_mcg_per_ml": "2000",
        "drug_lot": "LOT-I1",
        "drug_expires_on": "",
        "daily_dose_mcg": "150",
        "bolus_mcg_per_day": "0",
        "ordered_by": "",
        "notes": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


@pytest.fixture
def patient(clinic):
    return PatientFactory(clinic=clinic, family_name="Implantee", sci_at_or_above_t6=True)


@pytest.mark.django_db
def test_nurse_implants_a_pump_with_its_first_fill_in_one_step(client, nurse, physician, patient):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        form = client.get(reverse("pump-implant", args=[patient.pk])).content.decode()
        assert 'value="2026-02-02"' in field_tag(form, "implanted_on")
        response = client.post(
            reverse("pump-implant", args=[patient.pk]),
            implant_data(ordered_by=physician.pk, assigned_nurse=nurse.pk),
        )
    pump = Pump.objects.get(serial_number="NGV-100")
    assert response.status_code == 302 and response["Location"] == reverse("pump-detail", args=[pump.pk])
    assert pump.lra_ml == D("2.00") and pump.assigned_nurse == nurse  # the model's default threshold
    refill = pump.refills.get()
    assert refill.expected_residual_ml is None and refill.program.ordered_by == physician
    # 180 days of drug from 2026-02-02 09:00 → 2026-08-01, minus 7 + 3 days (high risk).
    assert PumpProjection.objects.get(pump=pump).refill_due_on == date(2026, 7, 22)


@pytest.mark.django_db
def test_implant_refusals_show_beside_their_fields_and_store_nothing(client, clinic, nurse, patient):
    filled_pump(clinic, nurse, serial_number="NGV-100")
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        text = client.post(
            reverse("pump-implant", args=[patient.pk]), implant_data(notes="Implanted in theatre 3")
        ).content.decode()
        over = client.post(
            reverse("pump-implant", args=[patient.pk]), implant_data(serial_number="NGV-200", volume_added_ml="41")
        ).content.decode()
        future = client.post(
            reverse("pump-implant", args=[patient.pk]),
            implant_data(serial_number="NGV-201", implanted_on="2026-03-01"),
        ).content.decode()
    error_beside(text, "serial_number", "already registered")
    error_beside(text, "ordered_by", "physician")  # a nurse's first fill names the ordering physician
    assert "The implant was not saved." in text
    assert 'value="NGV-100"' in field_tag(text, "serial_number") and "Implanted in theatre 3" in text
    error_beside(over, "volume_added_ml", "never overfill")
    error_beside(future, "implanted_on", "cannot be in the future")
    assert not patient.pumps.exists()


@pytest.mark.django_db
def test_constant_flow_implant_needs_its_flow_rate_beside_the_field(client, nurse, physician, patient):
    codman = pump_model("3000 30 mL", manufacturer="Codman")
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        text = client.post(
            reverse("pump-implant", args=[patient.pk]),
            implant_data(pump_model=codman.pk, volume_added_ml="30", daily_dose_mcg="", ordered_by=physician.pk),
        ).content.decode()
    error_beside(text, "flow_rate_ml_per_day", "flow rate")
    assert not patient.pumps.exists()


@pytest.mark.django_db
def test_implant_preview_shows_the_due_date_and_stores_nothing(client, nurse, patient):
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        text = client.post(reverse("pump-implant-preview", args=[patient.pk]), implant_data()).content.decode()
    assert "<html" not in text
    assert "0.0750 mL/day" in text and "Wed 2026-07-22" in text
    assert not Pump.objects.exists() and not RefillVisit.objects.exists()


@pytest.mark.django_db
def test_replacement_links_both_pumps_and_checks_the_dose_against_the_old_one(client, clinic, nurse, physician):
    old = filled_pump(clinic, nurse, serial_number="OLD-1")  # 600 mcg/day
    client.force_login(nurse)
    url = reverse("pump-replace", args=[old.pk])
    with time_machine.travel(DAY, tick=False):
        form = client.get(url).content.decode()
        assert 'value="600"' in field_tag(form, "daily_dose_mcg")  # the old pump's dose carries on
        jump = client.post(
            url, implant_data(explanted_on="2026-02-02", daily_dose_mcg="900", ordered_by=physician.pk)
        ).content.decode()
        response = client.post(
            url, implant_data(explanted_on="2026-02-02", daily_dose_mcg="600", ordered_by=physician.pk)
        )
        error_beside(jump, "dose_change_confirmed", "confirm")
        new = Pump.objects.get(serial_number="NGV-100")
        assert response.status_code == 302 and new.replaces == old
        old.refresh_from_db()
        assert old.status == Pump.Status.EXPLANTED and old.explant_reason == "replacement"
        page = client.get(reverse("patient-detail", args=[old.patient.pk])).content.decode()
        pump_page = client.get(reverse("pump-detail", args=[new.pk])).content.decode()
    assert "replaced by" in page and "replaces" in page
    assert reverse("pump-detail", args=[old.pk]) in pump_page and "Replaces" in pump_page


@pytest.mark.django_db
def test_explant_for_infection_puts_the_patient_on_the_no_pump_list(client, clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"family_name": "Infected"})
    client.force_login(nurse)
    with time_machine.travel(DAY, tick=False):
        early = client.post(
            reverse("pump-explant", args=[pump.pk]), {"explanted_on": "2020-01-01", "reason": "infection"}
        ).content.decode()
        error_beside(early, "explanted_on", "before it was implanted")
        no_reason = client.post(
            reverse("pump-explant", args=[pump.pk]), {"explanted_on": "2026-02-01"}
        ).content.decode()
        error_beside(no_reason, "reason", "required")
        response = client.post(
            reverse("pump-explant", args=[pump.pk]),
            {"explanted_on": "2026-02-01", "reason": "infection", "notes": "Pocket infection"},
        )
        assert response.status_code == 302
        listing = client.get(reverse("patients-without-pump")).content.decode()
        worklist = client.get(reverse("home")).content.decode()
    pump.refresh_from_db()
    assert pump.status == Pump.Status.EXPLANTED and pump.explant_notes == "Pocket infection"
    assert "Infected" in listing and "Infected" not in worklist


@pytest.mark.django_db
def test_transfer_from_the_status_page_takes_the_pump_off_the_worklist_and_resolves_its_alert(client, clinic, nurse):
    pump = filled_pump(clinic, nurse, patient={"family_name": "Mover"})
    overdue = datetime(2026, 5, 1, 10, tzinfo=PHX)
    with time_machine.travel(overdue, tick=False):
        run_scan()
        assert Alert.objects.filter(pump=pump).open().exists()
        client.force_login(nurse)
        missing = client.post(
            reverse("patient-status", args=[pump.patient.pk]),
            {"status": "transferred", "effective_on": "2026-05-01", "reason": "Moved away"},
        ).content.decode()
        error_beside(missing, "transferred_to", "receiving clinic")
        ahead = client.post(
            reverse("patient-status", args=[pump.patient.pk]),
            {"status": "deceased", "effective_on": "2026-05-09", "reason": "Reported by family"},
        ).content.decode()
        error_beside(ahead, "effective_on", "today or earlier")
        assert 'value="Reported by family"' in ahead or "Reported by family" in ahead
        response = client.post(
            reverse("patient-status", args=[pump.patient.pk]),
            {
                "status": "transferred",
                "effective_on": "2026-05-01",
                "reason": "Moved away",
                "transferred_to": "Tucson Clinic",
                "accepted_first_refill_on": "2026-05-04",
            },
        )
        assert response.status_code == 302
        worklist = client.get(reverse("home")).content.decode()
        summary = client.get(reverse("handover-summary", args=[pump.pk])).content.decode()
    patient = Patient.objects.get(pk=pump.patient.pk)
    assert patient.status == Patient.Status.TRANSFERRED and patient.transferred_to == "Tucson Clinic"
    refill_alert = Alert.objects.get(pump=pump, kind=AlertKind.REFILL_OVERDUE)
    assert refill_alert.resolved_at is not None  # resolved with the transfer's reason
    # What stays open is the note that tells the people the pump no longer alerts.
    assert set(Alert.objects.filter(pump=pump).open().values_list("kind", flat=True)) == {AlertKind.CARE_ENDED}
    assert "Mover" not in worklist
    assert "Tucson Clinic" in summary and "2000 mcg/mL" in summary and "600 mcg/day" in summary
    assert "Mon 2026-05-04" in summary and "2026-04-29" in summary


@pytest.mark.django_db
def test_clinic_admin_may_change_a_patients_status(client, clinic, clinic_admin, nurse):
    pump = filled_pump(clinic, nurse)
    client.force_login(clinic_admin)
    with time_machine.travel(DAY, tick=False):
        response = client.post(
            reverse("patient-status", args=[pump.patient.pk]),
            {"status": "deceased", "effective_on": "2026-02-01", "reason": "Death certificate received"},
        )
    assert response.status_code == 302
    assert Patient.objects.get(pk=pump.patient.pk).status == Patient.Status.DECEASED


# --- the refill after a projected empty reservoir ---------------------------------------------------------


def late_refill(**overrides):
    # The worked example runs empty at 2026-05-18 17:00; this refill is 2 days later.
    data = {
        "performed_at": "2026-05-20T17:00",
        "aspirated_ml": "0",
        "volume_added_ml": "40",
        "drug_product": str(drug_product("2000").pk),
        "concentration_mcg_per_ml": "2000",
        "daily_dose_mcg": "600",
        "bolus_mcg_per_day": "0",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
def test_refill_after_empty_says_so_before_saving_and_asks_for_the_assessment(client, clinic, nurse):
    pump = filled_pump(clinic, nurse)
    client.force_login(nurse)
    with time_machine.travel(datetime(2026, 5, 20, 17, 30, tzinfo=PHX), tick=False):
        page = client.get(reverse("refill-create", args=[pump.pk])).content.decode()
        preview = client.post(reverse("refill-preview", args=[pump.pk]), late_refill()).content.decode()
    for text in (page, preview):
        assert "Projected empty since Mon 2026-05-18 17:00" in text
        assert "Itching without a rash" in text
    assert 'hx-swap-oob="true"' in preview
    assert not RefillVisit.objects.filter(performed_at__gt=datetime(2026, 5, 1, tzinfo=PHX)).exists()


@pytest.mark.django_db
def test_long_empty_restart_needs_the_physicians_order_beside_the_field(client, clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    client.force_login(nurse)
    with time_machine.travel(datetime(2026, 5, 20, 17, 30, tzinfo=PHX), tick=False):
        refused = client.post(reverse("refill-create", args=[pump.pk]), late_refill(withdrawal_signs="itching"))
        text = refused.content.decode()
        assert "restarting needs a physician" in text
        error_beside(text, "ordered_by", "physician")
        itching = re.search(r'<input[^>]*value="itching"[^>]*>', text).group(0)
        assert "checked" in itching  # the ticked sign is kept
        saved = client.post(
            reverse("refill-create", args=[pump.pk]),
            late_refill(withdrawal_signs="itching", ordered_by=physician.pk),
        )
    assert saved.status_code == 302
    refill = RefillVisit.objects.latest("performed_at")
    assert refill.withdrawal_signs == ["itching"] and refill.empty_since is not None
    assert Alert.objects.filter(pump=pump, kind="pump_alarm").open().exists()


@pytest.mark.django_db
def test_refill_elsewhere_names_the_outside_prescriber(client, clinic, nurse):
    pump = filled_pump(clinic, nurse)
    client.force_login(nurse)
    with time_machine.travel(datetime(2026, 4, 20, 10, tzinfo=PHX), tick=False):
        response = client.post(
            reverse("refill-create", args=[pump.pk]),
            late_refill(
                performed_at="2026-04-20T09:00",
                aspirated_ml="8.5",
                daily_dose_mcg="650",
                performed_elsewhere="Banner Hospital, ward 4",
                outside_prescriber="Dr. Field (Banner)",
            ),
        )
    assert response.status_code == 302
    assert RefillVisit.objects.latest("performed_at").program.outside_prescriber == "Dr. Field (Banner)"


@pytest.mark.django_db
def test_nurses_amendment_that_changes_the_dose_names_the_physician_beside_the_field(client, clinic, nurse, physician):
    pump = filled_pump(clinic, nurse, refill={"ordered_by": physician})
    refill = pump.refills.get()
    client.force_login(nurse)
    data = {
        "amend_reason": "Dose typed wrong",
        "performed_at": "2026-01-05T09:00",
        "aspirated_ml": "0",
        "volume_added_ml": "40",
        "concentration_mcg_per_ml": "2000",
        "daily_dose_mcg": "650",
        "bolus_mcg_per_day": "0",
    }
    with time_machine.travel(DAY, tick=False):
        text = client.post(reverse("refill-amend", args=[refill.pk]), data).content.decode()
        error_beside(text, "ordered_by", "physician")
        assert 'value="650"' in field_tag(text, "daily_dose_mcg")
        ok = client.post(reverse("refill-amend", args=[refill.pk]), {**data, "ordered_by": physician.pk})
    assert ok.status_code == 302
    refill.refresh_from_db()
    assert refill.program.daily_dose_mcg == D("650")
