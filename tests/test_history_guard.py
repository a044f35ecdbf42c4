"""History is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE on every history table."""

from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from simple_history.models import HistoricalChanges

from clinics.models import Clinic
from clinics.signals import history_tables

from .factories import ClinicFactory

HISTORY_TABLE = Clinic.history.model._meta.db_table  # clinics_historicalclinic


def project_history_models():
    """Every history model of an app that lives in this repository (not an installed package)."""
    root = Path(settings.BASE_DIR).resolve()
    project_labels = {
        config.label
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(root) and ".venv" not in Path(config.path).parts
    }
    return [
        model
        for model in apps.get_models()
        if model._meta.app_label in project_labels and issubclass(model, HistoricalChanges)
    ]


def test_history_tables_cover_every_history_model_of_the_project():
    expected = sorted(model._meta.db_table for model in project_history_models())
    assert HISTORY_TABLE in expected
    assert {"clinics", "patients"} <= {model._meta.app_label for model in project_history_models()}
    assert history_tables() == expected


@pytest.fixture
def history_row(db):
    clinic = ClinicFactory(name="Guarded Test Clinic")
    row = Clinic.history.model.objects.get(id=clinic.pk, history_type="+")
    return clinic, row


def _refused(attempt):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        attempt()


@pytest.mark.postgres
def test_every_history_table_has_the_guard_trigger(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname = 'itb_history_append_only' AND NOT t.tgisinternal"
        )
        guarded = sorted(name for (name,) in cursor.fetchall())
    assert guarded == history_tables()


@pytest.mark.postgres
def test_orm_update_and_delete_of_history_rows_are_refused(history_row):
    _clinic, row = history_row
    rows = Clinic.history.model.objects.filter(history_id=row.history_id)
    _refused(lambda: rows.update(name="Rewritten"))
    _refused(lambda: rows.delete())
    _refused(lambda: row.delete())
    row.refresh_from_db()
    assert row.name == "Guarded Test Clinic"


@pytest.mark.postgres
def test_raw_sql_update_and_delete_of_history_rows_are_refused(history_row):
    _clinic, row = history_row

    def sql(statement):
        def run():
            with connection.cursor() as cursor:
                cursor.execute(statement, [row.history_id])

        return run

    _refused(sql(f"UPDATE \"{HISTORY_TABLE}\" SET name = 'Rewritten' WHERE history_id = %s"))
    _refused(sql(f'DELETE FROM "{HISTORY_TABLE}" WHERE history_id = %s'))
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT name FROM "{HISTORY_TABLE}" WHERE history_id = %s', [row.history_id])
        assert cursor.fetchone() == ("Guarded Test Clinic",)


@pytest.mark.postgres
def test_history_still_appends(history_row):
    clinic, _row = history_row
    clinic.name = "Renamed Test Clinic"
    clinic.save()
    assert list(clinic.history.order_by("history_id").values_list("history_type", "name")) == [
        ("+", "Guarded Test Clinic"),
        ("~", "Renamed Test Clinic"),
    ]
