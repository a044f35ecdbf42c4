"""The migration that closes weekends by default moves every stored due date (patients 0004)."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

PHOENIX = ZoneInfo("America/Phoenix")
BEFORE = [("clinics", "0003_two_factor_and_account_events"), ("patients", "0003_scan_indexes")]
AFTER = [("clinics", "0004_clinic_calendar"), ("patients", "0005_unmoved_due_date_required")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def start(day):
    return datetime.combine(day, time.min, tzinfo=PHOENIX)


def stored_projection(apps, clinic, serial, due_on):
    Patient = apps.get_model("patients", "Patient")
    Pump = apps.get_model("patients", "Pump")
    PumpModel = apps.get_model("patients", "PumpModel")
    PumpProjection = apps.get_model("patients", "PumpProjection")
    patient = Patient.objects.create(
        clinic=clinic, mrn=serial, given_name="Test", family_name=serial, birth_date=date(1970, 1, 1)
    )
    # The catalogue rows of the data migration may have been flushed by an earlier transactional test.
    model, _ = PumpModel.objects.get_or_create(
        manufacturer="Medtronic",
        name="SynchroMed II 40 mL",
        defaults={"reservoir_ml": Decimal(40), "default_lra_ml": Decimal(2)},
    )
    pump = Pump.objects.create(
        patient=patient,
        pump_model=model,
        serial_number=serial,
        implanted_on=date(2025, 6, 1),
        lra_ml=Decimal("2.0"),
    )
    filled_at = start(due_on) - timedelta(days=100)
    return PumpProjection.objects.create(
        pump=pump,
        computed_at=filled_at,
        filled_at=filled_at,
        reservoir_at_fill_ml=Decimal(40),
        rate_ml_per_day=Decimal("0.3"),
        conservative_factor=Decimal("1.05"),
        drug_expires_at=filled_at + timedelta(days=180),
        refill_due_on=due_on,
        critical_from=start(due_on) + timedelta(days=5),
        overdue_from=start(due_on + timedelta(days=1)),
        due_soon_from=start(due_on - timedelta(days=14)),
        segments=[],
    )


# Transactional (SQLite cannot change its schema inside the test's transaction). ``available_apps``
# naming every app restricts nothing, but makes the closing flush skip post_migrate: no content
# types are re-created for a later serialized-rollback test (the browser tests) to collide with.
@pytest.mark.django_db(transaction=True, available_apps=[app.name for app in apps.get_app_configs()])
def test_migrate_moves_a_stored_sunday_due_date_to_the_friday_before():
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = migrate(BEFORE)
        clinic = old.get_model("clinics", "Clinic").objects.create(name="Migrated Clinic", timezone="America/Phoenix")
        sunday = stored_projection(old, clinic, "SUN-1", date(2026, 11, 29))
        wednesday = stored_projection(old, clinic, "WED-1", date(2026, 11, 25))
        saturday = stored_projection(old, clinic, "SAT-1", date(2026, 12, 5))

        new = migrate(AFTER)
        PumpProjection = new.get_model("patients", "PumpProjection")
        moved = PumpProjection.objects.get(pk=sunday.pk)
        assert moved.unmoved_refill_due_on == date(2026, 11, 29)
        assert moved.refill_due_on == date(2026, 11, 27)
        assert moved.overdue_from == start(date(2026, 11, 28))
        assert moved.due_soon_from == start(date(2026, 11, 13))
        assert moved.critical_from == sunday.critical_from  # the critical window does not move
        assert PumpProjection.objects.get(pk=saturday.pk).refill_due_on == date(2026, 12, 4)
        unchanged = PumpProjection.objects.get(pk=wednesday.pk)
        assert unchanged.refill_due_on == unchanged.unmoved_refill_due_on == date(2026, 11, 25)
        assert unchanged.overdue_from == wednesday.overdue_from

        # And back: the reverse restores the unmoved dates.
        back = migrate(BEFORE)
        assert back.get_model("patients", "PumpProjection").objects.get(pk=sunday.pk).refill_due_on == date(
            2026, 11, 29
        )
    finally:
        migrate(leaves)
