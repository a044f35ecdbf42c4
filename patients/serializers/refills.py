"""Refill visits: recorded, amended, shown."""

from __future__ import annotations

from rest_framework import serializers

from clinics.serializers import (
    AwareDateTimeField,
    ClinicZoneMixin,
    PlausibleDateField,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictInputMixin,
    clinic_staff,
)

from .. import services
from ..models import REASON_MAX_CHARS, DrugProduct
from .common import REASON, TEXT, User, concentration, dose, pump_zone, volume


def withdrawal_signs_field():
    return serializers.ListField(
        child=serializers.ChoiceField(choices=list(services.WITHDRAWAL_SIGNS.items())),
        required=False,
        max_length=len(services.WITHDRAWAL_SIGNS),
        help_text="Withdrawal assessment at a refill after an empty reservoir: any sign raises the emergency alarm.",
    )


class RefillCreateSerializer(StrictInputMixin, serializers.Serializer):
    """A refill as recorded at the pump: what was aspirated, what was added, the drug and the new program."""

    performed_at = AwareDateTimeField()
    aspirated_ml = volume()
    volume_added_ml = volume()
    concentration_mcg_per_ml = concentration()
    daily_dose_mcg = dose(default=None, allow_null=True, help_text="Constant-flow pumps: omit (follows the flow).")
    bolus_mcg_per_day = dose(required=False)
    drug_product = serializers.PrimaryKeyRelatedField(
        queryset=DrugProduct.objects.filter(is_active=True), required=False, allow_null=True
    )
    drug_lot = serializers.CharField(max_length=60, required=False, allow_blank=True)
    drug_expires_on = PlausibleDateField(
        required=False, allow_null=True, help_text="Vial or beyond-use date; required for a compounded concentration."
    )
    performed_elsewhere = serializers.CharField(max_length=255, required=False, allow_blank=True)
    stop_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    discrepancy_reason = serializers.CharField(**REASON, required=False)
    dose_change_confirmed = StrictBooleanField(required=False)
    ordered_by = ScopedPrimaryKeyRelatedField(
        User,
        clinic_staff,
        required=False,
        allow_null=True,
        help_text="The ordering physician: required when a nurse's entry changes the dose (a first fill always does).",
    )
    outside_prescriber = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="A refill done elsewhere: the prescriber there may stand in for ordered_by.",
    )
    withdrawal_signs = withdrawal_signs_field()
    notes = serializers.CharField(**TEXT, required=False)


class RefillAmendSerializer(StrictInputMixin, serializers.Serializer):
    """An amendment: the changed fields and the reason (the original stays in the history)."""

    # The service files the reason in the history rows' change reason (100 characters), after
    # "Refill amended: " on the program's row.
    amend_reason = serializers.CharField(max_length=REASON_MAX_CHARS)
    performed_at = AwareDateTimeField(required=False)
    aspirated_ml = volume(required=False)
    volume_added_ml = volume(required=False)
    concentration_mcg_per_ml = concentration(required=False)
    daily_dose_mcg = dose(required=False)
    bolus_mcg_per_day = dose(required=False)
    drug_product = serializers.PrimaryKeyRelatedField(
        queryset=DrugProduct.objects.filter(is_active=True), required=False, allow_null=True
    )
    drug_lot = serializers.CharField(max_length=60, required=False, allow_blank=True)
    drug_expires_on = PlausibleDateField(required=False, allow_null=True)
    performed_elsewhere = serializers.CharField(max_length=255, required=False, allow_blank=True)
    stop_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    discrepancy_reason = serializers.CharField(**REASON, required=False)
    dose_change_confirmed = StrictBooleanField(required=False)
    ordered_by = ScopedPrimaryKeyRelatedField(
        User,
        clinic_staff,
        required=False,
        allow_null=True,
        help_text="The ordering physician: required when a nurse's amendment changes the dose.",
    )
    outside_prescriber = serializers.CharField(max_length=255, required=False, allow_blank=True)
    notes = serializers.CharField(**TEXT, required=False)


class RefillVisitSerializer(ClinicZoneMixin, serializers.Serializer):
    """A refill visit, with the residual the projection expected and whether it was a discrepancy."""

    id = serializers.IntegerField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    performed_at = AwareDateTimeField(read_only=True)
    performed_by = serializers.IntegerField(source="performed_by_id", read_only=True, allow_null=True)
    performed_elsewhere = serializers.CharField(read_only=True)
    expected_residual_ml = volume(read_only=True, allow_null=True)
    aspirated_ml = volume(read_only=True)
    volume_added_ml = volume(read_only=True)
    concentration_mcg_per_ml = concentration(read_only=True)
    daily_dose_mcg = dose(source="program.daily_dose_mcg", read_only=True)
    bolus_mcg_per_day = dose(source="program.bolus_mcg_per_day", read_only=True)
    stop_reason = serializers.CharField(source="program.stop_reason", read_only=True)
    ordered_by = serializers.IntegerField(source="program.ordered_by_id", read_only=True, allow_null=True)
    outside_prescriber = serializers.CharField(source="program.outside_prescriber", read_only=True)
    empty_since = AwareDateTimeField(
        read_only=True, allow_null=True, help_text="Refilled after a projected empty reservoir: empty since then."
    )
    nothing_aspirated = serializers.BooleanField(read_only=True)
    withdrawal_signs = serializers.ListField(child=serializers.CharField(), read_only=True)
    discrepancy = serializers.BooleanField(read_only=True)
    discrepancy_reason = serializers.CharField(read_only=True)
    drug_product = serializers.IntegerField(source="drug_product_id", read_only=True, allow_null=True)
    drug_lot = serializers.CharField(read_only=True)
    drug_expires_on = serializers.DateField(read_only=True, allow_null=True)
    notes = serializers.CharField(read_only=True)
    amended_at = AwareDateTimeField(read_only=True, allow_null=True)
    amend_reason = serializers.CharField(read_only=True)

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)
