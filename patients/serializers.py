"""API serializers for the pump and drug catalogues, patients, pumps and their care records.

Input serializers only parse and check shapes (decimals, choices, offsets, ids in the user's
scope); every clinical rule is the service's (patients/services.py), which refuses per field.
Output serializers show times in the pump's clinic's zone.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clinics.models import Clinic
from clinics.serializers import (
    AwareDateTimeField,
    ClinicZoneMixin,
    PlausibleDateField,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictInputMixin,
    clinic_staff,
    users_clinics,
)

from . import depletion, services
from .models import (
    NOTE_MAX_CHARS,
    REASON_MAX_CHARS,
    Appointment,
    DrugProduct,
    Patient,
    Pump,
    PumpEvent,
    PumpModel,
)

User = get_user_model()

# The models' decimal shapes (patients/models.py): more digits or places are refused, not rounded.
VOLUME = {"max_digits": 6, "decimal_places": 2}  # mL
DOSE = {"max_digits": 8, "decimal_places": 2}  # mcg/day
CONCENTRATION = {"max_digits": 8, "decimal_places": 2}  # mcg/mL
RATE = {"max_digits": 8, "decimal_places": 4}  # mL/day
# Free text (patients/models.py): notes 2,000 characters, reasons 500; longer is 400 on the field.
TEXT = {"max_length": NOTE_MAX_CHARS, "allow_blank": True}
REASON = {"max_length": REASON_MAX_CHARS, "allow_blank": True}
CENT = Decimal("0.01")


def volume(**kwargs):
    return serializers.DecimalField(**VOLUME, **kwargs)


def dose(**kwargs):
    return serializers.DecimalField(**DOSE, **kwargs)


def concentration(**kwargs):
    return serializers.DecimalField(**CONCENTRATION, **kwargs)


def users_patients(context):
    return Patient.objects.for_user(context["request"].user)


def active_pump_models(context):
    return PumpModel.objects.filter(is_active=True)


def pump_zone(pump: Pump):
    return pump.patient.clinic.zone


# --- catalogue ----------------------------------------------------------------------------------


class PumpModelSerializer(StrictInputMixin, serializers.ModelSerializer):
    """A pump model of the catalogue (CLINICAL.md "Devices")."""

    reservoir_ml = volume(min_value=CENT)
    default_lra_ml = volume(min_value=Decimal("0"), required=False)

    class Meta:
        model = PumpModel
        fields = ["id", "manufacturer", "name", "reservoir_ml", "default_lra_ml"]

    def validate(self, attrs):
        lra = attrs.get("default_lra_ml", PumpModel._meta.get_field("default_lra_ml").default)
        if lra >= attrs["reservoir_ml"]:
            raise serializers.ValidationError({"default_lra_ml": ["The alarm threshold must be below the reservoir."]})
        return attrs


# --- patients -------------------------------------------------------------------------------------


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


# --- pumps and their projection ---------------------------------------------------------------


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


# --- refills -----------------------------------------------------------------------------------------


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


# --- programs -----------------------------------------------------------------------------------------


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


# --- appointments -----------------------------------------------------------------------------------------


class AppointmentCreateSerializer(StrictInputMixin, serializers.Serializer):
    """An appointment to book."""

    kind = serializers.ChoiceField(choices=Appointment.Kind.choices)
    scheduled_for = AwareDateTimeField()
    assigned_to = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    notes = serializers.CharField(**TEXT, required=False)
    closed_day_confirmed = StrictBooleanField(
        required=False, help_text="Book on a day the clinic is closed (weekday, public holiday, closure)."
    )


class AppointmentSerializer(ClinicZoneMixin, serializers.Serializer):
    """An appointment and its status."""

    id = serializers.IntegerField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    kind = serializers.ChoiceField(choices=Appointment.Kind.choices, read_only=True)
    scheduled_for = AwareDateTimeField(read_only=True)
    assigned_to = serializers.IntegerField(source="assigned_to_id", read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=Appointment.Status.choices, read_only=True)
    status_changed_at = AwareDateTimeField(read_only=True, allow_null=True)
    notes = serializers.CharField(read_only=True)

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)


class ScheduledAppointmentSerializer(AppointmentSerializer):
    """A new appointment with the service's warnings (a refill booked after the due date, …)."""

    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)


# --- pump events -----------------------------------------------------------------------------------------


class PumpEventCreateSerializer(StrictInputMixin, serializers.Serializer):
    """An alarm heard or a patient's call, with the checklist items reported."""

    kind = serializers.ChoiceField(choices=PumpEvent.Kind.choices)
    occurred_at = AwareDateTimeField()
    source = serializers.ChoiceField(choices=PumpEvent.Source.choices, required=False)
    symptoms = serializers.ListField(
        child=serializers.ChoiceField(choices=list(services.SYMPTOMS.items())),
        required=False,
        max_length=len(services.SYMPTOMS),
        help_text="Items of the patient call checklist that were reported.",
    )
    notes = serializers.CharField(**TEXT, required=False)


class PumpEventSerializer(ClinicZoneMixin, serializers.Serializer):
    """A recorded pump event."""

    id = serializers.IntegerField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    kind = serializers.ChoiceField(choices=PumpEvent.Kind.choices, read_only=True)
    occurred_at = AwareDateTimeField(read_only=True)
    source = serializers.ChoiceField(choices=PumpEvent.Source.choices, read_only=True)
    symptoms = serializers.ListField(child=serializers.CharField(), read_only=True)
    notes = serializers.CharField(read_only=True)
    reported_by = serializers.IntegerField(source="reported_by_id", read_only=True, allow_null=True)
    emergency = serializers.SerializerMethodField(
        help_text="A critical alarm, withdrawal or overdose signs: emergency care now, not a booked refill."
    )

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)

    def get_emergency(self, event) -> bool:
        return services.is_emergency(event.kind, event.symptoms)
