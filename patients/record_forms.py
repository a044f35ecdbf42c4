"""Forms of the record's life: registering and editing a patient, leaving care and coming back,
pump settings, explant, and a dose change between refills. Like forms.py they only translate
typed values; the services judge, and their refusals come back beside the fields."""

from decimal import Decimal

from crispy_forms.helper import FormHelper
from django import forms
from django.utils import timezone

from .forms import ClinicDateTimeField, DateInput, PersonChoiceField, RefillForm, dose_field, volume_field
from .models import NOTE_MAX_CHARS, Patient, Pump, PumpModel
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
        max_length=NOTE_MAX_CHARS,
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
    risk_notes = forms.CharField(
        label="Other risk notes", required=False, max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )

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


class PatientStatusForm(forms.Form):
    """Leaving care (transferred, deceased) or coming back (active again), with a date and a reason."""

    # The service names the stored fields (status_reason, status_changed_on).
    refusal_aliases = {"status_reason": "reason", "status_changed_on": "effective_on"}

    status = forms.ChoiceField(label="New status", choices=Patient.Status.choices, widget=forms.RadioSelect)
    effective_on = forms.DateField(
        label="From",
        widget=DateInput(),
        help_text="Today or earlier; a transfer may be dated ahead (the pump stays ours until then).",
    )
    reason = forms.CharField(label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=255)
    transferred_to = forms.CharField(label="Receiving clinic", required=False, max_length=255)
    accepted_first_refill_on = forms.DateField(
        label="First refill date the receiving clinic accepted",
        required=False,
        widget=DateInput(),
        help_text="Printed on the handover summary for the receiving clinic.",
    )

    def __init__(self, *args, patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        self.fields["status"].choices = [
            (value, "Active again" if value == Patient.Status.ACTIVE else label)
            for value, label in Patient.Status.choices
            if value != patient.status
        ]
        self.helper = _helper()

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        transfer = data["status"] == Patient.Status.TRANSFERRED
        return {
            "status": data["status"],
            "effective_on": data["effective_on"],
            "reason": data["reason"].strip(),
            "transferred_to": data["transferred_to"].strip() if transfer else "",
            "accepted_first_refill_on": data["accepted_first_refill_on"] if transfer else None,
        }


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


class ExplantForm(forms.Form):
    explanted_on = forms.DateField(label="Explanted on", widget=DateInput())
    reason = forms.ChoiceField(label="Reason", choices=())
    notes = forms.CharField(
        label="Notes", required=False, max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        reasons = getattr(Pump, "ExplantReason", None)
        self.fields["reason"].choices = reasons.choices if reasons is not None else []
        self.helper = _helper()


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


# --- implant with first fill, and replacement ---------------------------------------------------------


FILL_KEYS = (
    "performed_at",
    "aspirated_ml",
    "volume_added_ml",
    "concentration_mcg_per_ml",
    "daily_dose_mcg",
    "bolus_mcg_per_day",
    "drug_product",
    "drug_lot",
    "drug_expires_on",
    "dose_change_confirmed",
    "ordered_by",
    "notes",
)


class ImplantForm(RefillForm):
    """A new pump and, in the same form, its first fill and initial program (one service call)."""

    pump_model = forms.ModelChoiceField(
        label="Pump model", queryset=PumpModel.objects.filter(is_active=True), empty_label="— choose —"
    )
    serial_number = forms.CharField(label="Serial number", max_length=60)
    implanted_on = forms.DateField(label="Implanted on", widget=DateInput())
    lra_ml = volume_field(
        "Low-reservoir alarm threshold (mL)",
        min_value=Decimal("0"),
        required=False,
        help_text="Leave empty for the model's default.",
    )
    assigned_nurse = PersonChoiceField(
        label="Assigned nurse", queryset=None, required=False, empty_label="— unassigned —"
    )
    eri_on = forms.DateField(
        label="Elective replacement indicator (ERI) date", required=False, widget=DateInput(), help_text="If known."
    )
    flow_rate_ml_per_day = forms.DecimalField(
        label="Flow rate (mL/day)",
        max_digits=8,
        decimal_places=4,
        required=False,
        min_value=Decimal("0.0001"),
        help_text="Constant-flow models only: measured at implant.",
    )

    # A first fill aspirates nothing and has no expected residual: no discrepancy, no stop.
    LEFT_OUT = (
        "aspirated_ml",
        "performed_elsewhere",
        "outside_prescriber",
        "discrepancy_reason",
        "stop_reason",
        "withdrawal_signs",
    )

    def __init__(self, *args, patient, reference_pump=None, **kwargs):
        forms.Form.__init__(self, *args, **kwargs)
        self.patient = patient
        self.pump = None
        self.reference_pump = reference_pump
        for name in self.LEFT_OUT:
            del self.fields[name]
        clinic = patient.clinic
        self.set_up_fill_fields(clinic, None, None)
        self.fields["volume_added_ml"].label = "First fill — volume in the reservoir (mL)"
        self.fields["ordered_by"].empty_label = "— choose —"
        self.fields["ordered_by"].help_text = "A first fill is a dose order: a nurse names the physician."
        self.fields["assigned_nurse"].queryset = care_staff_of([clinic.pk])
        self.fields["lra_ml"].widget.attrs.update({"inputmode": "decimal"})
        self.fields["flow_rate_ml_per_day"].widget.attrs.update({"inputmode": "decimal"})
        models = {str(m.pk): m for m in self.fields["pump_model"].queryset}
        self.model_facts = {
            pk: {
                "reservoir_ml": f"{m.reservoir_ml.normalize():f}",
                "default_lra_ml": f"{m.default_lra_ml.normalize():f}",
                "constant_flow": m.is_constant_flow,
            }
            for pk, m in models.items()
        }

    def chosen_model(self):
        if hasattr(self, "cleaned_data") and self.cleaned_data.get("pump_model") is not None:
            return self.cleaned_data["pump_model"]
        return None

    def is_constant_flow(self) -> bool:
        model = self.chosen_model()
        return model is not None and model.is_constant_flow

    def clean(self):
        self.cleaned_data["aspirated_ml"] = Decimal("0")
        data = super().clean()
        model = data.get("pump_model")
        if model is not None:
            rate = data.get("flow_rate_ml_per_day")
            if model.is_constant_flow and not rate:
                self.add_error("flow_rate_ml_per_day", "A constant-flow pump needs its measured flow rate (mL/day).")
            if not model.is_constant_flow and rate:
                self.add_error("flow_rate_ml_per_day", "Only constant-flow pumps have a fixed flow rate.")
            volume = data.get("volume_added_ml")
            if volume is not None and volume > model.reservoir_ml:
                self.add_error(
                    "volume_added_ml", f"This reservoir holds {model.reservoir_ml.normalize():f} mL: never overfill."
                )
        return data

    def unsaved_pump(self) -> Pump | None:
        """The pump as typed, unsaved, for the live preview; None until its model is chosen."""
        data = self.cleaned_data
        model = data.get("pump_model")
        if model is None:
            return None
        pump = Pump(
            patient=self.patient,
            pump_model=model,
            serial_number=data.get("serial_number") or "",
            lra_ml=data.get("lra_ml") if data.get("lra_ml") is not None else model.default_lra_ml,
            flow_rate_ml_per_day=data.get("flow_rate_ml_per_day") if model.is_constant_flow else None,
        )
        return pump

    def fill_kwargs(self) -> dict:
        data = self.cleaned_data
        fill = {key: data.get(key) for key in FILL_KEYS}
        fill["aspirated_ml"] = Decimal("0")
        fill["drug_lot"] = (data.get("drug_lot") or "").strip()
        fill["notes"] = data.get("notes") or ""
        fill["dose_change_confirmed"] = bool(data.get("dose_change_confirmed"))
        return fill

    def implant_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "pump_model": data["pump_model"],
            "serial_number": data["serial_number"].strip(),
            "implanted_on": data["implanted_on"],
            "lra_ml": data["lra_ml"],
            "assigned_nurse": data["assigned_nurse"],
            "eri_on": data["eri_on"],
            "flow_rate_ml_per_day": data["flow_rate_ml_per_day"] if data["pump_model"].is_constant_flow else None,
            "fill": self.fill_kwargs(),
        }


class ReplaceForm(ImplantForm):
    """Explant the old pump and implant the new one with its first fill, in one step."""

    explanted_on = forms.DateField(label="Old pump explanted on", widget=DateInput())

    def clean(self):
        data = super().clean()
        explanted, implanted = data.get("explanted_on"), data.get("implanted_on")
        if explanted and self.reference_pump and explanted < self.reference_pump.implanted_on:
            self.add_error("explanted_on", "The old pump cannot be explanted before it was implanted.")
        if explanted and implanted and implanted < explanted:
            self.add_error("implanted_on", "The new pump is implanted on or after the old one's explant.")
        return data
