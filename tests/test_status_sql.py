"""The status has one definition: the SQL annotation agrees with depletion.status_at."""

from datetime import datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from patients import depletion, services
from patients.models import Pump
from patients.selectors import pumps_with_status, with_status

from .factories import PatientFactory, PumpFactory

PHX = ZoneInfo("America/Phoenix")


@pytest.mark.django_db
def test_sql_status_matches_projection_core_through_a_whole_cycle(clinic, nurse, physician):
    start = datetime(2026, 1, 5, 9, tzinfo=PHX)
    pumps = []
    for dose in ("600", "450", "900"):
        pump = PumpFactory(patient=PatientFactory(clinic=clinic))
        services.record_refill(
            pump=pump,
            actor=physician,
            performed_at=start,
            aspirated_ml=D(0),
            volume_added_ml=D(40),
            concentration_mcg_per_ml=D(2000),
            daily_dose_mcg=D(dose),
            now=start,
        )
        pumps.append(pump)
    services.change_program(
        pump=pumps[2],
        actor=physician,
        effective_at=start + timedelta(days=3),
        daily_dose_mcg=D(0),
        stop_reason="MRI",
        now=start + timedelta(days=3),
    )
    PumpFactory(patient=PatientFactory(clinic=clinic))  # never filled
    seen = set()
    for day in range(0, 200, 3):
        now = start + timedelta(days=day, hours=5)
        annotated = {p.pk: p.refill_status for p in with_status(Pump.objects.all(), now)}
        for pump in Pump.objects.select_related("projection"):
            projection = getattr(pump, "projection", None)
            expected = "never_filled" if projection is None else depletion.status_at(projection, now)
            assert annotated[pump.pk] == expected, (day, pump.pk)
            seen.add(expected)
            if projection is not None:
                assert pumps_with_status(Pump.objects.filter(pk=pump.pk), expected, now).exists()
    assert {"ok", "due_soon", "overdue", "critical", "stopped", "never_filled"} <= seen
