"""Clinic admins' alerting pages: escalation policies per severity, webhooks, failing addresses.

Routed from clinics/urls.py beside the other clinic administration pages; the clinic is looked
up the same way (another clinic 404, another role 403).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from alerts import services
from alerts.channels import DeliveryError
from alerts.channels.webhook import check_destination
from alerts.contacts import owners_of_phone_addresses
from alerts.models import Alert, Channel, EscalationPolicy, FailingAddress, Severity, Webhook
from alerts.personal import urgent_responders_without_phone
from alerts.policies import ensure_default_policies
from clinics.models import Membership, Role, Rotation

from .forms import add_refusal
from .policy_forms import LevelFormSet, PolicyForm, WebhookForm, save_policy
from .views.common import MANAGE, clinic_for

ROLE_LABELS = dict(Role.choices)
CHANNEL_LABELS = dict(Channel.choices)


def duration(minutes: int) -> str:
    """240 → "4 h", 90 → "1 h 30 min", 1440 → "24 h": how long, as a nurse would say it."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def in_words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def describe_level(level, rotations: dict[int, str]) -> dict:
    """A level in words: who is told, how, and how long the chain waits for an acknowledgement."""
    who = [f"every {ROLE_LABELS.get(role, role).lower()}" for role in level.roles]
    who += [f"whoever is on call on “{rotations.get(pk, 'a removed rota')}”" for pk in level.on_call_rotation_ids]
    if level.assigned_nurse:
        who.append("the pump's assigned nurse")
    who += [user.get_full_name() or user.username for user in level.users.all()]
    channels = [CHANNEL_LABELS.get(channel, channel) for channel in level.channels]
    return {
        "who": in_words(who) if who else "",
        "channels": in_words(channels) if channels else "",
        "uses_webhook": Channel.WEBHOOK in level.channels,
        "wait": duration(level.wait_minutes),
    }


def _open_alerts_by_severity(clinic) -> dict[int, int]:
    rows = Alert.objects.open().filter(clinic=clinic).values("severity").annotate(n=Count("id"))
    return {row["severity"]: row["n"] for row in rows}


def policy_list(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    policies = {p.severity: p for p in EscalationPolicy.objects.filter(clinic=clinic).prefetch_related("levels__users")}
    open_alerts = _open_alerts_by_severity(clinic)
    rotations = dict(Rotation.objects.filter(clinic=clinic).values_list("pk", "name"))
    rows = []
    for severity, label in sorted(Severity.choices, reverse=True):
        policy = policies.get(severity)
        rows.append(
            {
                "severity": severity,
                "label": label,
                "policy": policy,
                "levels": [describe_level(level, rotations) for level in policy.levels.all()] if policy else [],
                "open_alerts": open_alerts.get(severity, 0),
                "realert": duration(policy.realert_minutes) if policy else "",
            }
        )
    has_webhook = Webhook.objects.filter(clinic=clinic, is_active=True).exists()
    return render(
        request,
        "alerts/policies/policy_list.html",
        {
            "clinic": clinic,
            "section": "policies",
            "rows": rows,
            "missing": any(row["policy"] is None for row in rows),
            "has_webhook": has_webhook,
        },
    )


@require_POST
def policy_restore_defaults(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    created = ensure_default_policies(clinic)
    messages.success(request, f"{created} default polic{'ies' if created != 1 else 'y'} added.")
    return redirect("clinic-policies", clinic_id=clinic.pk)


def policy_edit(request, clinic_id, policy_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    policy = get_object_or_404(EscalationPolicy, clinic=clinic, pk=policy_id)
    data = request.POST if request.method == "POST" else None
    form = PolicyForm(data, instance=policy)
    levels = LevelFormSet(data, instance=policy, form_kwargs={"clinic": clinic}, prefix="levels")
    if request.method == "POST" and form.is_valid() and levels.is_valid():
        save_policy(form, levels, request.user)
        messages.success(
            request,
            f"{policy.get_severity_display()} policy saved. Alerts raised from now on follow it; "
            "alerts already open keep the policy they were raised with.",
        )
        uses_webhook = any(Channel.WEBHOOK in (f.cleaned_data.get("channels") or []) for f in levels.ordered_forms())
        if uses_webhook and not Webhook.objects.filter(clinic=clinic, is_active=True).exists():
            messages.warning(request, "A level sends by webhook, but the clinic has no active webhook.")
        return redirect("clinic-policies", clinic_id=clinic.pk)
    return render(
        request,
        "alerts/policies/policy_edit.html",
        {
            "clinic": clinic,
            "section": "policies",
            "policy": policy,
            "form": form,
            "levels": levels,
            "open_alerts": _open_alerts_by_severity(clinic).get(policy.severity, 0),
        },
    )


# --- webhooks and failing addresses ------------------------------------------------------------


def _failing_addresses(clinic):
    """Addresses that failed and have not worked since, each with whose address it is."""
    failing = list(FailingAddress.objects.filter(clinic=clinic, cleared_at__isnull=True))
    owners: dict[str, list[Membership]] = {}
    for membership in Membership.objects.filter(clinic=clinic, is_active=True).select_related("user"):
        owners.setdefault(membership.email.strip().lower(), []).append(membership)
    methods = owners_of_phone_addresses(row.address for row in failing if row.channel == Channel.PHONE)
    members_by_user = {m.user_id: m for members in owners.values() for m in members}
    for row in failing:
        row.owners = owners.get(row.address.strip().lower(), []) if row.channel == Channel.EMAIL else []
        method = methods.get(row.address) if row.channel == Channel.PHONE else None
        if method:
            # A member's phone method: shown masked, with its owner (who fixes it by verifying again).
            row.display = f"{method.label}: {method.display}"
            row.owners = [members_by_user[method.user_id]] if method.user_id in members_by_user else []
    return failing


def _notifications_context(clinic, form, created=None):
    failing = _failing_addresses(clinic)
    failing_urls = {row.address for row in failing if row.channel == Channel.WEBHOOK}
    webhooks = list(Webhook.objects.filter(clinic=clinic).order_by("-is_active", "url"))
    for hook in webhooks:
        hook.is_failing = hook.url in failing_urls
    return {
        "clinic": clinic,
        "section": "notifications",
        "form": form,
        "webhooks": webhooks,
        "failing": failing,
        "created": created,
        "without_phone": urgent_responders_without_phone(clinic),
    }


def notifications(request, clinic_id):
    """Webhooks (add, disable, enable) and the notification addresses that are failing."""
    clinic = clinic_for(request, clinic_id, MANAGE)
    form = WebhookForm(request.POST or None, clinic=clinic)
    if request.method == "POST" and form.is_valid():
        try:
            hook = services.add_webhook(clinic=clinic, actor=request.user, url=form.cleaned_data["url"])
        except ValidationError as refusal:
            add_refusal(form, refusal)
        else:
            # The signing secret is shown on this response only: no redirect, nothing kept to show it again.
            response = render(
                request,
                "alerts/policies/notifications.html",
                _notifications_context(clinic, WebhookForm(clinic=clinic), created=hook),
            )
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "alerts/policies/notifications.html", _notifications_context(clinic, form))


@require_POST
def webhook_active(request, clinic_id, webhook_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    hook = get_object_or_404(Webhook, clinic=clinic, pk=webhook_id)
    active = request.POST.get("active") == "1"
    if hook.is_active == active:
        return redirect("clinic-notifications", clinic_id=clinic.pk)
    if active:
        try:
            check_destination(hook.url)  # checked again: the address may resolve elsewhere now
        except DeliveryError as exc:
            messages.error(request, f"{hook.url} cannot be enabled: {exc}.")
            return redirect("clinic-notifications", clinic_id=clinic.pk)
    hook.is_active = active
    hook._history_user = request.user
    hook.save(update_fields=["is_active"])
    if active:
        messages.success(request, f"{hook.url} is enabled again, with its existing signing secret.")
    else:
        messages.success(request, f"{hook.url} is disabled: no more alerts are posted to it.")
    return redirect("clinic-notifications", clinic_id=clinic.pk)
