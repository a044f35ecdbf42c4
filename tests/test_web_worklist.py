"""The refill worklist (home page): urgency order, filters, search, clinic isolation, and a
query count that does not grow with the number of pumps."""

import re
from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinics.models import Role
from patients import services
from patients.models import Patient, Pump, PumpProjection

from .factories import PatientFactory, PumpFactory, first_fill_order, member, pump_model

PHX = ZoneInfo("America/Phoenix")
NOW = datetime(2026, 5, 1, 12, tzinfo=PHX)


def at(*args):
    return datetime(*args, tzinfo=PHX)


def filled(clinic, actor, when, family_name, dose="600", **pump_fields):
    pump = PumpFactory(
        patient=PatientFactory(clinic=clinic, family_name=family_name),
        pump_model=pump_model("SynchroMed II 40 mL"),
        **pump_fields,
    )
    services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=when,
        aspirated_ml=D("0"),
        volume_added_ml=D("40"),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D(dose),
        now=when,
        **first_fill_order(pump, actor, {}),
    )
    return pump


def row_ids(response):
    return [int(pk) for pk in re.findall(rb'data-pump="(\d+)"', response.content)]


@pytest.fixture
def pumps_in_every_state(clinic, nurse, physician):
    """At NOW (2026-05-01 12:00 Phoenix) each pump is in a different state (CLINICAL.md example)."""
    ok = filled(clinic, nurse, at(2026, 4, 20, 9), "Okayson")
    due_soon = filled(clinic, nurse, at(2026, 1, 20, 9), "Duesoon")
    overdue = filled(clinic, nurse, at(2026, 1, 5, 9), "Overdueman", assigned_nurse=nurse)
    critical = filled(clinic, nurse, at(2025, 12, 30, 9), "Criticalle")
    stopped = filled(clinic, nurse, at(2026, 3, 1, 9), "Stoppard")
    services.change_program(
        pump=stopped,
        actor=physician,
        effective_at=at(2026, 3, 10, 9),
        daily_dose_mcg=D("0"),
        stop_reason="MRI: reservoir emptied before the scan",
        now=at(2026, 3, 10, 9),
    )
    never = PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Neverfilled"))
    return {
        "critical": critical,
        "overdue": overdue,
        "due_soon": due_soon,
        "stopped": stopped,
        "ok": ok,
        "never_filled": never,
    }


@pytest.mark.django_db
def test_worklist_lists_critical_then_overdue_due_soon_stopped_ok_never_filled(client, nurse, pumps_in_every_state):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("home"))
    assert response.status_code == 200
    expected = [
        pumps_in_every_state[k].pk for k in ("critical", "overdue", "due_soon", "stopped", "ok", "never_filled")
    ]
    assert row_ids(response) == expected
    text = response.content.decode()
    for label in ("Critical", "Overdue", "Due soon", "Stopped", "OK", "Never filled"):
        assert f">{label}</span>" in text  # every status badge carries its word, not only a colour
    assert "MRI: reservoir emptied before the scan" in text


@pytest.mark.django_db
def test_worklist_row_shows_reservoir_now_due_date_and_days_left(client, nurse, pumps_in_every_state):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("home"), {"status": "urgent"})
    text = response.content.decode()
    assert row_ids(response) == [pumps_in_every_state["overdue"].pk]
    # 116.125 days at 0.3 mL/day from 40 mL: 5.16 mL, 13% of the reservoir; due 2026-04-29.
    assert '5.2 <span class="unit">mL</span>' in text
    assert "13% of 40 mL" in text
    assert "2026-04-29" in text and "2 days ago" in text
    assert "Overdueman" in text


@pytest.mark.django_db
def test_worklist_filters_by_status_nurse_and_search(client, nurse, pumps_in_every_state):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        stopped = client.get(reverse("home"), {"status": "stopped"})
        never = client.get(reverse("home"), {"status": "never_filled"})
        mine = client.get(reverse("home"), {"nurse": nurse.pk})
        by_name = client.post(reverse("home"), {"q": "stopp"})
        by_mrn = client.post(reverse("home"), {"q": pumps_in_every_state["ok"].patient.mrn})
    assert row_ids(stopped) == [pumps_in_every_state["stopped"].pk]
    assert row_ids(never) == [pumps_in_every_state["never_filled"].pk]
    assert row_ids(mine) == [pumps_in_every_state["overdue"].pk]
    assert row_ids(by_name) == [pumps_in_every_state["stopped"].pk]
    assert row_ids(by_mrn) == [pumps_in_every_state["ok"].pk]


@pytest.mark.django_db
def test_worklist_filters_by_clinic_for_a_member_of_two_clinics(client, clinic, other_clinic):
    nurse = member(clinic, Role.NURSE, username="twoclinics")
    from clinics.models import Membership

    Membership.objects.create(user=nurse, clinic=other_clinic, role=Role.NURSE)
    here = PumpFactory(patient=PatientFactory(clinic=clinic))
    there = PumpFactory(patient=PatientFactory(clinic=other_clinic))
    client.force_login(nurse)
    assert set(row_ids(client.get(reverse("home")))) == {here.pk, there.pk}
    assert row_ids(client.get(reverse("home"), {"clinic": other_clinic.pk})) == [there.pk]


@pytest.mark.django_db
def test_worklist_leaves_out_explanted_pumps_transferred_patients_and_other_clinics(
    client, clinic, other_clinic, nurse
):
    shown = PumpFactory(patient=PatientFactory(clinic=clinic))
    PumpFactory(patient=PatientFactory(clinic=clinic), status=Pump.Status.EXPLANTED, explanted_on=NOW.date())
    PumpFactory(patient=PatientFactory(clinic=clinic, status=Patient.Status.TRANSFERRED))
    PumpFactory(patient=PatientFactory(clinic=other_clinic))
    client.force_login(nurse)
    assert row_ids(client.get(reverse("home"))) == [shown.pk]


@pytest.mark.django_db
def test_worklist_paginates_and_keeps_filters_in_page_links(client, clinic, nurse):
    for n in range(30):
        PumpFactory(patient=PatientFactory(clinic=clinic, family_name=f"Pagey{n:02d}"))
    client.force_login(nurse)
    first = client.post(reverse("home"), {"q": "pagey"})
    second = client.post(reverse("home"), {"q": "pagey", "page": 2})
    assert len(row_ids(first)) == 25 and len(row_ids(second)) == 5
    text = first.content.decode()
    assert 'name="q" value="pagey"' in text and 'name="page" value="2"' in text  # the next page is a POST
    assert "q=pagey" not in text
    by_status = client.get(reverse("home"), {"status": "never_filled"})
    assert "status=never_filled&amp;page=2" in by_status.content.decode()


@pytest.mark.django_db
def test_worklist_shows_the_next_open_appointment(client, nurse, pumps_in_every_state):
    pump = pumps_in_every_state["due_soon"]
    with time_machine.travel(NOW, tick=False):
        services.schedule_appointment(pump=pump, actor=nurse, kind="refill", scheduled_for=at(2026, 5, 8, 10))
        client.force_login(nurse)
        response = client.get(reverse("home"), {"status": "due_soon"})
    assert "Fri 2026-05-08 10:00" in response.content.decode()


@pytest.mark.django_db
def test_clinic_admin_sees_the_worklist_without_refill_buttons(client, clinic, clinic_admin):
    pump = PumpFactory(patient=PatientFactory(clinic=clinic))
    client.force_login(clinic_admin)
    response = client.get(reverse("home"))
    assert row_ids(response) == [pump.pk]
    assert reverse("refill-create", args=[pump.pk]).encode() not in response.content


def bulk_pumps(clinic, count, now, start=0):
    """``count`` pumps with stored projections in various states, quickly (no services, no history)."""
    model = pump_model("SynchroMed II 40 mL")
    patients = Patient.objects.bulk_create(
        Patient(
            clinic=clinic,
            mrn=f"BULK{start + n:06d}",
            given_name="Bulk",
            family_name=f"Patient{start + n:06d}",
            birth_date=now.date() - timedelta(days=20000),
        )
        for n in range(count)
    )
    pumps = Pump.objects.bulk_create(
        Pump(
            patient=p,
            pump_model=model,
            serial_number=f"BULK{start + n:07d}",
            implanted_on=now.date() - timedelta(days=900),
            lra_ml=D("2"),
        )
        for n, p in enumerate(patients)
    )
    projections = []
    for n, pump in enumerate(pumps):
        filled_at = now - timedelta(days=n % 130)
        lra_at = filled_at + timedelta(days=126)
        projections.append(
            PumpProjection(
                pump=pump,
                computed_at=filled_at,
                filled_at=filled_at,
                reservoir_at_fill_ml=D("40"),
                rate_ml_per_day=D("0.3"),
                conservative_factor=D("1.05"),
                lra_at=lra_at,
                empty_at=lra_at + timedelta(days=6),
                conservative_lra_at=lra_at - timedelta(days=6),
                drug_expires_at=filled_at + timedelta(days=180),
                refill_due_on=(lra_at - timedelta(days=13)).date(),
                unmoved_refill_due_on=(lra_at - timedelta(days=13)).date(),
                critical_from=lra_at - timedelta(days=8),
                overdue_from=lra_at - timedelta(days=12),
                due_soon_from=lra_at - timedelta(days=27),
                is_stopped=n % 17 == 0,
                segments=[[filled_at.isoformat(), "0" if n % 17 == 0 else "0.3"]],
            )
        )
    PumpProjection.objects.bulk_create(projections)
    return pumps


@pytest.mark.django_db
def test_worklist_makes_the_same_number_of_queries_for_10_and_1000_pumps(client, clinic, nurse):
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        bulk_pumps(clinic, 10, NOW)
        client.get(reverse("home"))  # warm caches (content types, sessions)
        with CaptureQueriesContext(connection) as ten:
            response = client.get(reverse("home"))
        assert len(row_ids(response)) == 10
        bulk_pumps(clinic, 990, NOW, start=10)
        with CaptureQueriesContext(connection) as thousand:
            response = client.get(reverse("home"))
        assert len(row_ids(response)) == 25
        assert "1000 pumps" in response.content.decode()
    assert len(ten.captured_queries) == len(thousand.captured_queries), [q["sql"] for q in thousand.captured_queries]


@pytest.mark.django_db
def test_a_search_by_name_never_puts_the_name_in_a_url(client, clinic, nurse, settings):
    """Names and MRNs in query strings land in proxy and server logs: the search is a POST, a
    name in a GET query string is ignored, and the login ``next`` never carries a query string."""
    wanted = PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Searchable", mrn="MRN-SRCH-1"))
    PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Other"))
    client.force_login(nurse)

    found = client.post(reverse("home"), {"q": "MRN-SRCH-1"})
    assert row_ids(found) == [wanted.pk]
    assert f'<form method="post" action="{reverse("home")}"' in found.content.decode()
    assert "q=" not in found.content.decode()
    assert len(row_ids(client.get(reverse("home"), {"q": "Searchable"}))) == 2  # not a filter by URL

    client.logout()
    anonymous = client.get(reverse("home"), {"q": "Searchable", "status": "ok"})
    assert anonymous.status_code == 302
    assert "Searchable" not in anonymous["Location"] and "status" not in anonymous["Location"]


@pytest.mark.django_db
def test_the_idle_timeout_redirect_keeps_no_query_string(client, nurse):
    start = datetime(2026, 3, 1, 9, tzinfo=ZoneInfo("America/Phoenix"))
    with time_machine.travel(start, tick=False):
        client.force_login(nurse)
        client.get(reverse("home"))
    with time_machine.travel(start + timedelta(minutes=45), tick=False):
        response = client.get(reverse("home"), {"q": "Searchable", "status": "ok"})
    assert response.status_code == 302
    assert "Searchable" not in response["Location"] and "status" not in response["Location"]
    assert "next=%2F&" in response["Location"]
