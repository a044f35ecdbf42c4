"""The handover summary (``GET /api/v1/pumps/{id}/handover/``): ``services.handover_summary``'s
dict, as the printable page shows it, times in the sending clinic's zone."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from rest_framework import serializers

from clinics.serializers import AwareDateTimeField, ClinicZoneMixin

from .. import depletion
from ..models import Patient
from .common import RATE, concentration, dose, volume


class HandoverClinicSerializer(serializers.Serializer):
    name = serializers.CharField()
    phone = serializers.CharField()
    timezone = serializers.CharField(help_text="The sending clinic's zone: every time in the summary is given in it.")


class HandoverRiskSerializer(serializers.Serializer):
    sci_at_or_above_t6 = serializers.BooleanField()
    communication_difficulty = serializers.BooleanField()
    prior_withdrawal = serializers.BooleanField()


class HandoverPatientSerializer(serializers.Serializer):
    mrn = serializers.CharField(help_text="The sending clinic's MRN.")
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.DateField()
    status = serializers.ChoiceField(choices=Patient.Status.choices)
    transferred_to = serializers.CharField(help_text="The receiving clinic (blank unless transferred).")
    accepted_first_refill_on = serializers.DateField(
        allow_null=True, help_text="The first refill the receiving clinic accepted to perform."
    )
    withdrawal_risk = HandoverRiskSerializer()
    risk_notes = serializers.CharField()


class HandoverPumpSerializer(serializers.Serializer):
    reference = serializers.CharField()
    model = serializers.CharField()
    reservoir_ml = volume()
    serial_number = serializers.CharField()
    implanted_on = serializers.DateField()
    lra_ml = volume()
    eri_on = serializers.DateField(allow_null=True)
    end_of_service_on = serializers.DateField(allow_null=True)
    flow_rate_ml_per_day = serializers.DecimalField(**RATE, allow_null=True)
    assigned_nurse = serializers.CharField(help_text="Full name (blank when none is assigned).")


class HandoverDrugSerializer(serializers.Serializer):
    product = serializers.CharField(help_text="Blank for a compounded strength.")
    concentration_mcg_per_ml = concentration()
    lot = serializers.CharField()
    expires_on = serializers.DateField(allow_null=True)


class HandoverProgramSerializer(serializers.Serializer):
    effective_at = AwareDateTimeField()
    daily_dose_mcg = dose()
    bolus_mcg_per_day = dose()
    concentration_mcg_per_ml = concentration()
    rate_ml_per_day = serializers.DecimalField(**RATE)
    stop_reason = serializers.CharField()


class HandoverRefillSerializer(serializers.Serializer):
    performed_at = AwareDateTimeField()
    volume_added_ml = volume()
    aspirated_ml = volume()
    expected_residual_ml = volume(allow_null=True)
    performed_elsewhere = serializers.CharField()


class HandoverProjectionSerializer(serializers.Serializer):
    reservoir_ml_now = volume(help_text="Estimated volume now (nominal rates).")
    lra_at = AwareDateTimeField(allow_null=True)
    conservative_lra_at = AwareDateTimeField(allow_null=True)
    empty_at = AwareDateTimeField(allow_null=True)
    drug_expires_at = AwareDateTimeField()
    refill_due_on = serializers.DateField()
    status = serializers.ChoiceField(choices=depletion.STATUSES)


class HandoverSummarySerializer(ClinicZoneMixin, serializers.Serializer):
    """What the receiving clinic needs: pump, drug and concentration, current program, last
    refill, projected alarm and due dates — the printable handover page's content, times in the
    sending clinic's zone. ``drug`` and ``last_refill`` are null for a pump never filled,
    ``program`` with no program recorded, ``projection`` for a pump never filled or explanted."""

    generated_at = AwareDateTimeField()
    clinic = HandoverClinicSerializer()
    patient = HandoverPatientSerializer()
    pump = HandoverPumpSerializer()
    drug = HandoverDrugSerializer(allow_null=True)
    program = HandoverProgramSerializer(allow_null=True)
    last_refill = HandoverRefillSerializer(allow_null=True)
    projection = HandoverProjectionSerializer(allow_null=True)

    def clinic_zone(self, instance):
        return ZoneInfo(instance["clinic"]["timezone"])
