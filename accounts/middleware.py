"""Before anything else a signed-in user must change a temporary password, then enrol a second
factor where it is required. Also keeps the session's record (Security page) current."""

from django.contrib.auth import logout
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils.http import urlencode

from . import sessions
from .services import has_two_factor, two_factor_required
from .signals import PASSWORD_CHANGE_KEY

OWED_ON_API = "Finish signing in on the web first (password change or two-factor enrolment)."
# Pages a user may reach while a step is owed (besides static files).
ALWAYS_OPEN = ("logout",)
OPEN_WHILE_PASSWORD_OWED = ("account-password-first",)
OPEN_WHILE_ENROLMENT_OWED = ("account-enrol", "account-recovery-codes", "account-password-first")


class AccountGateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not hasattr(request, "session"):
            return self.get_response(request)
        blocked = self._owed_step(request, user)
        if blocked is not None:
            return blocked
        response = self.get_response(request)
        if request.user.is_authenticated and request.session.session_key:
            sessions.touch(request)
        return response

    def _owed_step(self, request, user):
        path = request.path_info
        if path.startswith(("/static/", "/favicon")):
            return None
        if request.session.get(PASSWORD_CHANGE_KEY):
            return self._send_to(request, "account-password-first", OPEN_WHILE_PASSWORD_OWED)
        if user.is_verified() or not two_factor_required(user):
            return None
        if has_two_factor(user):
            # Enrolled, but this session never gave a code (e.g. enrolled from another browser
            # after it signed in): sign in again, with the code.
            logout(request)
            return redirect(f"{resolve_url('login')}?{urlencode({'next': request.get_full_path()})}")
        return self._send_to(request, "account-enrol", OPEN_WHILE_ENROLMENT_OWED)

    def _send_to(self, request, url_name, open_names):
        name = self._url_name(request)
        if name in open_names or name in ALWAYS_OPEN:
            return None
        if request.path_info.startswith("/api/"):
            return JsonResponse({"detail": OWED_ON_API}, status=403)
        if request.headers.get("HX-Request"):
            # Background polling (the alert banner): leave the page as it is, no redirect to swap in.
            return HttpResponse(status=204)
        return redirect(reverse(url_name))

    @staticmethod
    def _url_name(request):
        from django.urls import Resolver404, resolve

        try:
            return resolve(request.path_info).url_name
        except Resolver404:
            return None
