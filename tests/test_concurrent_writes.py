"""Concurrent care writes on PostgreSQL (issue 9, items 3 and 7): each thread has its own
connection, and the interleaving is forced, not left to timing: thread A stops inside its
transaction (after it locked its pump) until thread B has done what the test is about."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from clinics.models import Role
from patients import services
from patients.imports import read_table
from patients.models import CaseloadImport, Patient, Pump, RefillVisit
from patients.services import caseload
from patients.services import refills as refill_service

from .factories import WORKED_EXAMPLE_FILL, filled_pump, member
from .test_caseload_import import NOW, caseload_row, csv_bytes

WAIT = 20  # seconds: a hung test fails instead of stalling the run

# serialized_rollback: restores the catalogues a transactional flush wipes.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def run_both(first, second):
    """Run ``first`` in thread "A" and ``second`` in thread "B"; return their results (or exceptions)."""
    results = {}

    def run(name, work):
        try:
            results[name] = work()
        except BaseException as exc:  # reported by the test, beside the other thread's outcome
            results[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=pair, name=pair[0]) for pair in (("A", first), ("B", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * WAIT)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return results["A"], results["B"]


def pause_a_inside_its_transaction(monkeypatch, until):
    """Thread A, once it holds its pump lock (the refill checks run after it), lets B start and
    waits for ``until()`` before going on to commit."""
    b_may_start = threading.Event()
    original = refill_service._refill_errors

    def checks(*args, **kwargs):
        if threading.current_thread().name == "A":
            b_may_start.set()
            deadline = time.monotonic() + WAIT
            while not until() and time.monotonic() < deadline:
                time.sleep(0.05)
        return original(*args, **kwargs)

    monkeypatch.setattr(refill_service, "_refill_errors", checks)
    return b_may_start


def someone_waits_for_a_lock() -> bool:
    with connections["default"].cursor() as cursor:  # the main thread's own connection
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def test_two_nurses_amending_one_refill_at_once_both_keep_their_change(clinic, nurse, monkeypatch):
    """A corrects the notes while B corrects the lot: B waits for A's lock, then reads the refill
    as A left it, so neither change is lost and the history blames nobody for a revert."""
    pump = filled_pump(clinic, nurse)
    refill = pump.refills.get()
    b_may_start = pause_a_inside_its_transaction(monkeypatch, until=someone_waits_for_a_lock)
    now = WORKED_EXAMPLE_FILL + timedelta(days=1)

    def amend_notes():
        return services.amend_refill(
            refill=refill, actor=nurse, amend_reason="notes were left out", notes="Site clean, no swelling.", now=now
        )

    def amend_lot():
        assert b_may_start.wait(WAIT)
        return services.amend_refill(refill=refill, actor=nurse, amend_reason="lot misread", drug_lot="LOT-B", now=now)

    a, b = run_both(amend_notes, amend_lot)

    assert not isinstance(a, BaseException), a
    assert not isinstance(b, BaseException), b
    refill = RefillVisit.objects.get(pk=refill.pk)
    assert (refill.notes, refill.drug_lot) == ("Site clean, no swelling.", "LOT-B")
    latest = refill.history.order_by("-history_id").first()
    assert (latest.notes, latest.drug_lot) == ("Site clean, no swelling.", "LOT-B")


def test_writes_to_two_pumps_of_the_same_model_do_not_wait_for_each_other(clinic, nurse, monkeypatch):
    """FOR UPDATE over the pump's joins would also lock the shared pump-model row (and patient,
    clinic): B, with a lock timeout of 1 s, would fail while A holds its transaction open."""
    first, second = filled_pump(clinic, nurse), filled_pump(clinic, nurse)
    assert first.pump_model_id == second.pump_model_id
    b_done = threading.Event()
    b_may_start = pause_a_inside_its_transaction(monkeypatch, until=b_done.is_set)
    at = WORKED_EXAMPLE_FILL + timedelta(days=60)

    def refill(pump):
        return services.record_refill(
            pump=pump,
            actor=nurse,
            performed_at=at,
            aspirated_ml=services.expected_residual_ml(pump, at),
            volume_added_ml=Decimal(40),
            concentration_mcg_per_ml=Decimal(2000),
            daily_dose_mcg=Decimal(600),
            now=at,
        )

    def refill_second_with_a_lock_timeout():
        assert b_may_start.wait(WAIT)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '1s'")
                return refill(second)
        finally:
            b_done.set()

    a, b = run_both(lambda: refill(first), refill_second_with_a_lock_timeout)

    assert not isinstance(b, BaseException), f"B waited for A's locks: {b!r}"
    assert not isinstance(a, BaseException), a
    assert first.refills.count() == second.refills.count() == 2


def test_two_admins_importing_the_same_mrn_at_once_one_file_is_stored_and_the_other_is_told_why(
    clinic, clinic_admin, physician, monkeypatch
):
    """Two admins import overlapping files (both name CL-00001) at the same moment: both dry-run
    checks pass (neither sees the other's rows), then both store. The unique key makes one INSERT
    wait for the other transaction and fail once it commits: that import answers with the clinic's
    words, not a 500, and stores nothing of its file (not even its other row)."""
    colleague = member(clinic, Role.CLINIC_ADMIN, username="clinicadmin2")
    both_checked = threading.Barrier(2, timeout=WAIT)
    store = caseload.store_patients

    def store_once_both_are_checked(*args, **kwargs):
        both_checked.wait()  # both threads planned against a caseload without the other's rows
        return store(*args, **kwargs)

    monkeypatch.setattr(caseload, "store_patients", store_once_both_are_checked)

    def import_file(admin, numbers):
        rows = read_table(csv_bytes([caseload_row(i, physician) for i in numbers]), "caseload.csv")
        return caseload.import_caseload(clinic=clinic, actor=admin, rows=rows, commit=True, now=NOW)

    a, b = run_both(lambda: import_file(clinic_admin, (1, 2)), lambda: import_file(colleague, (1, 3)))

    assert not isinstance(a, BaseException), a
    assert not isinstance(b, BaseException), b
    assert sorted([a.committed, b.committed]) == [False, True]
    stored, told = (a, b) if a.committed else (b, a)
    assert told.collision == (
        "Another import or a colleague added MRN CL-00001 while this one ran; nothing from this file was stored. "
        "Run the dry run again."
    )
    assert not stored.collision
    stored_mrns = {"CL-00001", "CL-00002"} if a.committed else {"CL-00001", "CL-00003"}
    assert set(Patient.objects.values_list("mrn", flat=True)) == stored_mrns
    assert Pump.objects.count() == RefillVisit.objects.count() == 2
    assert CaseloadImport.objects.get().imported_by == (clinic_admin if a.committed else colleague)
