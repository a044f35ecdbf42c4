"""Pumps and their projection; implant with the first fill, explant, replace."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
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

from .. import depletion
from ..models import DrugProduct, Patient, Pump, PumpModel
from .common import (
    CENT,
    RATE,
    TEXT,
    VOLUME,
    User,
    active_pump_models,
    concentration,
    dose,
    pump_zone,
    users_patients,
    volume,
)


class ProjectionSerializer(ClinicZoneMixin, serializers.Serializer):
    """The pump's projection judged now: the estimated volume now, the alarm, empty and expiry
    times, the refill due date and the status."""

    reservoir_ml = serializers.SerializerMethodField()
    lra_at = AwareDateTimeField(read_only=True, allow_null=True)
    empty_at = AwareDateTimeField(read_only=True, allow_null=True)
    conservative_lra_at = AwareDateTimeField(read_only=True, allow_null=True)
    drug_expires_at = AwareDateTimeField(read_only=True)
    refill_due_on = serializers.DateField(read_only=True)
    unmoved_refill_due_on = serializers.DateField(
        read_only=True, help_text="The due date before it moved to the clinic's last open day on or before it."
    )
    end_of_service_on = serializers.DateField(
        read_only=True, allow_null=True, help_text="ERI date + the model's days to end of service (battery pumps)."
    )
    status = serializers.SerializerMethodField()

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)

    def _now(self):
        return self.context.get("now") or timezone.now()

    @extend_schema_field(serializers.DecimalField(**VOLUME))
    def get_reservoir_ml(self, projection) -> Decimal:
        # Rounded down: the estimate never shows more drug than there may be.
        return projection.reservoir_ml_at(self._now()).quantize(CENT, rounding=ROUND_FLOOR)

    @extend_schema_field(serializers.ChoiceField(choices=depletion.STATUSES))
    def get_status(self, projection) -> str:
        return projection.status_at(self._now())


class PumpSerializer(StrictInputMixin, ClinicZoneMixin, serializers.Serializer):
    """A pump as created and shown; ``lra_ml`` defaults to the model's alarm threshold."""

    id = serializers.IntegerField(read_only=True)
    patient = ScopedPrimaryKeyRelatedField(Patient, users_patients)
    pump_model = ScopedPrimaryKeyRelatedField(PumpModel, active_pump_models)
    serial_number = serializers.CharField(max_length=60)
    implanted_on = PlausibleDateField()
    lra_ml = volume(required=False, min_value=Decimal("0"))
    eri_on = PlausibleDateField(required=False, allow_null=True)
    assigned_nurse = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    flow_rate_ml_per_day = serializers.DecimalField(
        **RATE, required=False, allow_null=True, min_value=Decimal("0.0001")
    )
    explanted_on = PlausibleDateField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=Pump.Status.choices, read_only=True)
    explant_reason = serializers.ChoiceField(choices=Pump.ExplantReason.choices, read_only=True, allow_blank=True)
    replaces = serializers.IntegerField(source="replaces_id", read_only=True, allow_null=True)
    end_of_service_on = serializers.DateField(read_only=True, allow_null=True)
    projection = ProjectionSerializer(read_only=True, allow_null=True)

    def clinic_zone(self, instance):
        return pump_zone(instance)

    def validate(self, attrs):
        errors = {}
        if Pump.objects.filter(pump_model=attrs["pump_model"], serial_number=attrs["serial_number"]).exists():
            errors["serial_number"] = ["A pump of this model with this serial number is already registered."]
        explanted_on = attrs.get("explanted_on")
        if explanted_on is not None and explanted_on < attrs["implanted_on"]:
            errors["explanted_on"] = ["A pump cannot be explanted before it was implanted."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PumpUpdateSerializer(StrictInputMixin, serializers.Serializer):
    """The pump settings a PATCH may change (services.PUMP_FIELDS). A client may send the pump
    back as it read it: unchanged identity fields pass, changed ones are refused."""

    UNCHANGEABLE = ("patient", "pump_model", "implanted_on")
    ignored_keys = frozenset(
        {"id", "projection", "status", "explant_reason", "replaces", "end_of_service_on", *UNCHANGEABLE}
    )

    serial_number = serializers.CharField(max_length=60, required=False)
    lra_ml = volume(required=False, min_value=Decimal("0"))
    eri_on = PlausibleDateField(required=False, allow_null=True)
    assigned_nurse = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    flow_rate_ml_per_day = serializers.DecimalField(
        **RATE, required=False, allow_null=True, min_value=Decimal("0.0001")
    )
    explanted_on = PlausibleDateField(required=False, allow_null=True)

    def validate(self, attrs):
        pump = self.instance
        errors = {}
        current = {
            "patient": str(pump.patient_id),
            "pump_model": str(pump.pump_model_id),
            "implanted_on": pump.implanted_on.isoformat(),
        }
        for field in self.UNCHANGEABLE:
            if field in self.initial_data and str(self.initial_data[field]) != current[field]:
                errors[field] = ["This cannot be changed: record a new pump instead."]
        serial = attrs.get("serial_number")
        if (
            serial is not None
            and Pump.objects.filter(pump_model_id=pump.pump_model_id, serial_number=serial).exclude(pk=pump.pk).exists()
        ):
            errors["serial_number"] = ["A pump of this model with this serial number is already registered."]
        explanted_on = attrs.get("explanted_on")
        if explanted_on is not None and explanted_on < pump.implanted_on:
            errors["explanted_on"] = ["A pump cannot be explanted before it was implanted."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- implant, explant, replace -----------------------------------------------------------------------


class FirstFillSerializer(StrictInputMixin, serializers.Serializer):
    """The first fill and initial program of a new pump (no expected residual; a nurse names the
    ordering physician: a first fill is always a dose change)."""

    performed_at = AwareDateTimeField()
    aspirated_ml = volume(default=Decimal("0"))
    volume_added_ml = volume()
    concentration_mcg_per_ml = concentration()
    daily_dose_mcg = dose(default=None, allow_null=True, help_text="Constant-flow pumps: omit (follows the flow).")
    bolus_mcg_per_day = dose(required=False)
    drug_product = serializers.PrimaryKeyRelatedField(
        queryset=DrugProduct.objects.filter(is_active=True), required=False, allow_null=True
    )
    drug_lot = serializers.CharField(max_length=60, required=False, allow_blank=True)
    drug_expires_on = PlausibleDateField(required=False, allow_null=True)
    dose_change_confirmed = StrictBooleanField(required=False)
    ordered_by = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    notes = serializers.CharField(**TEXT, required=False)


class PumpImplantSerializer(StrictInputMixin, serializers.Serializer):
    """A new pump with its first fill, in one transaction; ``lra_ml`` defaults to the model's."""

    pump_model = ScopedPrimaryKeyRelatedField(PumpModel, active_pump_models)
    serial_number = serializers.CharField(max_length=60)
    implanted_on = PlausibleDateField()
    lra_ml = volume(required=False, min_value=Decimal("0"))
    assigned_nurse = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    eri_on = PlausibleDateField(required=False, allow_null=True)
    flow_rate_ml_per_day = serializers.DecimalField(
        **RATE, required=False, allow_null=True, min_value=Decimal("0.0001")
    )
    fill = FirstFillSerializer()


class PumpReplaceSerializer(PumpImplantSerializer):
    """Explant the pump (reason: replacement) and implant its successor with the first fill."""

    explanted_on = PlausibleDateField()
    explant_notes = serializers.CharField(**TEXT, required=False)


class PumpExplantSerializer(StrictInputMixin, serializers.Serializer):
    """An explant: the date and the reason; the pump leaves the worklist and the scan."""

    explanted_on = PlausibleDateField()
    reason = serializers.ChoiceField(choices=Pump.ExplantReason.choices)
    notes = serializers.CharField(**TEXT, required=False)
