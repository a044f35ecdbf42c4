"""Forms of the clinic administration and audit pages.

They translate typed values; the rules live in the services (``clinics.services.create_staff``,
``patients.services.update_clinic_settings``), whose refusals come back as field errors
(``add_refusal``).
"""

from __future__ import annotations

import zoneinfo
from datetime import date

import holidays
from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator
from django.db.models import Q
from django.forms.models import fields_for_model

from clinics.models import (
    HARD_DOSE_LIMIT_MAX_MCG_PER_DAY,
    HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY,
    WEEKDAYS,
    AccessLog,
    Clinic,
    ClinicClosure,
    Membership,
    Role,
)
from patients.models import Pump


def add_refusal(form: forms.Form, refusal, aliases: dict[str, str] | None = None) -> None:
    """Show a service's refusal beside the fields it names (anything else above the form)."""
    aliases = aliases or {}
    for field, messages in refusal.message_dict.items():
        field = aliases.get(field, field)
        target = field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)


def person(user) -> str:
    return user.get_full_name() or user.username


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{person(obj)} ({obj.username})"


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


# --- clinic settings ---------------------------------------------------------------------------

# Labels carry their unit: a setting typed in the wrong unit is a wrong clinical rule.
SETTING_LABELS = {
    "name": "Clinic name",
    "timezone": "Time zone",
    "phone": "Clinic phone",
    "refill_margin_days": "Refill safety margin (days)",
    "high_risk_extra_days": "Extra margin for withdrawal-risk patients (days)",
    "overinfusion_allowance_pct": "Over-infusion allowance (%)",
    "reminder_days": "Due-soon window (days)",
    "critical_hours": "Critical window (hours)",
    "appointment_grace_hours": "Missed-appointment grace (hours)",
    "replacement_warning_days": "Pump replacement warning (days before the ERI date)",
    "small_reservoir_limit_ml": "Small-reservoir limit (mL)",
    "discrepancy_small_reservoir_ml": "Residual tolerance, small reservoirs (mL)",
    "discrepancy_large_reservoir_ml": "Residual tolerance, larger reservoirs (mL)",
    "discrepancy_pct": "Residual tolerance (% of the expected residual)",
    "drift_alert_ratio": "Delivery drift ratio (measured ÷ programmed)",
    "dose_change_limit_pct": "Dose-change confirmation limit (%)",
    "high_dose_threshold_mcg_per_day": "High-dose confirmation threshold (mcg/day)",
    "max_daily_dose_mcg_per_day": "Maximum daily dose, hard limit (mcg/day)",
    "two_factor_required": "Two-factor sign-in required for all staff",
    "opening_weekdays": "Open on",
    "holiday_country": "Public holidays of",
    "holiday_subdivision": "State or region of the public holidays",
    "opens_at": "Opens at (clinic time)",
    "closes_at": "Closes at (clinic time)",
    "restart_order_after_empty_hours": "Restart after an empty reservoir needs a physician's order after (hours)",
}

SETTING_HELP = {
    "timezone": "Refill due dates, times on pages and the patient's card use this zone.",
    "phone": "Printed on the patient's refill card.",
    "opening_weekdays": "A refill due on a closed day (or a public holiday, or a closure) moves to the last open day "
    "before it.",
    "holiday_subdivision": "For example AZ or CA for a US state; empty for national holidays only.",
    "closes_at": "Reminder emails and webhooks raised outside opening hours wait until the clinic opens; "
    "urgent, critical and emergency alerts never wait.",
}

SETTING_GROUPS = (
    ("Clinic", ("name", "timezone", "phone")),
    (
        "Refill timing",
        (
            "refill_margin_days",
            "high_risk_extra_days",
            "overinfusion_allowance_pct",
            "reminder_days",
            "critical_hours",
            "appointment_grace_hours",
            "replacement_warning_days",
        ),
    ),
    (
        "Residual volume checks",
        (
            "small_reservoir_limit_ml",
            "discrepancy_small_reservoir_ml",
            "discrepancy_large_reservoir_ml",
            "discrepancy_pct",
            "drift_alert_ratio",
        ),
    ),
    (
        "Dose safety",
        (
            "dose_change_limit_pct",
            "high_dose_threshold_mcg_per_day",
            "max_daily_dose_mcg_per_day",
            "restart_order_after_empty_hours",
        ),
    ),
    ("Sign-in security", ("two_factor_required",)),
    ("Calendar", ("opening_weekdays", "holiday_country", "holiday_subdivision", "opens_at", "closes_at")),
)
SETTING_FIELDS = tuple(name for _title, names in SETTING_GROUPS for name in names)


def holiday_country_choices():
    names = holidays.list_supported_countries()
    return [("", "— none —")] + [(code, code) for code in sorted(names)]


def timezone_choices():
    return [(name, name) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


class ClinicSettingsForm(forms.Form):
    """Every clinic setting with its help text and unit. Not a ModelForm: the values go to
    ``update_clinic_settings`` (which recomputes the projections), never to ``instance.save()``."""

    def __init__(self, *args, clinic: Clinic, **kwargs):
        initial = {name: getattr(clinic, name) for name in SETTING_FIELDS}
        super().__init__(*args, initial=initial, **kwargs)
        self.fields.update(fields_for_model(Clinic, fields=SETTING_FIELDS))
        self.fields["timezone"] = forms.ChoiceField(choices=timezone_choices())
        self.fields["opening_weekdays"] = forms.TypedMultipleChoiceField(
            choices=list(enumerate(WEEKDAYS)), coerce=int, widget=forms.CheckboxSelectMultiple
        )
        self.fields["holiday_country"] = forms.ChoiceField(choices=holiday_country_choices(), required=False)
        for name in ("opens_at", "closes_at"):
            self.fields[name].widget = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
        # Dose limits may be lowered, never raised (the model and the database refuse it too).
        for name, most in (
            ("max_daily_dose_mcg_per_day", HARD_DOSE_LIMIT_MAX_MCG_PER_DAY),
            ("high_dose_threshold_mcg_per_day", HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY),
        ):
            self.fields[name].max_value = most
            self.fields[name].validators.append(MaxValueValidator(most))
            self.fields[name].widget.attrs["max"] = f"{most:f}"
        for name, field in self.fields.items():
            field.label = SETTING_LABELS[name]
            if name in SETTING_HELP:
                field.help_text = SETTING_HELP[name]
        self.fields["name"].widget.attrs.pop("autofocus", None)

    def groups(self):
        return [(title, [self[name] for name in names]) for title, names in SETTING_GROUPS]

    def changed_values(self) -> dict:
        values = {name: self.cleaned_data[name] for name in self.changed_data}
        if "opening_weekdays" in values:
            values["opening_weekdays"] = sorted(values["opening_weekdays"])
        return values


# --- staff -----------------------------------------------------------------------------------


class StaffAddForm(forms.Form):
    """A new staff login with its role in this clinic (``clinics.services.create_staff``)."""

    username = forms.CharField(max_length=150, help_text="What they type to log in.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False, help_text="Alerts are sent here unless a notification email is set.")
    role = forms.ChoiceField(choices=Role.choices)
    password = forms.CharField(
        label="Initial password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters, not a common password. Give it to them in person.",
    )
    password_again = forms.CharField(
        label="Initial password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("password") != cleaned.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return cleaned


class MembershipForm(forms.ModelForm):
    """A member's role in this clinic and how alerts reach them."""

    class Meta:
        model = Membership
        fields = ["role", "phone", "notification_email"]
        labels = {"notification_email": "Notification email"}


# --- audit filters ---------------------------------------------------------------------------


class DateRangeMixin:
    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


class PumpChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, pump):
        patient = pump.patient
        device = f"{pump.pump_model.name} #{pump.serial_number}"
        return f"{pump.reference} · {patient.family_name}, {patient.given_name} · {device}"


class RefillAuditFilterForm(DateRangeMixin, forms.Form):
    """Which refill visits the audit report (and its CSV export) shows."""

    date_from = forms.DateField(label="From", required=False, widget=DateInput())
    date_to = forms.DateField(label="To (inclusive)", required=False, widget=DateInput())
    nurse = PersonChoiceField(label="Performed by", required=False, queryset=None, empty_label="Anyone")
    pump = PumpChoiceField(label="Pump", required=False, queryset=None, empty_label="Any pump")
    discrepancy = forms.BooleanField(label="Discrepancies only", required=False)
    amended = forms.BooleanField(label="Amended only", required=False)

    def __init__(self, *args, clinic: Clinic, **kwargs):
        super().__init__(*args, **kwargs)
        User = get_user_model()
        # Former staff stay in the list: an audit asks about visits of people who have left.
        self.fields["nurse"].queryset = (
            User.objects.filter(memberships__clinic=clinic).distinct().order_by("last_name", "first_name", "username")
        )
        self.fields["pump"].queryset = (
            Pump.objects.filter(patient__clinic=clinic)
            .select_related("patient", "pump_model")
            .order_by("patient__family_name", "patient__given_name", "id")
        )

    @property
    def filters(self) -> dict:
        """The cleaned filters (empty ones left out) for ``clinics.audit.refill_visits``."""
        data = getattr(self, "cleaned_data", {}) if self.is_bound and self.is_valid() else {}
        return {key: value for key, value in data.items() if value not in (None, "", False)}


class AccessLogFilterForm(DateRangeMixin, forms.Form):
    user = PersonChoiceField(label="User", required=False, queryset=None, empty_label="Anyone")
    action = forms.ChoiceField(label="Action", required=False, choices=[("", "Any action"), *AccessLog.Action.choices])
    date_from = forms.DateField(label="From", required=False, widget=DateInput())
    date_to = forms.DateField(label="To (inclusive)", required=False, widget=DateInput())

    def __init__(self, *args, clinic: Clinic, **kwargs):
        super().__init__(*args, **kwargs)
        User = get_user_model()
        # Anyone who read this clinic's records: its staff, and superusers who looked.
        in_log = AccessLog.objects.filter(clinic=clinic, user__isnull=False).values("user_id")
        self.fields["user"].queryset = (
            User.objects.filter(Q(memberships__clinic=clinic) | Q(pk__in=in_log))
            .distinct()
            .order_by("last_name", "first_name", "username")
        )

    @property
    def filters(self) -> dict:
        data = getattr(self, "cleaned_data", {}) if self.is_bound and self.is_valid() else {}
        return {key: value for key, value in data.items() if value not in (None, "", False)}


def describe_dates(date_from: date | None, date_to: date | None) -> str:
    if date_from and date_to:
        return f"{date_from:%Y-%m-%d} to {date_to:%Y-%m-%d}"
    if date_from:
        return f"from {date_from:%Y-%m-%d}"
    if date_to:
        return f"until {date_to:%Y-%m-%d}"
    return "all dates"


# --- closures --------------------------------------------------------------------------------


class ClosureForm(forms.Form):
    """A closure's days and reason (``patients.services.save_closure`` moves the due dates)."""

    first_day = forms.DateField(label="First closed day", widget=DateInput())
    last_day = forms.DateField(label="Last closed day", widget=DateInput(), help_text="Included: closed that day too.")
    reason = forms.CharField(
        label="Reason", max_length=120, help_text="Shown to staff, e.g. “Holiday shutdown” or “Staff leave”."
    )

    @classmethod
    def for_closure(cls, closure: ClinicClosure | None, data=None):
        initial = {} if closure is None else {f: getattr(closure, f) for f in ("first_day", "last_day", "reason")}
        return cls(data, initial=initial)


class CaseloadUploadForm(forms.Form):
    file = forms.FileField(
        label="Caseload file (CSV or XLSX)",
        help_text="The template's columns, one row per pump; at most 5 MB and 5,000 rows.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,text/csv"}),
    )
