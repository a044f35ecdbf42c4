"""Forms of the on-call rota page: a rotation (members in turn order) and a swap or cover."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.core.exceptions import ValidationError

from clinics import rota
from clinics.models import Role, Weekday

from .forms import DateInput, person


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%H:%M")


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


class RotationForm(forms.Form):
    """Name, whose rota, hand-over rhythm, and each active member's turn (blank: not on it)."""

    name = forms.CharField(max_length=80, label="Rota name", help_text="What escalation levels call it.")
    role = forms.ChoiceField(choices=Role.choices, label="Whose rota")
    handover_weekday = forms.TypedChoiceField(choices=Weekday.choices, coerce=int, label="Hand-over day")
    handover_time = forms.TimeField(label="Hand-over time (clinic time)", widget=TimeInput())
    length_days = forms.IntegerField(min_value=1, max_value=90, label="Each turn lasts (days)")
    starts_on = forms.DateField(
        label="First hand-over", widget=DateInput(), help_text="Nobody is on this rota before it."
    )

    def __init__(self, *args, members, rotation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = members
        order = {pk: n for n, pk in enumerate(rotation.member_ids, start=1)} if rotation else {}
        for m in members:
            self.fields[f"turn_{m.pk}"] = forms.IntegerField(
                label=f"{person(m.user)} ({m.get_role_display()})",
                min_value=1,
                max_value=99,
                required=False,
                initial=order.get(m.pk),
            )

    def turn_fields(self):
        return [self[f"turn_{m.pk}"] for m in self.members]

    def clean(self):
        cleaned = super().clean()
        turns = [(cleaned.get(f"turn_{m.pk}"), m.pk) for m in self.members if cleaned.get(f"turn_{m.pk}")]
        numbers = [n for n, _ in turns]
        if len(set(numbers)) != len(numbers):
            raise ValidationError("Two members have the same turn: number them 1, 2, 3… in order.")
        cleaned["member_ids"] = [pk for _, pk in sorted(turns)]
        return cleaned


class OverrideForm(forms.Form):
    """This member on call instead of the rota, from–to (a swap, sick cover), in clinic time."""

    rotation = forms.TypedChoiceField(coerce=int, label="Rota")
    membership = forms.TypedChoiceField(coerce=int, label="On call instead")
    starts_at = forms.DateTimeField(label="From (clinic time)", widget=LocalDateTimeInput())
    ends_at = forms.DateTimeField(label="Until (clinic time)", widget=LocalDateTimeInput())
    reason = forms.CharField(max_length=200, required=False, label="Reason", help_text="e.g. swap, sick cover")

    def __init__(self, *args, clinic, rotations, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.zone = clinic.zone
        self.fields["rotation"].choices = [(r.pk, r.name) for r in rotations]
        self.fields["membership"].choices = [(m.pk, f"{person(m.user)} ({m.get_role_display()})") for m in members]

    def _in_clinic_zone(self, value: datetime | None) -> datetime | None:
        # Typed in clinic time, whatever zone the browser or server is in.
        return None if value is None else value.replace(tzinfo=None).replace(tzinfo=self.zone)

    def clean_starts_at(self):
        return self._in_clinic_zone(self.cleaned_data.get("starts_at"))

    def clean_ends_at(self):
        return self._in_clinic_zone(self.cleaned_data.get("ends_at"))


def default_starts_on(today, weekday: int):
    return rota.next_weekday_on_or_after(today, weekday)
