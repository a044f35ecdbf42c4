"""Sign-in in two steps: the password (Django's form, checked by django-axes), then — for a user
with an authenticator — a code from it or a recovery code (wrong codes count in django-axes as
wrong passwords do). Only after the second step is the session signed in."""

import time

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.signals import user_login_failed
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from clinics.access import log_access
from clinics.models import AccessLog

from .. import services
from ..forms import SignInCodeForm
from ..sessions import client_ip, describe_device

PENDING_KEY = "itb_sign_in_pending"
# The code must follow the password within this time, or the password is asked again.
PENDING_SECONDS = 300


def where_from(request) -> str:
    device = describe_device(request.META.get("HTTP_USER_AGENT", ""))
    return f"from {client_ip(request) or 'an unknown address'}, {device}"


class SignInView(auth_views.LoginView):
    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        if services.has_two_factor(user):
            self.request.session[PENDING_KEY] = {
                "user_id": user.pk,
                "backend": user.backend,
                "at": time.time(),
                "next": self.get_redirect_url(),
            }
            return redirect("login-code")
        login(self.request, user)
        log_access(user, AccessLog.Action.SIGN_IN, detail=f"password only, {where_from(self.request)}")
        return HttpResponseRedirect(self.get_success_url())


@method_decorator([login_not_required, sensitive_post_parameters("code"), never_cache], name="dispatch")
class SignInCodeView(View):
    template_name = "registration/login_code.html"

    def _pending_user(self):
        pending = self.request.session.get(PENDING_KEY)
        if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
            return None, None
        user = get_user_model().objects.filter(pk=pending["user_id"], is_active=True).first()
        return user, pending

    def get(self, request):
        user, _pending = self._pending_user()
        if user is None:
            return self._start_again(request)
        return render(request, self.template_name, {"form": SignInCodeForm()})

    def post(self, request):
        user, pending = self._pending_user()
        if user is None:
            return self._start_again(request)
        credentials = {settings.AXES_USERNAME_FORM_FIELD: user.get_username()}
        if not AxesProxyHandler.is_allowed(request, credentials):
            return get_lockout_response(request, None, credentials)
        form = SignInCodeForm(request.POST)
        device = services.verify_second_factor(user, form.cleaned_data["code"]) if form.is_valid() else None
        if device is None:
            if form.is_valid():
                form.add_error("code", "That code is not right. Try the newest code from your app.")
                log_access(user, AccessLog.Action.CODE_FAILED, detail=where_from(request))
                # django-axes counts it like a wrong password; at the limit its middleware answers 429.
                user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            return render(request, self.template_name, {"form": form}, status=400)
        del request.session[PENDING_KEY]
        user.otp_device = device  # django-otp marks the session verified on login
        login(request, user, backend=pending["backend"])
        factor = services.describe_factor(device)
        log_access(user, AccessLog.Action.SIGN_IN, detail=f"password + {factor}, {where_from(request)}")
        if factor == "recovery code":
            left = device.remaining
            messages.warning(
                request,
                f"You signed in with a recovery code: it will not work again. {left} left. "
                "If your phone is lost, set up a new authenticator on your Security page.",
            )
        target = pending.get("next")
        if not target or not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
            target = settings.LOGIN_REDIRECT_URL
        return redirect(target)

    def _start_again(self, request):
        request.session.pop(PENDING_KEY, None)
        messages.info(request, "Please enter your username and password again.")
        return redirect("login")
