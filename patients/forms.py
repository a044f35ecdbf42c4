"""Forms of the staff pages. They translate typed values; the rules live in services.py, whose
refusals come back here as field errors (``add_refusal``)."""

from datetime import UTC, datetime
from decimal import Decimal

from crispy_forms.helper import FormHelper
from django import forms
from django.utils import timezone

from clinics.models import Clinic

from . import services
from .models import NOTE_MAX_CHARS, REASON_MAX_CHARS, Appointment, DrugProduct, PumpEvent
from .selectors import TIERS, care_staff_of, physicians_of

LOCAL_INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def add_refusal(form: forms.Form, refusal) -> None:
    """Show a service's refusal beside the fields it names (the rest above the form). A form may
    name its fields differently from the model (``refusal_aliases``: {service name: field})."""
    aliases = getattr(form, "refusal_aliases", {})
    for field, messages in refusal.message_dict.items():
        field = aliases.get(field, field)
        target = field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)


def person(user) -> str:
    return user.get_full_name() or user.username


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return person(obj)


class ClinicDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` input read in the clinic's zone, never the server's or the browser's."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, *, zone=None, **kwargs):
        self.zone = zone
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, datetime) and timezone.is_aware(value):
            return value.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        return value

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            naive = value.replace(tzinfo=None) if timezone.is_naive(value) else None
            if naive is None:
                return value
        else:
            naive = None
            for fmt in LOCAL_INPUT_FORMATS:
                try:
                    naive = datetime.strptime(str(value).strip(), fmt)
                    break
                except ValueError:
                    continue
            if naive is None:
                raise forms.ValidationError("Enter a date and time.", code="invalid")
        aware = naive.replace(tzinfo=self.zone)
        # A wall-clock time skipped by a daylight-saving change does not exist: ask again.
        if aware.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != naive:
            raise forms.ValidationError(
                "This time does not exist in the clinic's time zone (the clocks changed).", code="nonexistent"
            )
        return aware


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def volume_field(label, **kwargs):
    return forms.DecimalField(label=label, max_digits=6, decimal_places=2, **kwargs)


def dose_field(label, **kwargs):
    return forms.DecimalField(label=label, max_digits=8, decimal_places=2, **kwargs)


# --- the worklist's filters ----------------------------------------------------------------


class WorklistFilterForm(forms.Form):
    q = forms.CharField(label="Search name or MRN", required=False, max_length=100)
    status = forms.ChoiceField(label="Urgency", required=False, choices=[("", "All"), *TIERS])
    nurse = forms.TypedChoiceField(label="Assigned nurse", required=False, coerce=int, empty_value=None)
    clinic = forms.TypedChoiceField(label="Clinic", required=False, coerce=int, empty_value=None)

    def __init__(self, *args, user, clinics, **kwargs):
        super().__init__(*args, **kwargs)
        clinic_ids = None if user.is_superuser else [c.pk for c in clinics]
        staff = list(care_staff_of(clinic_ids))
        self.fields["nurse"].choices = [("", "Anyone"), (str(user.pk), "Assigned to me")] + [
            (str(u.pk), person(u)) for u in staff if u.pk != user.pk
        ]
        self.fields["clinic"].choices = [("", "All my clinics")] + [(str(c.pk), c.name) for c in clinics]
        if len(clinics) < 2:
            del self.fields["clinic"]


# --- refills ----------------------------------------------------------------------------------


class RefillForm(forms.Form):
    """A refill as the nurse types it at the bedside: every unit in the label."""

    performed_at = ClinicDateTimeField(label="Performed at")
    aspirated_ml = volume_field("Residual aspirated (mL)", min_value=Decimal("0"))
    volume_added_ml = volume_field("Volume added — the new reservoir volume (mL)")
    drug_product = forms.ModelChoiceField(
        label="Drug product",
        queryset=DrugProduct.objects.filter(is_active=True),
        required=False,
        empty_label="Compounded (not in the catalogue)",
    )
    concentration_mcg_per_ml = forms.DecimalField(
        label="Concentration (mcg/mL)",
        max_digits=8,
        decimal_places=2,
        required=False,
        help_text="Taken from the product; type it for a compounded drug.",
    )
    drug_expires_on = forms.DateField(
        label="Vial expiry or beyond-use date",
        required=False,
        widget=DateInput(),
        help_text="Required for a compounded concentration.",
    )
    drug_lot = forms.CharField(label="Drug lot number", required=False, max_length=60)
    daily_dose_mcg = dose_field("Daily dose (mcg/day)", required=False)
    bolus_mcg_per_day = dose_field(
        "Bolus allowance (mcg/day)",
        initial=Decimal("0"),
        required=False,
        help_text="Worst-case patient-activated boluses per day; 0 if none.",
    )
    ordered_by = PersonChoiceField(
        label="Ordering physician", queryset=None, required=False, empty_label="— none (dose unchanged) —"
    )
    dose_change_confirmed = forms.BooleanField(
        label="I confirm this dose (a change above the clinic's limit, or a high dose)", required=False
    )
    stop_reason = forms.CharField(
        label="Stop reason (a zero dose only)",
        required=False,
        max_length=255,
        help_text="For example: MRI with the reservoir emptied.",
    )
    discrepancy_reason = forms.CharField(
        label="Reason the residual differs from the expected volume",
        required=False,
        max_length=REASON_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when the residual is out of tolerance; a physician will review it.",
    )
    performed_elsewhere = forms.CharField(
        label="Performed elsewhere (where and by whom)", required=False, max_length=255
    )
    outside_prescriber = forms.CharField(
        label="Outside prescriber (a refill done elsewhere)",
        required=False,
        max_length=255,
        help_text="The prescriber there, when no physician of this clinic ordered the dose.",
    )
    withdrawal_signs = forms.MultipleChoiceField(
        label="Withdrawal assessment: signs present now",
        required=False,
        choices=list(services.WITHDRAWAL_SIGNS.items()),
        widget=forms.CheckboxSelectMultiple,
        help_text="Ask about each sign. Any of them raises the emergency pump alarm on saving.",
    )
    notes = forms.CharField(
        label="Notes", required=False, max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, pump, **kwargs):
        super().__init__(*args, **kwargs)
        self.pump = pump
        self.set_up_fill_fields(pump.patient.clinic, pump.pump_model, pump.flow_rate_ml_per_day)

    def set_up_fill_fields(self, clinic, pump_model, flow_rate_ml_per_day) -> None:
        """Labels and choices of the fill's fields for this clinic and pump model (``pump_model``
        None: chosen in the same form, as when implanting)."""
        self.fields["performed_at"].zone = clinic.zone
        self.fields["performed_at"].help_text = f"Clinic time ({clinic.timezone})."
        self.fields["ordered_by"].queryset = physicians_of(clinic.pk)
        if pump_model is not None:
            reservoir = pump_model.reservoir_ml.normalize()
            self.fields["volume_added_ml"].help_text = f"This reservoir holds {reservoir:f} mL: never overfill."
        for name in ("aspirated_ml", "volume_added_ml"):
            if name in self.fields:
                self.fields[name].widget.attrs.update({"inputmode": "decimal", "step": "0.01"})
        for name in ("daily_dose_mcg", "bolus_mcg_per_day", "concentration_mcg_per_ml"):
            self.fields[name].widget.attrs.update({"inputmode": "decimal"})
        if pump_model is not None and pump_model.is_constant_flow:
            rate = (flow_rate_ml_per_day or Decimal("0")).normalize()
            self.fields[
                "daily_dose_mcg"
            ].help_text = f"Constant-flow pump ({rate:f} mL/day): leave empty to take flow rate × concentration."
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True

    def is_constant_flow(self) -> bool:
        return self.pump.pump_model.is_constant_flow

    def clean_bolus_mcg_per_day(self):
        value = self.cleaned_data.get("bolus_mcg_per_day")
        return Decimal("0") if value is None else value

    def clean(self):
        data = super().clean()
        product = data.get("drug_product")
        if product is not None and data.get("concentration_mcg_per_ml") is None:
            data["concentration_mcg_per_ml"] = product.concentration_mcg_per_ml
        if product is None and data.get("concentration_mcg_per_ml") is None and "concentration_mcg_per_ml" in data:
            self.add_error(
                "concentration_mcg_per_ml", "Choose a catalogue product or type the compounded concentration."
            )
        dose_missing = data.get("daily_dose_mcg") is None and "daily_dose_mcg" not in self.errors
        if dose_missing and not self.is_constant_flow():
            self.add_error("daily_dose_mcg", "Give the daily dose in mcg/day.")
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "performed_at": data["performed_at"],
            "aspirated_ml": data["aspirated_ml"],
            "volume_added_ml": data["volume_added_ml"],
            "concentration_mcg_per_ml": data["concentration_mcg_per_ml"],
            "daily_dose_mcg": data["daily_dose_mcg"],
            "bolus_mcg_per_day": data["bolus_mcg_per_day"],
            "drug_product": data["drug_product"],
            "drug_lot": data["drug_lot"].strip(),
            "drug_expires_on": data["drug_expires_on"],
            "performed_elsewhere": data["performed_elsewhere"].strip(),
            "stop_reason": data["stop_reason"],
            "discrepancy_reason": data["discrepancy_reason"],
            "dose_change_confirmed": data["dose_change_confirmed"],
            "ordered_by": data.get("ordered_by"),
            "outside_prescriber": data.get("outside_prescriber", "").strip(),
            "withdrawal_signs": data.get("withdrawal_signs", []),
            "notes": data["notes"],
        }

    @property
    def product_concentrations(self) -> dict[str, str]:
        """{product id: concentration} for the page's script that fills the concentration in."""
        return {str(p.pk): f"{p.concentration_mcg_per_ml.normalize():f}" for p in self.fields["drug_product"].queryset}


class AmendRefillForm(RefillForm):
    amend_reason = forms.CharField(
        label="Reason for the amendment",
        max_length=REASON_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required. The original values stay in the record's history.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The withdrawal assessment belongs to the visit as it happened; it is not amended.
        del self.fields["withdrawal_signs"]
        self.fields["ordered_by"].empty_label = "— none (the dose stays as recorded) —"
        self.fields["ordered_by"].help_text = "Required when a nurse's correction changes the dose."

    def amended_changes(self, refill) -> dict:
        """Only the values that differ from the stored refill (and its program)."""
        current = {
            "performed_at": refill.performed_at,
            "aspirated_ml": refill.aspirated_ml,
            "volume_added_ml": refill.volume_added_ml,
            "concentration_mcg_per_ml": refill.concentration_mcg_per_ml,
            "daily_dose_mcg": refill.program.daily_dose_mcg,
            "bolus_mcg_per_day": refill.program.bolus_mcg_per_day,
            "drug_product": refill.drug_product,
            "drug_lot": refill.drug_lot,
            "drug_expires_on": refill.drug_expires_on,
            "performed_elsewhere": refill.performed_elsewhere,
            "stop_reason": refill.program.stop_reason,
            "discrepancy_reason": refill.discrepancy_reason,
            "notes": refill.notes,
            "outside_prescriber": refill.program.outside_prescriber,
        }
        wanted = self.service_kwargs()
        wanted.pop("withdrawal_signs", None)
        # A nurse's amendment that changes the dose names the ordering physician (DESIGN.md).
        ordered_by = wanted.pop("ordered_by", None)
        # The form shows minutes: an unchanged time must not be "amended" to its whole minute.
        if wanted["performed_at"] == refill.performed_at.replace(second=0, microsecond=0):
            wanted["performed_at"] = refill.performed_at
        changes = {k: v for k, v in wanted.items() if k in current and v != current[k]}
        if wanted["dose_change_confirmed"]:
            changes["dose_change_confirmed"] = True
        if ordered_by is not None and changes:
            changes["ordered_by"] = ordered_by
        return changes


# --- appointments and events ---------------------------------------------------------------


class AppointmentForm(forms.Form):
    kind = forms.ChoiceField(label="Kind", choices=Appointment.Kind.choices, initial=Appointment.Kind.REFILL)
    scheduled_for = ClinicDateTimeField(label="Date and time")
    assigned_to = PersonChoiceField(label="Assigned to", queryset=None, required=False, empty_label="— unassigned —")
    notes = forms.CharField(
        label="Notes", required=False, max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2})
    )
    closed_day_confirmed = forms.BooleanField(
        label="Book on a day the clinic is closed", required=False, widget=forms.HiddenInput
    )

    def __init__(self, *args, pump, **kwargs):
        super().__init__(*args, **kwargs)
        clinic = pump.patient.clinic
        self.fields["scheduled_for"].zone = clinic.zone
        self.fields["scheduled_for"].help_text = f"Clinic time ({clinic.timezone})."
        self.fields["assigned_to"].queryset = care_staff_of([clinic.pk])
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True

    def ask_closed_day(self) -> None:
        """The service refused a closed day: show the box that confirms it."""
        self.fields["closed_day_confirmed"].widget = forms.CheckboxInput()


class PumpEventForm(forms.Form):
    kind = forms.ChoiceField(label="What was reported", choices=PumpEvent.Kind.choices)
    occurred_at = ClinicDateTimeField(label="When")
    source = forms.ChoiceField(label="Reported by", choices=PumpEvent.Source.choices)
    withdrawal_signs = forms.MultipleChoiceField(
        label="Withdrawal signs",
        required=False,
        choices=list(services.WITHDRAWAL_SIGNS.items()),
        widget=forms.CheckboxSelectMultiple,
    )
    overdose_signs = forms.MultipleChoiceField(
        label="Overdose signs",
        required=False,
        choices=list(services.OVERDOSE_SIGNS.items()),
        widget=forms.CheckboxSelectMultiple,
    )
    notes = forms.CharField(
        label="Notes", required=False, max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, pump, **kwargs):
        super().__init__(*args, **kwargs)
        clinic = pump.patient.clinic
        self.fields["occurred_at"].zone = clinic.zone
        self.fields["occurred_at"].help_text = f"Clinic time ({clinic.timezone})."
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True

    @property
    def symptoms(self) -> list[str]:
        return [*self.cleaned_data.get("withdrawal_signs", []), *self.cleaned_data.get("overdose_signs", [])]


class ScheduleFilterForm(forms.Form):
    week = forms.DateField(label="Week of", required=False, widget=DateInput())
    clinic = forms.ModelChoiceField(label="Clinic", queryset=Clinic.objects.none(), required=False, empty_label=None)

    def __init__(self, *args, clinics, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = clinics
