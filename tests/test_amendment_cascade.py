"""An amendment recomputes the later refills of the pump (issue 9, item 4).

The worked example pump (tests/factories.py) holds 40 mL of 2000 mcg/mL at 600 mcg/day: 0.3 mL/day.
Refilled on 2026-04-20 (105 days on: 8.5 mL expected) and on 2026-06-20 (61 days later: 18.3 mL
gone, so 21.7 mL expected after a 40 mL fill, 11.7 mL after a 30 mL one; tolerance 2 mL, or 15 %).
"""

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from alerts.models import Alert, AlertKind
from alerts.services import conclude_review
from patients import services
from patients.models import PumpProjection

from .factories import filled_pump

PHX = ZoneInfo("America/Phoenix")
APRIL = datetime(2026, 4, 20, 9, tzinfo=PHX)
JUNE = datetime(2026, 6, 20, 9, tzinfo=PHX)
CONCLUDED = datetime(2026, 4, 21, 14, tzinfo=PHX)
AMENDED = datetime(2026, 6, 22, 10, tzinfo=PHX)


def refill(pump, actor, at, aspirated_ml, volume_added_ml="40", discrepancy_reason=""):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=at,
        aspirated_ml=D(aspirated_ml),
        volume_added_ml=D(volume_added_ml),
        concentration_mcg_per_ml=D(2000),
        daily_dose_mcg=D(600),
        discrepancy_reason=discrepancy_reason,
        now=at,
    )


def review_of(visit):
    return Alert.objects.filter(kind=AlertKind.RESIDUAL_DISCREPANCY, refill=visit).first()


def reviews_of(visit):
    return list(
        Alert.objects.filter(kind=AlertKind.RESIDUAL_DISCREPANCY, refill=visit)
        .order_by("pk")
        .values_list("status", flat=True)
    )


def concluded_short_residual(pump, nurse, physician):
    """The April refill aspirated 3 mL where 8.5 were expected; the physician concluded its review."""
    april = refill(pump, nurse, APRIL, "3", discrepancy_reason="Short by 5.5 mL")
    conclude_review(
        alert=review_of(april), actor=physician, outcome="pocket_fill", action="dye_or_rotor_study", now=CONCLUDED
    )
    return april


@pytest.mark.django_db
def test_amended_fill_volume_makes_the_next_refill_discrepant_and_raises_its_review(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    april = refill(pump, nurse, APRIL, "8.5")
    june = refill(pump, nurse, JUNE, "21.7")
    assert not june.discrepancy

    services.amend_refill(
        refill=april, actor=nurse, amend_reason="Only 30 mL was added: typo", volume_added_ml=D(30), now=AMENDED
    )

    june.refresh_from_db()
    reason = f"Residual out of tolerance after the amendment of refill {april.pk}: Only 30 mL was added: typo"
    assert (june.expected_residual_ml, june.discrepancy, june.discrepancy_reason) == (D("11.70"), True, reason)
    recomputed = june.history.latest()
    assert (recomputed.history_user, recomputed.history_change_reason) == (
        nurse,
        f"Recomputed after the amendment of refill {april.pk}: Only 30 mL was added: typo",
    )
    review = review_of(june)
    assert review is not None and review.is_open
    assert review.dedupe_key == f"residual_discrepancy:refill:{june.pk}"
    # The interval ending at the June refill is now a documented anomaly: it says nothing about
    # drift, which leaves a single usable interval, too few for a measured ratio.
    assert PumpProjection.objects.get(pump=pump).delivery_ratio is None


@pytest.mark.django_db
def test_amendment_that_explains_the_next_residual_clears_it_and_resolves_its_review(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    april = refill(pump, nurse, APRIL, "8.5", volume_added_ml="30")
    june = refill(pump, nurse, JUNE, "21.7", discrepancy_reason="10 mL more than expected")
    assert june.discrepancy and review_of(june).is_open

    services.amend_refill(
        refill=april, actor=nurse, amend_reason="40 mL was added, not 30", volume_added_ml=D(40), now=AMENDED
    )

    june.refresh_from_db()
    assert (june.expected_residual_ml, june.discrepancy) == (D("21.70"), False)
    review = review_of(june)
    assert (review.status, review.resolved_at, review.resolution) == (
        Alert.Status.RESOLVED,
        AMENDED,
        f"Residual within tolerance after the amendment of refill {april.pk}: 40 mL was added, not 30",
    )
    assert PumpProjection.objects.get(pump=pump).delivery_ratio == D("1.0000")


@pytest.mark.django_db
def test_amendment_that_clears_its_own_discrepancy_resolves_its_review(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    april = refill(pump, nurse, APRIL, "3", discrepancy_reason="Short by 5.5 mL")
    assert review_of(april).is_open

    services.amend_refill(
        refill=april, actor=nurse, amend_reason="Syringe misread: 8.5 mL aspirated", aspirated_ml=D("8.5"), now=AMENDED
    )

    april.refresh_from_db()
    assert not april.discrepancy
    review = review_of(april)
    assert (review.status, review.resolution) == (
        Alert.Status.RESOLVED,
        f"Residual within tolerance after the amendment of refill {april.pk}: Syringe misread: 8.5 mL aspirated",
    )


@pytest.mark.django_db
def test_amendment_leaves_later_refills_it_does_not_change_alone(clinic, nurse):
    pump = filled_pump(clinic, nurse)
    april = refill(pump, nurse, APRIL, "8.5")
    june = refill(pump, nurse, JUNE, "21.7")
    rows = june.history.count()

    services.amend_refill(refill=april, actor=nurse, amend_reason="Lot number corrected", drug_lot="L-42", now=AMENDED)

    assert june.history.count() == rows
    assert not Alert.objects.filter(kind=AlertKind.RESIDUAL_DISCREPANCY).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("clerical", [{"drug_lot": "L-42"}, {"notes": "Patient tolerated the refill well."}])
def test_correcting_the_lot_or_a_note_of_a_concluded_short_residual_raises_no_new_review(
    clinic, nurse, physician, clerical
):
    pump = filled_pump(clinic, nurse)
    april = concluded_short_residual(pump, nurse, physician)

    services.amend_refill(refill=april, actor=nurse, amend_reason="Clerical correction", now=AMENDED, **clerical)

    april.refresh_from_db()
    assert (april.discrepancy, april.aspirated_ml, april.expected_residual_ml) == (True, D("3.00"), D("8.50"))
    assert reviews_of(april) == [Alert.Status.RESOLVED]


@pytest.mark.django_db
def test_correcting_the_aspirated_volume_of_a_concluded_short_residual_raises_a_new_review(clinic, nurse, physician):
    pump = filled_pump(clinic, nurse)
    april = concluded_short_residual(pump, nurse, physician)

    services.amend_refill(
        refill=april, actor=nurse, amend_reason="Syringe misread: 2 mL aspirated", aspirated_ml=D(2), now=AMENDED
    )

    april.refresh_from_db()
    assert april.discrepancy
    assert reviews_of(april) == [Alert.Status.RESOLVED, Alert.Status.TRIGGERED]
