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


@pytest.mark.django_db
def test_the_services_judge_check_constraints_in_python_exactly_as_the_database_does(clinic):
    """The services' full_clean evaluates check constraints in Python (no query each): it must
    refuse and pass exactly the rows the database's own evaluation would, NULLs included."""
    from django.core.exceptions import ValidationError
    from django.db.models import CheckConstraint
    from django.test.utils import CaptureQueriesContext

    from patients.models import PumpModel
    from patients.services.common import _check_constraint, _q_holds

    model = pump_model()
    patient = PatientFactory(clinic=clinic)
    at = datetime(2026, 1, 5, 9, tzinfo=PHX)
    day = at.date()

    def pump(**fields):
        values = {"serial_number": "S", "implanted_on": day, "lra_ml": D("2"), **fields}
        return Pump(patient=patient, pump_model=model, **values)

    def program(**fields):
        values = {"effective_at": at, "concentration_mcg_per_ml": D("2000"), "daily_dose_mcg": D("600"), **fields}
        return Program(**values)

    def visit(**fields):
        values = {"performed_at": at, "reservoir_ml": D("40"), "aspirated_ml": D("0"), "volume_added_ml": D("40")}
        return RefillVisit(concentration_mcg_per_ml=D("2000"), **{**values, **fields})

    cases = [
        pump(),
        pump(lra_ml=D("-1")),
        pump(lra_ml=None),
        pump(flow_rate_ml_per_day=D("0")),
        pump(flow_rate_ml_per_day=D("-0.5")),
        pump(flow_rate_ml_per_day=D("0.4")),
        pump(explanted_on=day.replace(year=2025), status="explanted"),
        pump(explanted_on=day.replace(year=2027), status="explanted"),
        pump(status="explanted"),
        pump(explanted_on=day),
        Patient(clinic=clinic, mrn="X", status="active"),
        Patient(clinic=clinic, mrn="X", status="on holiday"),
        program(),
        program(daily_dose_mcg=D("0")),
        program(daily_dose_mcg=D("0"), stop_reason="MRI, reservoir emptied"),
        program(bolus_mcg_per_day=D("-1")),
        program(concentration_mcg_per_ml=D("0")),
        visit(),
        visit(volume_added_ml=D("45")),
        visit(aspirated_ml=D("-1")),
        visit(aspirated_ml=D("41")),
        visit(discrepancy=True),
        visit(discrepancy=True, discrepancy_reason="pocket fill suspected"),
        PumpModel(manufacturer="M", name="N", reservoir_ml=D("40"), default_lra_ml=D("40")),
        PumpModel(manufacturer="M", name="N", reservoir_ml=D("0"), default_lra_ml=D("0")),
    ]

    def passes(check, constraint, obj):
        try:
            check(constraint, obj)
        except ValidationError:
            return False
        return True

    refused = 0
    for obj in cases:
        for constraint in obj._meta.constraints:
            if not isinstance(constraint, CheckConstraint):
                continue
            _q_holds(constraint.condition, obj, set())  # evaluable in Python (else: the database's)
            with CaptureQueriesContext(transaction.get_connection()) as queries:
                in_python = passes(lambda c, o: _check_constraint(c, o, set()), constraint, obj)
            assert not queries.captured_queries
            in_database = passes(lambda c, o: c.validate(type(o), o), constraint, obj)
            assert in_python == in_database, (constraint.name, obj.__dict__)
            refused += not in_database
    assert refused >= 14  # the cases above do break the rules they are about
