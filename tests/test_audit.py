"""Audit for clinic admins: the refill-visit report, its CSV export (logged), record histories as
readable diffs, the access log. A constant number of queries whatever the number of visits."""

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.models import EscalationPolicy, Severity, Webhook
from clinics.access import log_access
from clinics.models import AccessLog, Membership, Role
from patients import services
from patients.models import Program, RefillVisit

from .factories import PatientFactory, PumpFactory, drug_product, first_fill_order, member

PHX = ZoneInfo("America/Phoenix")
JAN_FILL = datetime(2026, 1, 5, 9, tzinfo=PHX)
FEB_FILL = datetime(2026, 2, 2, 10, tzinfo=PHX)
AUDIT_DAY = datetime(2026, 2, 10, 9, tzinfo=PHX)


def fill(pump, actor, when, *, aspirated="0", volume="40", concentration="2000", dose="600", **extra):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=when,
        aspirated_ml=D(aspirated),
        volume_added_ml=D(volume),
        concentration_mcg_per_ml=D(concentration),
        daily_dose_mcg=D(dose),
        now=when,
        **first_fill_order(pump, actor, extra),
    )


@pytest.fixture
def other_admin(other_clinic):
    return member(other_clinic, Role.CLINIC_ADMIN, username="otheradmin")


@pytest.fixture
def visits(clinic, nurse, physician):
    """Two pumps: a January first fill by the nurse on each, and a February refill of the first pump
    by the physician with an out-of-tolerance residual (a discrepancy with its reason)."""
    first = PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Auditson", mrn="AUD001"))
    second = PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Brightwater", mrn="AUD002"))
    jan_first = fill(first, nurse, JAN_FILL, drug_lot="LOT-A", notes='=HYPERLINK("https://evil.example")')
    jan_second = fill(second, nurse, JAN_FILL + timedelta(hours=1))
    feb = fill(
        first,
        physician,
        FEB_FILL,
        aspirated="20",
        volume="40",
        discrepancy_reason="Pocket fill suspected; imaging ordered",
    )
    assert feb.discrepancy
    return {"first": first, "second": second, "jan_first": jan_first, "jan_second": jan_second, "feb": feb}


def audit_url(clinic, **query):
    url = reverse("clinic-audit", args=[clinic.pk])
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def csv_rows(response) -> list[dict]:
    content = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(content)))


# --- who may ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_nurse_cannot_read_the_audit_report_access_log_or_export(client, clinic, nurse, physician, visits):
    """Care staff read a record's change history (below), never the audit report, its CSV export,
    the access log, nor the history of the clinic's settings and staff (clinic admins only)."""
    membership = Membership.objects.get(user=nurse, clinic=clinic)
    pages = [
        audit_url(clinic),
        audit_url(clinic, format="csv"),
        reverse("clinic-access-log", args=[clinic.pk]),
        reverse("clinic-history", args=[clinic.pk, "clinic", clinic.pk]),
        reverse("clinic-history", args=[clinic.pk, "membership", membership.pk]),
    ]
    for user in (nurse, physician):
        client.force_login(user)
        for url in pages:
            assert client.get(url).status_code == 403, url
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT).exists()


@pytest.mark.django_db
def test_nurse_reads_the_change_history_of_an_amended_refill_with_its_reason(client, clinic, nurse, physician, visits):
    """DESIGN.md's role table (issue 9, "Also decided"): amendments and their reasons are clinical
    information, so the care staff who read the record read its history; the read is logged."""
    refill = visits["jan_second"]
    services.amend_refill(
        refill=refill,
        actor=physician,
        amend_reason="Transcription error: 35 mL were added",
        volume_added_ml=D("35"),
        now=AUDIT_DAY,
    )
    client.force_login(nurse)
    url = reverse("clinic-history", args=[clinic.pk, "refill", refill.pk])
    response = client.get(url)
    assert response.status_code == 200
    amendment = response.context["page"].object_list[0]
    assert (amendment.user, amendment.reason) == (physician, "Transcription error: 35 mL were added")
    assert ("Volume added (mL)", "40 mL", "35 mL") in amendment.changes
    page = response.content.decode()
    # Not the administration tabs, nor the audit report's link: a way back to the patient instead.
    assert reverse("clinic-audit", args=[clinic.pk]) not in page
    assert reverse("clinic-access-log", args=[clinic.pk]) not in page
    assert reverse("patient-detail", args=[refill.pump.patient_id]) in page
    logged = AccessLog.objects.get(user=nurse, action=AccessLog.Action.VIEW)
    assert logged.subject == refill.pump.patient
    # The pump page links each refill's history and the pump's.
    pump_page = client.get(reverse("pump-detail", args=[refill.pump_id])).content.decode()
    assert url in pump_page
    assert reverse("clinic-history", args=[clinic.pk, "pump", refill.pump_id]) in pump_page


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["patient", "pump", "refill", "program", "appointment", "event"])
def test_physician_reads_the_history_of_every_patient_record_kind(client, clinic, nurse, physician, visits, kind):
    pump = visits["first"]
    if kind == "appointment":
        pk = services.schedule_appointment(
            pump=pump, actor=nurse, kind="refill", scheduled_for=AUDIT_DAY + timedelta(days=30), now=AUDIT_DAY
        )[0].pk
    elif kind == "event":
        pk = services.record_pump_event(pump=pump, actor=nurse, kind="other", occurred_at=AUDIT_DAY, now=AUDIT_DAY).pk
    else:
        pk = {"patient": pump.patient_id, "pump": pump.pk, "refill": visits["feb"].pk}.get(kind)
        pk = pk or visits["feb"].program_id
    client.force_login(physician)
    response = client.get(reverse("clinic-history", args=[clinic.pk, kind, pk]))
    assert response.status_code == 200
    assert response.context["page"].object_list


@pytest.mark.django_db
def test_a_nurse_of_another_clinic_finds_no_history_here(client, clinic, other_clinic, visits):
    outsider = member(other_clinic, Role.NURSE, username="othernurse")
    client.force_login(outsider)
    assert client.get(reverse("clinic-history", args=[clinic.pk, "refill", visits["feb"].pk])).status_code == 404
    own = reverse("clinic-history", args=[other_clinic.pk, "refill", visits["feb"].pk])
    assert client.get(own).status_code == 404


@pytest.mark.django_db
def test_another_clinics_admin_cannot_audit_this_clinic(client, clinic, other_clinic, other_admin, visits):
    client.force_login(other_admin)
    for url in (
        audit_url(clinic),
        audit_url(clinic, format="csv"),
        reverse("clinic-history", args=[clinic.pk, "refill", visits["feb"].pk]),
        reverse("clinic-access-log", args=[clinic.pk]),
    ):
        assert client.get(url).status_code == 404, url
    # Nor by asking for this clinic's record under their own clinic's address.
    own = reverse("clinic-history", args=[other_clinic.pk, "refill", visits["feb"].pk])
    assert client.get(own).status_code == 404


@pytest.mark.django_db
def test_unknown_record_kinds_have_no_history_page(client, clinic, clinic_admin, visits):
    client.force_login(clinic_admin)
    assert client.get(reverse("clinic-history", args=[clinic.pk, "user", 1])).status_code == 404


# --- the report ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_audit_lists_every_visit_newest_first(client, clinic, clinic_admin, visits):
    client.force_login(clinic_admin)
    rows = list(client.get(audit_url(clinic)).context["page"].object_list)
    assert rows == [visits["feb"], visits["jan_second"], visits["jan_first"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"date_from": "2026-01-01", "date_to": "2026-01-31"}, ["jan_second", "jan_first"]),
        ({"date_from": "2026-02-01"}, ["feb"]),
        ({"discrepancy": "on"}, ["feb"]),
        ({"nurse": "PHYSICIAN"}, ["feb"]),
        ({"pump": "SECOND"}, ["jan_second"]),
    ],
)
def test_audit_filters_by_dates_nurse_pump_and_discrepancy(
    client, clinic, clinic_admin, physician, visits, query, expected
):
    query = {k: {"PHYSICIAN": physician.pk, "SECOND": visits["second"].pk}.get(v, v) for k, v in query.items()}
    client.force_login(clinic_admin)
    rows = list(client.get(audit_url(clinic, **query)).context["page"].object_list)
    assert rows == [visits[name] for name in expected]


@pytest.mark.django_db
def test_date_filters_are_the_clinics_days(client, clinic, clinic_admin, nurse):
    # 23:30 in Phoenix on Jan 31 is Feb 1 in UTC: it belongs to January for the clinic.
    pump = PumpFactory(patient=PatientFactory(clinic=clinic))
    late = fill(pump, nurse, datetime(2026, 1, 31, 23, 30, tzinfo=PHX))
    client.force_login(clinic_admin)
    january = client.get(audit_url(clinic, date_from="2026-01-31", date_to="2026-01-31")).context["page"]
    assert list(january.object_list) == [late]
    assert not client.get(audit_url(clinic, date_from="2026-02-01")).context["page"].object_list


# --- the CSV export -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_csv_export_has_the_filtered_visits_and_writes_an_export_row(client, clinic, clinic_admin, visits):
    client.force_login(clinic_admin)
    with time_machine.travel(AUDIT_DAY, tick=False):
        response = client.get(audit_url(clinic, date_from="2026-01-01", date_to="2026-01-31", format="csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="refill-visits-saguaro-test-clinic-2026-02-10.csv"'
    rows = csv_rows(response)
    assert [row["patient_mrn"] for row in rows] == ["AUD002", "AUD001"]
    first = rows[1]
    assert first["performed_at"] == "2026-01-05T09:00-07:00"
    assert (first["volume_added_ml"], first["daily_dose_mcg"], first["drug_lot"]) == ("40.00", "600.00", "LOT-A")
    assert first["performed_by"] == "nurse" and first["discrepancy"] == "no"
    # A note that a spreadsheet would run as a formula is exported as text.
    assert first["notes"].startswith("'=HYPERLINK")

    export = AccessLog.objects.get(action=AccessLog.Action.EXPORT)
    assert (export.user, export.clinic) == (clinic_admin, clinic)
    assert export.detail == "Refill visits CSV, 2 rows: 2026-01-01 to 2026-01-31"


@pytest.mark.django_db
def test_csv_export_of_discrepancies_describes_its_filter(client, clinic, clinic_admin, physician, visits):
    client.force_login(clinic_admin)
    response = client.get(audit_url(clinic, discrepancy="on", nurse=physician.pk, format="csv"))
    rows = csv_rows(response)
    assert len(rows) == 1
    assert (rows[0]["discrepancy"], rows[0]["discrepancy_reason"]) == ("yes", "Pocket fill suspected; imaging ordered")
    assert rows[0]["expected_residual_ml"] != ""
    detail = AccessLog.objects.get(action=AccessLog.Action.EXPORT).detail
    assert detail == "Refill visits CSV, 1 row: all dates; performed by physician; discrepancies only"


@pytest.mark.django_db
def test_an_invalid_filter_exports_nothing(client, clinic, clinic_admin, visits):
    client.force_login(clinic_admin)
    response = client.get(audit_url(clinic, date_from="2026-02-01", date_to="2026-01-01", format="csv"))
    assert response.status_code == 400
    assert "date_to" in response.context["form"].errors
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT).exists()


# --- constant number of queries -------------------------------------------------------------------


def add_visits(clinic, count, start):
    """``count`` refill visits spread over several pumps, staff and products (bulk: setup only)."""
    staff = [member(clinic, Role.NURSE, username=f"bulk-nurse-{start}-{i}") for i in range(3)]
    pumps = [PumpFactory(patient=PatientFactory(clinic=clinic)) for _ in range(4)]
    products = [drug_product("2000"), None]
    programs, refills = [], []
    for i in range(count):
        pump = pumps[i % len(pumps)]
        at = datetime(2025, 1, 1, 8, tzinfo=PHX) + timedelta(hours=start * 1000 + i)
        programs.append(Program(pump=pump, effective_at=at, concentration_mcg_per_ml=D(2000), daily_dose_mcg=D(500)))
    programs = Program.objects.bulk_create(programs)
    for i, program in enumerate(programs):
        refills.append(
            RefillVisit(
                pump=program.pump,
                performed_at=program.effective_at,
                performed_by=staff[i % len(staff)],
                reservoir_ml=D(40),
                aspirated_ml=D(5),
                volume_added_ml=D(40),
                drug_product=products[i % 2],
                concentration_mcg_per_ml=D(2000),
                program=program,
                discrepancy=i % 7 == 0,
                discrepancy_reason="bulk" if i % 7 == 0 else "",
            )
        )
    RefillVisit.objects.bulk_create(refills)


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(context)


@pytest.mark.django_db
def test_audit_list_and_export_run_the_same_queries_for_10_and_200_visits(client, clinic, clinic_admin):
    add_visits(clinic, 10, start=0)
    client.force_login(clinic_admin)
    client.get(audit_url(clinic))  # warm the session and caches
    page_at_10 = queries_for(client, audit_url(clinic))
    export_at_10 = queries_for(client, audit_url(clinic, format="csv"))
    add_visits(clinic, 190, start=1)
    page_at_200 = queries_for(client, audit_url(clinic))
    export_at_200 = queries_for(client, audit_url(clinic, format="csv"))
    assert RefillVisit.objects.count() == 200
    assert page_at_200 == page_at_10
    assert export_at_200 == export_at_10


# --- history --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_history_of_an_amended_refill_shows_old_and_new_values(client, clinic, clinic_admin, nurse, visits):
    refill = visits["jan_second"]
    services.amend_refill(
        refill=refill,
        actor=nurse,
        amend_reason="Transcription error: 35 mL were added",
        volume_added_ml=D("35"),
        drug_lot="LOT-B",
        now=AUDIT_DAY,
    )
    client.force_login(clinic_admin)
    response = client.get(reverse("clinic-history", args=[clinic.pk, "refill", refill.pk]))
    assert response.status_code == 200
    amendment = response.context["page"].object_list[0]
    assert amendment.kind == "changed" and amendment.user == nurse
    assert amendment.reason == "Transcription error: 35 mL were added"
    changes = {label: (old, new) for label, old, new in amendment.changes}
    assert changes["Volume added (mL)"] == ("40 mL", "35 mL")
    assert changes["Drug lot"] == ("—", "LOT-B")
    page = response.content.decode()
    assert "<del>40 mL</del>" in page and "<ins>35 mL</ins>" in page
    assert nurse.get_full_name() in page
    # The record's creation is there too, and nothing offers to revert.
    assert response.context["page"].object_list[-1].kind == "created"
    assert "revert" not in page.lower()


@pytest.mark.django_db
def test_reading_a_patient_records_history_is_logged(client, clinic, clinic_admin, visits):
    client.force_login(clinic_admin)
    client.get(reverse("clinic-history", args=[clinic.pk, "pump", visits["first"].pk]))
    entry = AccessLog.objects.get(user=clinic_admin, action=AccessLog.Action.VIEW)
    assert entry.subject == visits["first"].patient
    assert entry.detail == f"change history of pump #{visits['first'].pk}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind", ["patient", "pump", "program", "appointment", "clinic", "membership", "policy", "webhook"]
)
def test_every_audited_record_kind_has_a_readable_history(client, clinic, clinic_admin, nurse, visits, kind):
    membership = Membership.objects.get(user=nurse, clinic=clinic)
    appointment, _warnings = services.schedule_appointment(
        pump=visits["first"], actor=nurse, kind="refill", scheduled_for=AUDIT_DAY + timedelta(days=30), now=AUDIT_DAY
    )
    policy = EscalationPolicy.objects.get(clinic=clinic, severity=Severity.URGENT)
    pk = {
        "patient": visits["first"].patient_id,
        "pump": visits["first"].pk,
        "program": visits["feb"].program_id,
        "appointment": appointment.pk,
        "clinic": clinic.pk,
        "membership": membership.pk,
        "policy": policy.pk,
        "webhook": Webhook.objects.create(clinic=clinic, url="https://hooks.example.org/a", secret="s").pk,
    }[kind]
    services.update_clinic_settings(clinic=clinic, actor=clinic_admin, reminder_days=21)
    client.force_login(clinic_admin)
    response = client.get(reverse("clinic-history", args=[clinic.pk, kind, pk]))
    assert response.status_code == 200
    assert response.context["page"].object_list
    if kind == "clinic":
        change = response.context["page"].object_list[0]
        assert ("Due-soon window (days)", "14 days", "21 days") in change.changes
        assert change.user == clinic_admin


@pytest.mark.django_db
def test_history_is_read_only(client, clinic, clinic_admin, visits):
    client.force_login(clinic_admin)
    url = reverse("clinic-history", args=[clinic.pk, "refill", visits["feb"].pk])
    assert client.post(url).status_code == 405


# --- the access log -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_access_log_filters_by_user_action_and_date(client, clinic, clinic_admin, nurse, physician, visits):
    patient = visits["first"].patient
    with time_machine.travel(datetime(2026, 1, 10, 12, tzinfo=PHX), tick=False):
        log_access(nurse, AccessLog.Action.VIEW, patient)
    with time_machine.travel(datetime(2026, 2, 10, 12, tzinfo=PHX), tick=False):
        log_access(physician, AccessLog.Action.VIEW, patient)
        log_access(nurse, AccessLog.Action.EXPORT, clinic=clinic, detail="Refill visits CSV, 3 rows: all dates")
    client.force_login(clinic_admin)
    url = reverse("clinic-access-log", args=[clinic.pk])

    def listed(**query):
        # Reading the log (it names patients) is itself logged: leave the admin's own reads out.
        response = client.get(url, query)
        assert response.status_code == 200
        return [(e.user.username, e.action) for e in response.context["page"].object_list if e.user != clinic_admin]

    assert listed() == [("nurse", "export"), ("physician", "view"), ("nurse", "view")]
    assert listed(user=nurse.pk) == [("nurse", "export"), ("nurse", "view")]
    assert listed(action="view") == [("physician", "view"), ("nurse", "view")]
    assert listed(date_from=date(2026, 1, 1), date_to=date(2026, 1, 31)) == [("nurse", "view")]
    page = client.get(url).content.decode()
    assert str(patient) in page and "Refill visits CSV, 3 rows" in page
    assert AccessLog.objects.filter(user=clinic_admin, clinic=clinic, detail__startswith="access log page 1").exists()


@pytest.mark.django_db
def test_access_log_shows_only_this_clinics_entries(client, clinic, other_clinic, clinic_admin, visits):
    stranger = member(other_clinic, Role.NURSE, username="stranger")
    other_patient = PatientFactory(clinic=other_clinic, family_name="Elsewhere")
    log_access(stranger, AccessLog.Action.VIEW, other_patient)
    client.force_login(clinic_admin)
    response = client.get(reverse("clinic-access-log", args=[clinic.pk]))
    assert "Elsewhere" not in response.content.decode()
    assert not response.context["page"].object_list
