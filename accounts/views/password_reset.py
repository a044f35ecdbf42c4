"""Password reset by email with Django's own views.

The same answer for any address, in the same time (the email is sent by a worker, and only to
active users with that address); the link works once (its token covers the password hash) and for
``PASSWORD_RESET_TIMEOUT``; requests are throttled per address and client by django-axes; a
completed reset ends the user's other sessions and API tokens."""

import logging
from functools import partial

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import HttpResponseRedirect

from clinics.access import log_access
from clinics.models import AccessLog

from .. import services, tasks
from .signin import where_from

logger = logging.getLogger(__name__)


def enqueue_reset_email(user_id: int) -> None:
    try:
        tasks.send_password_reset.delay(user_id)
    except Exception:  # a broker outage: the page answers as always; the user asks again
        logger.exception("Could not enqueue a password reset email")


class ResetRequestView(auth_views.PasswordResetView):
    def form_valid(self, form):
        email = form.cleaned_data["email"].strip().lower()
        # Kept apart from sign-in failures: asking for resets never locks anyone's sign-in.
        credentials = {settings.AXES_USERNAME_FORM_FIELD: f"password-reset:{email}"}
        if not AxesProxyHandler.is_allowed(self.request, credentials):
            return get_lockout_response(self.request, None, credentials)
        # Django's form would send in the request: a known address would answer later than an
        # unknown one. A worker sends it (accounts/tasks.py); the request only looks up and logs.
        for user in form.get_users(email):
            detail = f"reset link sent, asked {where_from(self.request)}"
            log_access(user, AccessLog.Action.PASSWORD_RESET, detail=detail)
            transaction.on_commit(partial(enqueue_reset_email, user.pk))
        user_login_failed.send(sender=__name__, credentials=credentials, request=self.request)
        # This request was allowed and answered; the next one over the limit is refused.
        self.request.axes_locked_out = False
        return HttpResponseRedirect(self.get_success_url())


class ResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(form.user, how="reset by email", end_tokens=True)
        return response
