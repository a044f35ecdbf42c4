"""Patients: as created and shown, and what a PATCH may change."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinics.models import Clinic
from clinics.serializers import (
    PlausibleDateField,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictInputMixin,
    users_clinics,
)

from .. import services
from ..models import Patient
from .common import TEXT

PATIENT_RISK_HELP = "A withdrawal-risk flag widens the refill margin by the clinic's high-risk extra days."


class PatientSerializer(StrictInputMixin, serializers.Serializer):
    """A patient of one of the user's clinics; the MRN is unique within the clinic. The status
    changes through ``PATCH`` with a reason and a date (``status``, ``status_reason``,
    ``status_changed_on``, and for a transfer ``transferred_to``)."""

    ignored_keys = frozenset({"pending_status_change"})

    id = serializers.IntegerField(read_only=True)
    clinic = ScopedPrimaryKeyRelatedField(Clinic, users_clinics)
    mrn = serializers.CharField(max_length=40)
    given_name = serializers.CharField(max_length=100)
    family_name = serializers.CharField(max_length=100)
    birth_date = PlausibleDateField()
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    caregiver_contact = serializers.CharField(
        source="contact_notes", **TEXT, required=False, help_text="Carer or emergency contact."
    )
    sci_at_or_above_t6 = StrictBooleanField(required=False, help_text=PATIENT_RISK_HELP)
    communication_difficulty = StrictBooleanField(required=False, help_text=PATIENT_RISK_HELP)
    prior_withdrawal = StrictBooleanField(required=False, help_text=PATIENT_RISK_HELP)
    extra_margin_days = serializers.IntegerField(
        min_value=0, max_value=60, required=False, help_text="Extra days of margin (travel, distance)."
    )
    renal_impairment = StrictBooleanField(required=False)
    cns_depressants = StrictBooleanField(required=False)
    pregnancy_or_breastfeeding = StrictBooleanField(required=False)
    risk_notes = serializers.CharField(**TEXT, required=False)
    status = serializers.ChoiceField(choices=Patient.Status.choices, read_only=True)
    status_reason = serializers.CharField(read_only=True)
    status_changed_on = serializers.DateField(read_only=True, allow_null=True)
    transferred_to = serializers.CharField(read_only=True)
    accepted_first_refill_on = serializers.DateField(read_only=True, allow_null=True)
    pending_status_change = serializers.SerializerMethodField(
        help_text="A transfer dated ahead, applied on its date: {status, effective_on, reason, transferred_to}."
    )

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "status": {"type": "string"},
                "effective_on": {"type": "string", "format": "date"},
                "reason": {"type": "string"},
                "transferred_to": {"type": "string"},
            },
        }
    )
    def get_pending_status_change(self, patient):
        change = services.pending_status_change(patient)
        if change is None:
            return None
        return {
            "status": change.status,
            "effective_on": change.effective_on.isoformat(),
            "reason": change.reason,
            "transferred_to": change.transferred_to,
        }

    def validate(self, attrs):
        clinic = attrs["clinic"]
        if attrs["birth_date"] > timezone.now().astimezone(clinic.zone).date():
            raise serializers.ValidationError({"birth_date": ["A birth date cannot be in the future."]})
        if Patient.objects.filter(clinic=clinic, mrn=attrs["mrn"]).exists():
            raise serializers.ValidationError({"mrn": ["A patient with this MRN already exists in this clinic."]})
        return attrs


class PatientUpdateSerializer(StrictInputMixin, serializers.Serializer):
    """The fields a PATCH may change; a risk flag or the extra days recompute the due dates at
    once. A status change needs ``status_reason``; ``status_changed_on`` defaults to today and
    only a transfer may be dated ahead (it takes effect on its date)."""

    UNCHANGEABLE = ("clinic",)
    ignored_keys = frozenset({"id", "clinic", "pending_status_change"})

    mrn = serializers.CharField(max_length=40, required=False)
    given_name = serializers.CharField(max_length=100, required=False)
    family_name = serializers.CharField(max_length=100, required=False)
    birth_date = PlausibleDateField(required=False)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    caregiver_contact = serializers.CharField(source="contact_notes", **TEXT, required=False)
    sci_at_or_above_t6 = StrictBooleanField(required=False, help_text=PATIENT_RISK_HELP)
    communication_difficulty = StrictBooleanField(required=False, help_text=PATIENT_RISK_HELP)
    prior_withdrawal = StrictBooleanField(required=False, help_text=PATIENT_RISK_HELP)
    extra_margin_days = serializers.IntegerField(min_value=0, max_value=60, required=False)
    renal_impairment = StrictBooleanField(required=False)
    cns_depressants = StrictBooleanField(required=False)
    pregnancy_or_breastfeeding = StrictBooleanField(required=False)
    risk_notes = serializers.CharField(**TEXT, required=False)
    status = serializers.ChoiceField(choices=Patient.Status.choices, required=False)
    status_reason = serializers.CharField(max_length=255, required=False, allow_blank=True)
    status_changed_on = PlausibleDateField(required=False)
    transferred_to = serializers.CharField(max_length=255, required=False, allow_blank=True)
    accepted_first_refill_on = PlausibleDateField(required=False, allow_null=True)

    def validate(self, attrs):
        patient = self.instance
        errors = {}
        if "clinic" in self.initial_data and str(self.initial_data["clinic"]) != str(patient.clinic_id):
            errors["clinic"] = ["A patient cannot move clinics: record a transfer instead."]
        if "birth_date" in attrs and attrs["birth_date"] > timezone.now().astimezone(patient.clinic.zone).date():
            errors["birth_date"] = ["A birth date cannot be in the future."]
        mrn = attrs.get("mrn")
        if mrn is not None and Patient.objects.filter(clinic=patient.clinic, mrn=mrn).exclude(pk=patient.pk).exists():
            errors["mrn"] = ["A patient with this MRN already exists in this clinic."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs
