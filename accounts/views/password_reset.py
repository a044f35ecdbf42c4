"""Password reset by email with Django's own views.

The same answer for any address (Django sends only to active users with that address and says
nothing either way); the link works once (its token covers the password hash) and for
``PASSWORD_RESET_TIMEOUT``; requests are throttled per address and client by django-axes; a
completed reset ends the user's other sessions and API tokens."""

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_login_failed

from clinics.access import log_access
from clinics.models import AccessLog

from .. import services
from .signin import where_from


class ResetRequestView(auth_views.PasswordResetView):
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def get_extra_email_context(self):
        return {"site_url": settings.SITE_URL}

    def form_valid(self, form):
        email = form.cleaned_data["email"].strip().lower()
        # Kept apart from sign-in failures: asking for resets never locks anyone's sign-in.
        credentials = {settings.AXES_USERNAME_FORM_FIELD: f"password-reset:{email}"}
        if not AxesProxyHandler.is_allowed(self.request, credentials):
            return get_lockout_response(self.request, None, credentials)
        self.extra_email_context = self.get_extra_email_context()
        for user in form.get_users(email):
            detail = f"reset link sent, asked {where_from(self.request)}"
            log_access(user, AccessLog.Action.PASSWORD_RESET, detail=detail)
        response = super().form_valid(form)
        user_login_failed.send(sender=__name__, credentials=credentials, request=self.request)
        # This request was allowed and answered; the next one over the limit is refused.
        self.request.axes_locked_out = False
        return response


class ResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(form.user, how="reset by email", end_tokens=True)
        return response
