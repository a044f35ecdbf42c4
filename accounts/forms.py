"""Forms of the sign-in, enrolment and password pages."""

from django import forms
from django.contrib.auth.forms import SetPasswordForm


class SignInCodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=40,
        help_text="The 6-digit code your authenticator app shows now, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )


class EnrolForm(forms.Form):
    code = forms.CharField(
        label="Code from the app",
        max_length=10,
        help_text="The 6-digit code the app shows for ITB Tracker after you scanned the QR code.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class FirstPasswordForm(SetPasswordForm):
    """The first sign-in's new password: it must differ from the one the clinic admin typed."""

    def clean_new_password1(self):
        password = self.cleaned_data.get("new_password1")
        if password and self.user.check_password(password):
            raise forms.ValidationError("Choose a new password: not the one you were given.")
        return password
