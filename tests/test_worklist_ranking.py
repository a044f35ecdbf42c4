"""The urgency ranking (patients.selectors.ranked): one definition of tiers and order, shared by
the worklist, its counts and the pump page."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse

from alerts import engine
from alerts.models import AlertKind, Severity
from patients import selectors
from patients.models import Pump, PumpProjection

from .factories import PatientFactory, PumpFactory
from .test_web_worklist import NOW, at, filled, row_ids


def alert(pump, kind, severity, detail=""):
    engine.raise_alert(
        pump_id=pump.pk, clinic_id=pump.patient.clinic_id, kind=kind, severity=severity, now=NOW, detail=detail
    )


def ranked_pumps():
    return list(selectors.ranked(Pump.objects.in_service(), NOW))


def test_alert_severities_the_ranking_reads_are_the_alerting_sides():
    assert selectors.ALERT_EMERGENCY == Severity.EMERGENCY
    assert selectors.ALERT_CRITICAL == Severity.CRITICAL
    assert selectors.ALERT_URGENT == Severity.URGENT
    assert selectors.ALERT_REVIEW == Severity.REVIEW


@pytest.mark.django_db
def test_tiers_emergency_critical_urgent_due_soon_review_stopped_ok_never_filled(clinic, nurse, physician):
    from decimal import Decimal as D

    from patients import services

    emergency = filled(clinic, nurse, at(2026, 4, 20, 9), "Alarmed")  # OK by its dates
    alert(emergency, AlertKind.PUMP_ALARM, Severity.EMERGENCY, "Critical alarm reported: emergency")
    critical = filled(clinic, nurse, at(2025, 12, 30, 9), "Criticalle")
    # Overdue by its dates, but a reported low-reservoir beep the app did not expect: critical.
    mismatch = filled(clinic, nurse, at(2026, 1, 5, 9), "Mismatcher")
    alert(mismatch, AlertKind.PUMP_ALARM, Severity.CRITICAL, "Low-reservoir alarm reported; MISMATCH")
    overdue = filled(clinic, nurse, at(2026, 1, 5, 9), "Overdueman")
    due_soon = filled(clinic, nurse, at(2026, 1, 20, 9), "Duesoon")
    review = filled(clinic, nurse, at(2026, 4, 21, 9), "Reviewer")
    alert(review, AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW, "Residual out of tolerance")
    stopped = filled(clinic, nurse, at(2026, 3, 1, 9), "Stoppard")
    services.change_program(
        pump=stopped,
        actor=physician,
        effective_at=at(2026, 3, 10, 9),
        daily_dose_mcg=D("0"),
        stop_reason="MRI",
        now=at(2026, 3, 10, 9),
    )
    ok = filled(clinic, nurse, at(2026, 4, 22, 9), "Okayson")
    never = PumpFactory(patient=PatientFactory(clinic=clinic, family_name="Neverfilled"))

    pumps = ranked_pumps()
    assert [p.pk for p in pumps] == [
        p.pk for p in (emergency, critical, mismatch, overdue, due_soon, review, stopped, ok, never)
    ]
    assert [p.tier for p in pumps] == [
        "emergency",
        "critical",
        "critical",
        "urgent",
        "due_soon",
        "review",
        "stopped",
        "ok",
        "never_filled",
    ]
    assert pumps[2].worst_alert_severity == Severity.CRITICAL and pumps[2].refill_status == "overdue"
    # The counts at the top of the worklist use the same tiers.
    assert selectors.tier_counts(Pump.objects.in_service(), NOW) == {
        "emergency": 1,
        "critical": 2,
        "urgent": 1,
        "due_soon": 1,
        "review": 1,
        "stopped": 1,
        "ok": 1,
        "never_filled": 1,
    }


@pytest.mark.django_db
def test_within_critical_the_withdrawal_risk_patient_comes_before_the_name_order(clinic, nurse):
    aaron = filled(clinic, nurse, at(2025, 12, 30, 9), "Aaronson")
    zed = filled(clinic, nurse, at(2025, 12, 30, 9), "Zedd")
    zed.patient.prior_withdrawal = True
    zed.patient.save()
    assert [p.pk for p in ranked_pumps()] == [zed.pk, aaron.pk]


@pytest.mark.django_db
def test_within_critical_the_earliest_critical_from_comes_before_withdrawal_risk(clinic, nurse):
    earlier = filled(clinic, nurse, at(2025, 12, 29, 9), "Earlier")
    risky = filled(clinic, nurse, at(2025, 12, 30, 9), "Risky")
    risky.patient.sci_at_or_above_t6 = True
    risky.patient.save()
    # The risk flag widens the margin: compare on what is stored, whichever way it moves.
    first, second = sorted((earlier, risky), key=lambda p: PumpProjection.objects.get(pump=p).critical_from)
    assert [p.pk for p in ranked_pumps()] == [first.pk, second.pk]


@pytest.mark.django_db
def test_within_a_tier_a_pump_past_its_alarm_time_comes_first(clinic, nurse):
    early = filled(clinic, nurse, at(2025, 12, 29, 9), "Earlycritical")
    past = filled(clinic, nurse, at(2025, 12, 30, 9), "Pastalarm")
    # A pump already past its alarm (as its stored projection says) leads its tier even though
    # the other one turned critical earlier.
    PumpProjection.objects.filter(pump=past).update(lra_at=NOW - timedelta(hours=1))
    assert [p.pk for p in ranked_pumps()] == [past.pk, early.pk]


@pytest.mark.django_db
def test_worklist_ranks_the_mismatch_above_overdue_and_shows_its_worst_alert(client, clinic, nurse):
    overdue = filled(clinic, nurse, at(2026, 1, 5, 9), "Aoverdue")
    mismatch = filled(clinic, nurse, at(2026, 1, 5, 9), "Mismatcher")
    alert(mismatch, AlertKind.PUMP_ALARM, Severity.CRITICAL, "Low-reservoir alarm reported; MISMATCH")
    alert(mismatch, AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW, "Residual out of tolerance")
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("home"))
        critical_only = client.get(reverse("home"), {"status": "critical"})
    assert row_ids(response) == [mismatch.pk, overdue.pk]
    assert row_ids(critical_only) == [mismatch.pk]
    text = response.content.decode()
    worst = mismatch.alerts.get(kind=AlertKind.PUMP_ALARM)
    assert reverse("alert-detail", args=[worst.pk]) in text
    assert "Pump alarm or symptoms reported" in text and "+1 more open" in text


@pytest.mark.django_db
def test_pump_page_lists_its_open_alerts_worst_first_with_links(client, clinic, nurse):
    pump = filled(clinic, nurse, at(2026, 1, 5, 9), "Alertson")
    alert(pump, AlertKind.RESIDUAL_DISCREPANCY, Severity.REVIEW, "Residual out of tolerance")
    alert(pump, AlertKind.PUMP_ALARM, Severity.EMERGENCY, "Critical alarm reported: emergency")
    client.force_login(nurse)
    with time_machine.travel(NOW, tick=False):
        text = client.get(reverse("pump-detail", args=[pump.pk])).content.decode()
    alarm, review = pump.alerts.get(kind=AlertKind.PUMP_ALARM), pump.alerts.get(kind=AlertKind.RESIDUAL_DISCREPANCY)
    section = text[text.index('id="open-alerts-heading"') :]
    assert section.index(reverse("alert-detail", args=[alarm.pk])) < section.index(
        reverse("alert-detail", args=[review.pk])
    )
    assert ">Emergency</span>" in section and ">Physician review</span>" in section
