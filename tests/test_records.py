"""Database constraints, history with its actor, and the refill-log import."""

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from patients.models import Patient, Program, Pump, RefillVisit

from .factories import PatientFactory, PumpFactory, pump_model

PHX = ZoneInfo("America/Phoenix")


def refused(callable_):
    with pytest.raises(IntegrityError), transaction.atomic():
        callable_()


@pytest.mark.django_db
def test_database_refuses_duplicate_mrn_in_a_clinic_and_duplicate_serial_per_model(clinic, other_clinic):
    PatientFactory(clinic=clinic, mrn="M1")
    PatientFactory(clinic=other_clinic, mrn="M1")  # another clinic may reuse it
    refused(lambda: PatientFactory(clinic=clinic, mrn="M1"))
    PumpFactory(serial_number="S1")
    PumpFactory(serial_number="S1", pump_model=pump_model("SynchroMed II 20 mL"))
    refused(lambda: PumpFactory(serial_number="S1"))


@pytest.mark.django_db
def test_database_refuses_overfill_negative_volume_and_zero_concentration(clinic):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic))
    at = datetime(2026, 1, 5, 9, tzinfo=PHX)

    def visit(**overrides):
        program = Program.objects.create(
            pump=pump, effective_at=at, concentration_mcg_per_ml=D(500), daily_dose_mcg=D(100)
        )
        fields = {
            "pump": pump,
            "performed_at": at,
            "reservoir_ml": D(40),
            "aspirated_ml": D(0),
            "volume_added_ml": D(40),
            "concentration_mcg_per_ml": D(500),
            "program": program,
        }
        fields.update(overrides)
        return RefillVisit.objects.create(**fields)

    refused(lambda: visit(volume_added_ml=D("40.5")))
    refused(lambda: visit(volume_added_ml=D(-1)))  # zero is allowed: an MRI empties the reservoir
    refused(lambda: visit(aspirated_ml=D(-1)))
    refused(lambda: visit(concentration_mcg_per_ml=D(0)))
    refused(lambda: visit(discrepancy=True, discrepancy_reason=""))
    refused(
        lambda: Program.objects.create(
            pump=pump, effective_at=at, concentration_mcg_per_ml=D(500), daily_dose_mcg=D(0), stop_reason=""
        )
    )
    assert visit().pk


@pytest.mark.django_db
def test_database_refuses_a_pump_marked_explanted_without_a_date(clinic):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic))
    refused(lambda: Pump.objects.filter(pk=pump.pk).update(status="explanted"))


@pytest.mark.django_db
def test_users_are_deactivated_never_deleted(db):
    from .factories import UserFactory

    former = UserFactory(username="former-nurse")  # even one who never joined a clinic
    with pytest.raises(PermissionError), transaction.atomic():
        former.delete()
    assert get_user_model().objects.filter(pk=former.pk).exists()


@pytest.mark.django_db
def test_import_of_a_refill_log_is_recorded_by_the_system_user(clinic, tmp_path):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic, mrn="IMP-1"), serial_number="IMPSN")
    log = tmp_path / "log.csv"
    log.write_text(
        "clinic,mrn,pump_serial,performed_at,aspirated_ml,volume_added_ml,concentration_mcg_per_ml,daily_dose_mcg\n"
        f"{clinic.name},IMP-1,IMPSN,2026-04-20T09:00:00-07:00,8.5,40,2000,600\n"
        f"{clinic.name},IMP-1,IMPSN,2026-01-05T09:00:00-07:00,0,40,2000,600\n"
    )
    call_command("import_refills", str(log))
    refills = list(RefillVisit.objects.filter(pump=pump).order_by("performed_at"))
    assert [r.expected_residual_ml for r in refills] == [None, D("8.50")]
    assert {r.history.get().history_user.username for r in refills} == {"itb-system"}
    assert Patient.objects.get(mrn="IMP-1").history.count() == 1


@pytest.mark.django_db
def test_import_with_one_bad_row_stores_nothing(clinic, tmp_path, capsys):
    PumpFactory(patient=PatientFactory(clinic=clinic, mrn="IMP-2"), serial_number="IMPSN2")
    log = tmp_path / "log.csv"
    log.write_text(
        "clinic,mrn,pump_serial,performed_at,aspirated_ml,volume_added_ml,concentration_mcg_per_ml,daily_dose_mcg\n"
        f"{clinic.name},IMP-2,IMPSN2,2026-01-05T09:00:00-07:00,0,40,2000,600\n"
        f"{clinic.name},IMP-2,IMPSN2,2026-04-20T09:00:00,8.5,41,2000,600\n"
    )
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_refills", str(log))
    assert "performed_at: give the UTC offset" in capsys.readouterr().err
    assert not RefillVisit.objects.exists()
