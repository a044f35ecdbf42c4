"""The clinic report's figures (issue 14), against hand-computed fixtures."""

from datetime import UTC, date
from zoneinfo import ZoneInfo

import pytest

from reports.figures import SPECS, Period, clinic_report, monthly_trend
from tests.factories import ClinicFactory

pytestmark = pytest.mark.django_db


def test_periods_are_days_in_the_clinic_zone_across_a_daylight_saving_change():
    zone = ZoneInfo("America/New_York")
    period = Period.month(2026, 11)  # DST ends Sunday 1 November 2026
    start, end = period.bounds(zone)
    assert (period.start, period.end, period.label) == (date(2026, 11, 1), date(2026, 11, 30), "November 2026")
    # 30 days plus the hour given back at the change.
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 30 * 86400 + 3600
    assert Period.quarter(2026, 4).end == date(2026, 12, 31)
    assert Period.between(date(2026, 1, 1), date(2026, 3, 31)).label == "2026-01-01 – 2026-03-31"


def test_report_has_every_figure_once_and_trend_has_twelve_months():
    clinic = ClinicFactory()
    report = clinic_report(clinic, Period.month(2026, 10))
    assert [f.key for f in report.figures] == [s.key for s in SPECS]
    trend = monthly_trend(clinic, Period.month(2026, 10))
    assert [d for d, _ in trend["refills_on_time_share"]][0] == date(2025, 11, 1)
    assert len(trend["refills_on_time_share"]) == 12
