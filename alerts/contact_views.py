"""The "My notifications" page: a member's own contact methods and notification rules.

Every view acts on ``request.user``'s own rows (another member's method answers 404). Writes go
through ``alerts.contacts``.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from clinics.models import Membership

from . import contacts, crypto
from .contact_forms import ContactMethodForm, RuleForm, VerifyForm
from .models import ContactMethod, NotificationRule, Severity
from .personal import PersonalRules


def _own_method(request, pk) -> ContactMethod:
    return get_object_or_404(ContactMethod, pk=pk, user=request.user, removed_at__isnull=True)


def _email_of(user) -> str:
    membership = Membership.objects.active().filter(user=user).order_by("created_at").first()
    return membership.email if membership else user.email


def _page(request, *, add_form=None, verify_errors=None, rule_forms=None, status=200):
    user = request.user
    methods = list(ContactMethod.objects.filter(user=user, removed_at__isnull=True))
    email = _email_of(user)
    rules = PersonalRules([user.pk])
    custom = set(NotificationRule.objects.filter(user=user).values_list("severity", flat=True))
    by_id = {m.pk: m for m in methods}
    severities = []
    for severity in sorted(Severity, reverse=True):
        steps = rules.steps_for(user.pk, severity)
        described = [
            {"after_minutes": s.after_minutes, "what": f"Email ({email})" if s.method == "email" else by_id[s.method]}
            for s in steps
        ]
        form = (rule_forms or {}).get(severity) or RuleForm(methods=methods, email=email, initial_steps=steps)
        severities.append(
            {
                "value": int(severity),
                "label": severity.label,
                "steps": described,
                "custom": severity in custom,
                "form": form,
            }
        )
    for method in methods:
        method.verify_form = VerifyForm(prefix=f"m{method.pk}")
        method.verify_errors = (verify_errors or {}).get(method.pk, [])
    response = render(
        request,
        "alerts/my_notifications.html",
        {
            "methods": methods,
            "add_form": add_form or ContactMethodForm(),
            "severities": severities,
            "email": email,
            "phone_ready": crypto.is_configured(),
            "has_usable_phone": any(m.is_usable for m in methods),
        },
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response


def my_notifications(request):
    return _page(request)


def _add_refusal(form, refusal: ValidationError):
    for field, errors in refusal.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@require_POST
def method_add(request):
    form = ContactMethodForm(request.POST)
    if form.is_valid():
        try:
            method, problem = contacts.add_contact_method(
                user=request.user, label=form.cleaned_data["label"], url=form.cleaned_data["url"]
            )
        except ValidationError as refusal:
            _add_refusal(form, refusal)
        else:
            if problem:
                messages.warning(
                    request,
                    f"“{method.label}” was added, but the code could not be sent: {problem}. Try “Send a new code”.",
                )
            else:
                messages.success(request, f"A 6-digit code was sent to “{method.label}”: type it below to start.")
            return redirect("my-notifications")
    return _page(request, add_form=form, status=400)


@require_POST
def method_verify(request, pk):
    method = _own_method(request, pk)
    form = VerifyForm(request.POST, prefix=f"m{method.pk}")
    if form.is_valid():
        try:
            contacts.verify_contact_method(method=method, user=request.user, code=form.cleaned_data["code"])
        except ValidationError as refusal:
            return _page(request, verify_errors={method.pk: refusal.messages}, status=400)
        messages.success(request, f"“{method.label}” is verified: alerts can reach you there now.")
        return redirect("my-notifications")
    return _page(request, verify_errors={method.pk: ["Enter the 6-digit code."]}, status=400)


@require_POST
def method_code(request, pk):
    method = _own_method(request, pk)
    try:
        problem = contacts.send_verification_code(method=method, user=request.user)
    except ValidationError as refusal:
        messages.warning(request, " ".join(refusal.messages))
    else:
        if problem:
            messages.error(request, f"The code could not be sent to “{method.label}”: {problem}.")
        else:
            messages.success(request, f"A new code was sent to “{method.label}”.")
    return redirect("my-notifications")


@require_POST
def method_remove(request, pk):
    method = _own_method(request, pk)
    contacts.remove_contact_method(method=method, user=request.user)
    messages.success(request, f"“{method.label}” was removed: it receives nothing more.")
    return redirect("my-notifications")


@require_POST
def rule_save(request, severity):
    if severity not in Severity.values:
        return redirect("my-notifications")
    severity = Severity(severity)
    if request.POST.get("reset"):
        contacts.reset_notification_rule(user=request.user, severity=severity)
        messages.success(request, f"{severity.label}: back to the defaults.")
        return redirect("my-notifications")
    methods = list(ContactMethod.objects.filter(user=request.user, removed_at__isnull=True))
    form = RuleForm(request.POST, methods=methods, email=_email_of(request.user))
    if form.is_valid():
        try:
            contacts.save_notification_rule(user=request.user, severity=severity, steps=form.steps())
        except ValidationError as refusal:
            form.add_error(None, refusal.messages)
        else:
            messages.success(request, f"{severity.label}: your steps are saved.")
            return redirect("my-notifications")
    return _page(request, rule_forms={severity: form}, status=400)
