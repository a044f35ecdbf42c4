"""Forms of the clinic admins' escalation-policy and webhook pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.forms import BaseInlineFormSet, inlineformset_factory

from alerts import services
from alerts.models import Channel, EscalationLevel, EscalationPolicy, Webhook
from clinics.models import Membership, Role, Rotation


class PolicyForm(forms.ModelForm):
    class Meta:
        model = EscalationPolicy
        fields = ["repeat_count", "realert_minutes"]
        labels = {
            "repeat_count": "Repeats if nobody acknowledges",
            "realert_minutes": "Re-alert after an acknowledgement (minutes)",
        }
        help_texts = {
            "repeat_count": "0: the levels run once. Leave empty to repeat the whole chain until someone acknowledges.",
            "realert_minutes": "An acknowledged alert that is still unresolved notifies again after this long.",
        }

    def clean_realert_minutes(self):
        minutes = self.cleaned_data["realert_minutes"]
        if minutes is not None and minutes < 1:
            raise ValidationError("At least one minute.")
        return minutes


class StaffChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name() or obj.username


class LevelForm(forms.ModelForm):
    """One level: who is told, through which channels, and how long to wait before the next."""

    step = forms.IntegerField(
        label="Step",
        min_value=1,
        max_value=99,
        required=False,
        help_text="Levels run in this order (1 first); left empty, the level comes last.",
    )
    roles = forms.MultipleChoiceField(
        label="Everyone with the role",
        choices=Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    on_call_rotations = forms.TypedMultipleChoiceField(
        label="Whoever is on call on",
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Resolved at each step, at the time of the step, from the rota.",
    )
    users = StaffChoiceField(label="Named staff", queryset=None, required=False, widget=forms.CheckboxSelectMultiple)
    channels = forms.MultipleChoiceField(
        label="Channels", choices=Channel.choices, required=True, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = EscalationLevel
        fields = ["roles", "assigned_nurse", "users", "channels", "wait_minutes"]
        labels = {
            "assigned_nurse": "The pump's assigned nurse",
            "wait_minutes": "Wait for an acknowledgement (minutes)",
        }
        help_texts = {"assigned_nurse": ""}

    def __init__(self, *args, clinic, **kwargs):
        super().__init__(*args, **kwargs)
        members = Membership.objects.active().filter(clinic=clinic).values("user_id")
        self.fields["users"].queryset = (
            get_user_model().objects.filter(pk__in=members).order_by("last_name", "first_name", "username")
        )
        rotations = Rotation.objects.filter(clinic=clinic).order_by("role", "name")
        self.fields["on_call_rotations"].choices = [(r.pk, r.name) for r in rotations]
        self.fields["on_call_rotations"].initial = list(self.instance.on_call_rotation_ids) if self.instance.pk else []
        self.fields["step"].initial = (self.instance.position + 1) if self.instance.pk else None
        self.fields["channels"].error_messages["required"] = "Choose at least one channel."

    def clean_wait_minutes(self):
        minutes = self.cleaned_data["wait_minutes"]
        if minutes is not None and minutes < 1:
            raise ValidationError("At least one minute.")
        return minutes

    def clean(self):
        cleaned = super().clean()
        someone = (
            cleaned.get("roles")
            or cleaned.get("on_call_rotations")
            or cleaned.get("assigned_nurse")
            or cleaned.get("users")
        )
        if not someone:
            raise ValidationError(
                "Choose who this level notifies: a role, the on-call staff, the assigned nurse or named staff."
            )
        return cleaned


class BaseLevelFormSet(BaseInlineFormSet):
    def get_queryset(self):
        return super().get_queryset().prefetch_related("users").order_by("position", "id")

    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove this level"

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [
            f
            for f in self.forms
            if f.has_changed() or f.instance.pk
            if not (self.can_delete and self._should_delete_form(f))
        ]
        if not kept:
            raise ValidationError("A policy needs at least one level.")

    def ordered_forms(self):
        """The levels that stay, in step order (ties keep the page's order)."""
        kept = [
            (form.cleaned_data.get("step") or 100, index, form)
            for index, form in enumerate(self.forms)
            if (form.has_changed() or form.instance.pk) and not self._should_delete_form(form)
        ]
        return [form for _step, _index, form in sorted(kept, key=lambda t: (t[0], t[1]))]


LevelFormSet = inlineformset_factory(
    EscalationPolicy,
    EscalationLevel,
    form=LevelForm,
    formset=BaseLevelFormSet,
    extra=1,
    can_delete=True,
)


def save_policy(policy_form: PolicyForm, levels: BaseLevelFormSet, actor) -> EscalationPolicy:
    """The edited policy and its levels, handed to the one service that writes them."""
    return services.save_escalation_policy(
        policy=policy_form.instance,
        actor=actor,
        repeat_count=policy_form.cleaned_data["repeat_count"],
        realert_minutes=policy_form.cleaned_data["realert_minutes"],
        levels=[
            {
                "id": form.instance.pk,
                **{name: form.cleaned_data[name] for name in ("roles", "assigned_nurse", "channels")},
                "wait_minutes": form.cleaned_data["wait_minutes"],
                "users": list(form.cleaned_data.get("users") or []),
                "on_call_rotations": list(form.cleaned_data.get("on_call_rotations") or []),
            }
            for form in levels.ordered_forms()
        ],
    )


class WebhookForm(forms.Form):
    url = forms.URLField(
        label="Webhook address",
        max_length=500,
        assume_scheme="https",
        help_text="HTTPS only, on the internet (private and loopback addresses are refused). "
        "Each alert is POSTed as JSON with no patient identifiers, signed with HMAC-SHA256 "
        "in the X-ITB-Signature header.",
    )

    def __init__(self, *args, clinic, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic = clinic

    def clean_url(self):
        url = self.cleaned_data["url"]
        if Webhook.objects.filter(clinic=self.clinic, url=url).exists():
            raise ValidationError("This clinic already has this webhook: enable it in the list below.")
        return url
