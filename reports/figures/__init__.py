"""The clinic report's figures (issue 14): aggregates over one clinic and one period.

The interface with the report page, CSV and digest is fixed (reports-interface.md): ``Period``,
``Figure``, ``LateRefill``, ``Report``, ``clinic_report`` and ``monthly_trend``. Every definition
is written out in docs/reports.md exactly as computed here. No figure carries a patient name,
MRN, birth date or pump serial: ids and counts only (nurses are staff and named by full name).

A package: ``definitions`` (the shapes and ``SPECS``), ``sections`` (one period's figures and
``clinic_report``), ``trend`` (``monthly_trend``).
"""

from .definitions import SPEC_BY_KEY, SPECS, Figure, FigureValue, LateRefill, Period, Report
from .sections import clinic_report, percentile, pumps_in_service_q
from .trend import monthly_trend

__all__ = [
    "SPECS",
    "SPEC_BY_KEY",
    "Figure",
    "FigureValue",
    "LateRefill",
    "Period",
    "Report",
    "clinic_report",
    "monthly_trend",
    "percentile",
    "pumps_in_service_q",
]
