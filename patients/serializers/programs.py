"""Dose programs: a new one, and as shown."""

from __future__ import annotations

from rest_framework import serializers

from clinics.serializers import (
    AwareDateTimeField,
    ClinicZoneMixin,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictInputMixin,
    clinic_staff,
)

from .common import User, concentration, dose, pump_zone


class ProgramCreateSerializer(StrictInputMixin, serializers.Serializer):
    """A new dose program; the concentration stays the last fill's."""

    effective_at = AwareDateTimeField()
    daily_dose_mcg = dose()
    bolus_mcg_per_day = dose(required=False)
    ordered_by = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    stop_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    dose_change_confirmed = StrictBooleanField(required=False)


class ProgramSerializer(ClinicZoneMixin, serializers.Serializer):
    """A dose program (immutable: a change is a new one)."""

    id = serializers.IntegerField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    effective_at = AwareDateTimeField(read_only=True)
    concentration_mcg_per_ml = concentration(read_only=True)
    daily_dose_mcg = dose(read_only=True)
    bolus_mcg_per_day = dose(read_only=True)
    stop_reason = serializers.CharField(read_only=True)
    ordered_by = serializers.IntegerField(source="ordered_by_id", read_only=True, allow_null=True)
    outside_prescriber = serializers.CharField(read_only=True)
    verified_by = serializers.IntegerField(
        source="verified_by_id", read_only=True, allow_null=True, help_text="The countersigning physician."
    )
    verified_at = AwareDateTimeField(read_only=True, allow_null=True)
    countersign_requested_at = AwareDateTimeField(
        read_only=True, allow_null=True, help_text="A nurse-entered order waiting for a physician since then."
    )
    entered_by = serializers.IntegerField(source="entered_by_id", read_only=True, allow_null=True)

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)
