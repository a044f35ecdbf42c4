"""Server-side points of the pump page's reservoir chart (static/js/pump_chart.js draws them).

The volumes come from the same depletion functions as the projection, from the stored fill and
conservative factor, so the chart can never disagree with the dates beside it. The x axis is in
days from the clinic-zone midnight that starts the chart; the script labels it with dates.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from .. import depletion

CHART_DAYS_AFTER = 10
RECENT_REFILLS = 2
LEAD_DAYS = 3


def _x(at: datetime, origin: datetime) -> float:
    return round((at - origin).total_seconds() / 86400, 4)


def _ml(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01")))


def reservoir_chart(pump, projection, refills, now) -> dict | None:
    """Nominal and conservative volume since the last fill, the alarm threshold, due date,
    expiry and now, and the recent refills' measured residuals and fills as points."""
    if projection is None:
        return None
    zone = pump.patient.clinic.zone
    fill = projection.as_fill()
    factor = projection.conservative_factor
    recent = sorted(refills[:RECENT_REFILLS], key=lambda r: r.performed_at)
    # A few days' lead so that the first refill's points are not drawn on the axis itself.
    first_day = min([projection.filled_at, *[r.performed_at for r in recent]]).astimezone(zone).date()
    first_day -= timedelta(days=LEAD_DAYS)
    origin = depletion.start_of_day(first_day, zone)
    due_at = depletion.start_of_day(projection.refill_due_on, zone)

    conservative_empty = depletion.time_reaching(fill, Decimal("0"), factor)
    horizon = max(t for t in (projection.empty_at, conservative_empty, due_at, now) if t is not None)
    end = min(horizon, projection.drug_expires_at) + timedelta(days=CHART_DAYS_AFTER)

    instants = {projection.filled_at, end}
    day = projection.filled_at
    while day < end:
        instants.add(day)
        day += timedelta(days=1)
    for moment in (projection.lra_at, projection.empty_at, projection.conservative_lra_at, conservative_empty):
        if moment is not None and moment < end:
            instants.add(moment)
    for segment in fill.segments:
        if projection.filled_at <= segment.start < end:
            instants.add(segment.start)
    times = sorted(instants)

    def line(f):
        return [{"x": _x(t, origin), "y": _ml(depletion.volume_at(fill, t, f))} for t in times]

    markers = [
        {"key": "now", "label": "Now", "x": _x(now, origin)},
        {"key": "due", "label": f"Refill due {projection.refill_due_on:%Y-%m-%d}", "x": _x(due_at, origin)},
    ]
    if projection.drug_expires_at <= end:
        expiry_local = projection.drug_expires_at.astimezone(zone)
        markers.append(
            {
                "key": "expiry",
                "label": f"Drug expires {expiry_local:%Y-%m-%d}",
                "x": _x(projection.drug_expires_at, origin),
            }
        )
    residuals = []
    fills = []
    for refill in recent:
        when = refill.performed_at.astimezone(zone)
        fills.append(
            {"x": _x(refill.performed_at, origin), "y": _ml(refill.volume_added_ml), "label": f"{when:%Y-%m-%d %H:%M}"}
        )
        if refill.expected_residual_ml is not None:
            residuals.append(
                {
                    "x": _x(refill.performed_at, origin),
                    "y": _ml(refill.aspirated_ml),
                    "expected": _ml(refill.expected_residual_ml),
                    "discrepancy": refill.discrepancy,
                    "label": f"{when:%Y-%m-%d %H:%M}",
                }
            )
    x_max = _x(end, origin)
    return {
        "origin": first_day.isoformat(),
        "x_max": x_max,
        "y_max": _ml(pump.pump_model.reservoir_ml),
        "nominal": line(Decimal("1")),
        "conservative": line(factor),
        "conservative_pct": float(((factor - 1) * 100).quantize(Decimal("0.1"))),
        "lra": [{"x": 0, "y": _ml(pump.lra_ml)}, {"x": x_max, "y": _ml(pump.lra_ml)}],
        "markers": markers,
        "residuals": residuals,
        "fills": fills,
    }
