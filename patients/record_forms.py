"""Forms of the record's life: registering and editing a patient, pump settings, and a dose
change between refills. Like forms.py they only translate
typed values; the services judge, and their refusals come back beside the fields."""

from decimal import Decimal

from crispy_forms.helper import FormHelper
from django import forms
from django.utils import timezone

from .forms import ClinicDateTimeField, DateInput, PersonChoiceField, dose_field, volume_field
from .models import Patient
from .selectors import care_staff_of, physicians_of


def _helper() -> FormHelper:
    helper = FormHelper()
    helper.form_tag = False
    helper.disable_csrf = True
    return helper


def _today(clinic):
    return timezone.now().astimezone(clinic.zone).date()


# --- patients ------------------------------------------------------------------------------------


WITHDRAWAL_RISK_FIELDS = ("sci_at_or_above_t6", "communication_difficulty", "prior_withdrawal")
OTHER_RISK_FIELDS = ("renal_impairment", "cns_depressants", "pregnancy_or_breastfeeding")


class PatientForm(forms.Form):
    """A patient's details as staff register them; the withdrawal-risk flags widen the margin."""

    clinic = forms.ModelChoiceField(label="Clinic", queryset=None, empty_label=None)
    mrn = forms.CharField(label="MRN (medical record number)", max_length=40)
    given_name = forms.CharField(label="Given name", max_length=100)
    family_name = forms.CharField(label="Family name", max_length=100)
    birth_date = forms.DateField(label="Birth date", widget=DateInput())
    phone = forms.CharField(label="Phone", max_length=40, required=False)
    contact_notes = forms.CharField(
        label="Caregiver or emergency contact",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Name, relation and phone of whoever to call when the patient cannot answer.",
    )
    sci_at_or_above_t6 = forms.BooleanField(label="Spinal cord injury at T6 or above", required=False)
    communication_difficulty = forms.BooleanField(label="Communication difficulty", required=False)
    prior_withdrawal = forms.BooleanField(label="History of baclofen withdrawal", required=False)
    extra_margin_days = forms.IntegerField(
        label="Extra margin days",
        min_value=0,
        max_value=60,
        initial=0,
        help_text="Days added to the refill margin for this patient (travel, distance).",
    )
    renal_impairment = forms.BooleanField(label="Renal impairment", required=False)
    cns_depressants = forms.BooleanField(label="Takes CNS depressants", required=False)
    pregnancy_or_breastfeeding = forms.BooleanField(label="Pregnancy or breast-feeding", required=False)
    risk_notes = forms.CharField(label="Other risk notes", required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, clinics, patient=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        if patient is not None or len(clinics) == 1:
            # The clinic of a patient does not change here; one clinic needs no choice.
            del self.fields["clinic"]
            self.fixed_clinic = patient.clinic if patient is not None else clinics[0]
        else:
            self.fixed_clinic = None
            self.fields["clinic"].queryset = type(clinics[0]).objects.filter(pk__in=[c.pk for c in clinics])
        self.helper = _helper()

    @property
    def chosen_clinic(self):
        return self.fixed_clinic or self.cleaned_data.get("clinic")

    def clean_mrn(self):
        return self.cleaned_data["mrn"].strip()

    def clean(self):
        data = super().clean()
        clinic = self.chosen_clinic
        if clinic is None:
            return data
        birth_date = data.get("birth_date")
        if birth_date is not None and birth_date > _today(clinic):
            self.add_error("birth_date", "A birth date cannot be in the future.")
        mrn = data.get("mrn")
        if mrn:
            same = Patient.objects.filter(clinic=clinic, mrn__iexact=mrn)
            if self.patient is not None:
                same = same.exclude(pk=self.patient.pk)
            if same.exists():
                self.add_error("mrn", "Another patient of this clinic has this MRN.")
        return data

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("clinic", None)
        for name in ("given_name", "family_name", "phone"):
            data[name] = data[name].strip()
        return data

    def changed_values(self) -> dict:
        """The fields whose value differs from the stored patient (only those are sent)."""
        wanted = self.service_kwargs()
        return {name: value for name, value in wanted.items() if getattr(self.patient, name) != value}


# --- pumps -----------------------------------------------------------------------------------------


class PumpSettingsForm(forms.Form):
    """What changes on an implanted pump: its nurse, alarm threshold, ERI date, flow rate."""

    assigned_nurse = PersonChoiceField(
        label="Assigned nurse", queryset=None, required=False, empty_label="— unassigned —"
    )
    lra_ml = volume_field("Low-reservoir alarm threshold (mL)", min_value=Decimal("0"))
    eri_on = forms.DateField(
        label="Elective replacement indicator (ERI) date",
        required=False,
        widget=DateInput(),
        help_text="When the battery's replacement indicator is or was due, if known.",
    )
    flow_rate_ml_per_day = forms.DecimalField(
        label="Flow rate (mL/day)",
        max_digits=8,
        decimal_places=4,
        required=False,
        min_value=Decimal("0.0001"),
        help_text="Constant-flow devices only: measured at implant.",
    )

    def __init__(self, *args, clinic, pump_model=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assigned_nurse"].queryset = care_staff_of([clinic.pk])
        if pump_model is not None:
            self.fields["lra_ml"].help_text = (
                f"The model's default is {pump_model.default_lra_ml.normalize():f} mL; "
                f"the reservoir holds {pump_model.reservoir_ml.normalize():f} mL."
            )
            if not pump_model.is_constant_flow:
                del self.fields["flow_rate_ml_per_day"]
        for name in ("lra_ml", "flow_rate_ml_per_day"):
            if name in self.fields:
                self.fields[name].widget.attrs.update({"inputmode": "decimal"})
        self.helper = _helper()

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        values = {
            "assigned_nurse": data["assigned_nurse"],
            "lra_ml": data["lra_ml"],
            "eri_on": data["eri_on"],
        }
        if "flow_rate_ml_per_day" in self.fields:
            values["flow_rate_ml_per_day"] = data["flow_rate_ml_per_day"]
        return values

    def changed_values(self, pump) -> dict:
        return {name: value for name, value in self.service_kwargs().items() if getattr(pump, name) != value}


# --- a dose change between refills -------------------------------------------------------------------


class ProgramChangeForm(forms.Form):
    """A physician's order between refills (in clinic, after a trial, an MRI stop or restart)."""

    effective_at = ClinicDateTimeField(label="Effective at")
    daily_dose_mcg = dose_field("New daily dose (mcg/day)", min_value=Decimal("0"))
    bolus_mcg_per_day = dose_field(
        "Bolus allowance (mcg/day)",
        initial=Decimal("0"),
        required=False,
        min_value=Decimal("0"),
        help_text="Worst-case patient-activated boluses per day; 0 if none.",
    )
    ordered_by = PersonChoiceField(label="Ordering physician", queryset=None, required=False, empty_label="— choose —")
    stop_reason = forms.CharField(
        label="Stop reason (a zero dose only)",
        required=False,
        max_length=255,
        help_text="For example: MRI with the reservoir emptied.",
    )
    dose_change_confirmed = forms.BooleanField(
        label="I confirm this dose (a change above the clinic's limit, or a high dose)", required=False
    )

    def __init__(self, *args, pump, **kwargs):
        super().__init__(*args, **kwargs)
        self.pump = pump
        clinic = pump.patient.clinic
        self.fields["effective_at"].zone = clinic.zone
        self.fields["effective_at"].help_text = f"Clinic time ({clinic.timezone})."
        self.fields["ordered_by"].queryset = physicians_of(clinic.pk)
        self.fields["ordered_by"].help_text = "Required when a nurse enters the change."
        for name in ("daily_dose_mcg", "bolus_mcg_per_day"):
            self.fields[name].widget.attrs.update({"inputmode": "decimal"})
        self.helper = _helper()

    def clean_bolus_mcg_per_day(self):
        value = self.cleaned_data.get("bolus_mcg_per_day")
        return Decimal("0") if value is None else value

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "effective_at": data["effective_at"],
            "daily_dose_mcg": data["daily_dose_mcg"],
            "bolus_mcg_per_day": data["bolus_mcg_per_day"],
            "ordered_by": data["ordered_by"],
            "stop_reason": data["stop_reason"],
            "dose_change_confirmed": data["dose_change_confirmed"],
        }
