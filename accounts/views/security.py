"""The user's own Security page: two-factor enrolment, recovery codes, sessions, API tokens,
password change."""

import segno
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from .. import services, sessions
from ..forms import EnrolForm, FirstPasswordForm
from ..models import UserSession
from ..signals import PASSWORD_CHANGE_KEY

NEW_CODES_KEY = "itb_new_recovery_codes"


def _verified(request) -> bool:
    return request.user.is_verified()


def security(request):
    user = request.user
    now = timezone.now()
    current = sessions.current_record_id(request)
    live = [
        {
            "record": record,
            "device": sessions.describe_device(record.user_agent),
            "current": record.pk == current,
        }
        for record in sessions.live_sessions(user, now)
    ]
    recovery = services.recovery_device(user)
    context = {
        "enrolled": services.has_two_factor(user),
        "required": services.two_factor_required(user),
        "recovery_left": recovery.remaining if recovery else 0,
        "sessions": live,
        "tokens": list(sessions.live_tokens(user, now)),
    }
    return render(request, "accounts/security.html", context)


@sensitive_post_parameters("code")
def enrol(request):
    user = request.user
    if services.has_two_factor(user) and not _verified(request):
        messages.error(request, "Sign in with your current authenticator before replacing it.")
        return redirect("account-security")
    device = services.start_enrolment(user)
    form = EnrolForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.confirm_enrolment(user, device, form.cleaned_data["code"])
        except ValidationError as refusal:
            for message in refusal.message_dict.get("code", refusal.messages):
                form.add_error("code", message)
        else:
            device.refresh_from_db()
            otp_login(request, device)
            request.session[NEW_CODES_KEY] = codes
            return redirect("account-recovery-codes")
    qr = segno.make(device.config_url, error="m")
    context = {
        "form": form,
        "qr_svg": qr.svg_data_uri(scale=5, dark="#0b2545"),
        "secret": _spaced(device.bin_key),
        "required": services.two_factor_required(user),
        "replacing": services.has_two_factor(user),
    }
    return render(request, "accounts/enrol.html", context, status=400 if form.errors else 200)


def _spaced(key: bytes) -> str:
    from base64 import b32encode

    text = b32encode(key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def recovery_codes(request):
    """The new recovery codes, shown once (they are stored hashed)."""
    codes = request.session.pop(NEW_CODES_KEY, None)
    return render(request, "accounts/recovery_codes.html", {"codes": codes})


@require_POST
def new_recovery_codes(request):
    if not _verified(request):
        messages.error(request, "Sign in with your authenticator code to make new recovery codes.")
        return redirect("account-security")
    request.session[NEW_CODES_KEY] = services.issue_recovery_codes(request.user)
    return redirect("account-recovery-codes")


@require_POST
def turn_off_two_factor(request):
    user = request.user
    if services.two_factor_required(user):
        messages.error(request, "Two-factor sign-in is required for your role or clinic: it cannot be turned off.")
    elif not _verified(request):
        messages.error(request, "Sign in with your authenticator code to turn two-factor sign-in off.")
    else:
        services.remove_two_factor(user, actor=user, reason="turned off by the user")
        messages.success(request, "Two-factor sign-in is off. Your password alone signs you in.")
    return redirect("account-security")


@require_POST
def end_session(request, record_id):
    record = get_object_or_404(UserSession, pk=record_id, user=request.user, ended_at__isnull=True)
    if record.pk == sessions.current_record_id(request):
        messages.info(request, "This is the session you are using: log out instead.")
        return redirect("account-security")
    sessions.end_session(record, actor=request.user, reason="ended by the user")
    messages.success(request, f"Signed out {sessions.describe_device(record.user_agent)}.")
    return redirect("account-security")


@require_POST
def end_token(request, token_key):
    token = get_object_or_404(sessions.live_tokens(request.user), token_key=token_key)
    sessions.end_token(token, actor=request.user, reason="ended by the user")
    messages.success(request, f"API token {token_key}… no longer works.")
    return redirect("account-security")


class PasswordChangeView(auth_views.PasswordChangeView):
    """The user changes their password: their other sessions end (API tokens stay)."""

    success_url = reverse_lazy("account-security")
    template_name = "accounts/password_change.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(form.user, how="changed", keep_session_key=self.request.session.session_key)
        messages.success(self.request, "Password changed. Your other sessions were signed out.")
        return response


@sensitive_post_parameters()
def first_password(request):
    """The first sign-in after a clinic admin typed the password: change it before anything else."""
    if not request.session.get(PASSWORD_CHANGE_KEY):
        return redirect("home")
    form = FirstPasswordForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)
        services.password_changed(user, how="changed at first sign-in", keep_session_key=request.session.session_key)
        del request.session[PASSWORD_CHANGE_KEY]
        messages.success(request, "Password changed. Use your new password from now on.")
        return redirect("home")
    return render(request, "accounts/password_first.html", {"form": form}, status=400 if form.errors else 200)
