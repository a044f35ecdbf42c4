"""The physician's conclusion form on a review alert's page."""

from django import forms

from .review_models import NOTE_MAX_CHARS, ReviewConclusion


class ReviewConclusionForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("", "Choose…"), *ReviewConclusion.Outcome.choices])
    action = forms.ChoiceField(label="Action taken", choices=[("", "Choose…"), *ReviewConclusion.Action.choices])
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=NOTE_MAX_CHARS,
        required=False,
        help_text=f"At most {NOTE_MAX_CHARS} characters; needed when the outcome is “Other”.",
    )
    follow_up_on = forms.DateField(
        label="Follow-up device check",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Where needed: books a device-check appointment on that day at the clinic's opening time.",
    )
