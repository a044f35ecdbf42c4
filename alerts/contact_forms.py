"""Forms of the "My notifications" page."""

from django import forms
from django.conf import settings

from .models import EMAIL_STEP

RULE_ROWS = 4


class NoEchoTextInput(forms.TextInput):
    """A URL with tokens in it is never sent back to the browser, not even after a form error."""

    def format_value(self, value):
        return None


class ContactMethodForm(forms.Form):
    label = forms.CharField(max_length=60, label="Name", help_text="Your name for it, e.g. “Work phone (ntfy)”.")
    url = forms.CharField(
        max_length=1000,
        label="Address (apprise URL)",
        widget=NoEchoTextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "font-monospace"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        schemes = ", ".join(f"{s}://" for s in settings.NOTIFY_ALLOWED_SCHEMES)
        self.fields["url"].help_text = (
            f"Allowed here: {schemes}. For example ntfys://ntfy.example.org/your-private-topic, "
            "pover://user@token or json://paging.example.org/page. "
            "It is stored encrypted and never shown again in full."
        )


class VerifyForm(forms.Form):
    code = forms.CharField(
        max_length=12,
        label="6-digit code",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class RuleForm(forms.Form):
    """Up to four ordered steps: a method and "after N minutes" (0 = at once)."""

    def __init__(self, *args, methods=(), email="", initial_steps=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "—"), (EMAIL_STEP, f"Email ({email})" if email else "Email")]
        choices += [(str(m.pk), f"{m.label} ({m.display})") for m in methods]
        for row in range(RULE_ROWS):
            step = initial_steps[row] if row < len(initial_steps) else None
            self.fields[f"method_{row}"] = forms.ChoiceField(
                choices=choices,
                required=False,
                label=f"Step {row + 1}",
                initial=str(step.method) if step else "",
                widget=forms.Select(
                    attrs={"class": "form-select form-select-sm", "aria-label": f"Step {row + 1}: method"}
                ),
            )
            self.fields[f"after_{row}"] = forms.IntegerField(
                min_value=0,
                max_value=24 * 60,
                required=False,
                label=f"Step {row + 1}: after minutes",
                initial=step.after_minutes if step else None,
                widget=forms.NumberInput(
                    attrs={"class": "form-control form-control-sm", "aria-label": f"Step {row + 1}: after minutes"}
                ),
            )

    def steps(self) -> list[dict]:
        steps = []
        for row in range(RULE_ROWS):
            method = self.cleaned_data.get(f"method_{row}")
            if method:
                steps.append({"method": method, "after_minutes": self.cleaned_data.get(f"after_{row}") or 0})
        return steps
