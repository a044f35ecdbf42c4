"""Login required everywhere, and an idle-session timeout: a workstation left alone logs out."""

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode

SESSION_KEY = "itb_last_activity"
ACTIVITY_RESOLUTION_SECONDS = 60


def passive(view):
    """Mark a view (banner or unread-count polling) as one that must not extend an idle session."""
    view.itb_passive = True
    return view


class IdleSessionTimeoutMiddleware:
    """Logs out a session idle for longer than ``SESSION_IDLE_TIMEOUT``.

    Only requests a person makes count as activity: views marked ``@passive`` (background
    polling) are served but do not move the idle clock, or an open tab would never time out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        self._passive = False
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = timezone.now().timestamp()
            last = request.session.get(SESSION_KEY)
            if last is not None and now - last > settings.SESSION_IDLE_TIMEOUT.total_seconds():
                logout(request)
                if request.path.startswith("/api/") or request.headers.get("HX-Request"):
                    # The API refuses on its own; a background htmx request (the status poll) must
                    # not swap the login page into part of a page: its view or the login-required
                    # middleware below answers it.
                    return self.get_response(request)
                # The path only: a query string may hold a search term (a name, an MRN) that
                # would land in proxy and server logs.
                query = urlencode({"next": request.path, "timeout": 1})
                return redirect(f"{resolve_url(settings.LOGIN_URL)}?{query}")
        response = self.get_response(request)
        touched_by_person = not getattr(request, "itb_passive", False)
        if user is not None and user.is_authenticated and hasattr(request, "session") and touched_by_person:
            now = timezone.now().timestamp()
            last = request.session.get(SESSION_KEY)
            # Moving the idle clock saves the session (a database write): once a minute is precise
            # enough for a 30-minute timeout, and spares every other page view the write.
            if last is None or now - last >= ACTIVITY_RESOLUTION_SECONDS:
                request.session[SESSION_KEY] = now
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        view = getattr(view_func, "view_class", view_func)
        if getattr(view_func, "itb_passive", False) or getattr(view, "itb_passive", False):
            request.itb_passive = True


class PagesLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Every page requires login. The API authenticates (token or session) and refuses on its own."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request, view_func):
        if request.headers.get("HX-Request"):
            # An htmx request (a live preview) from a page whose session ended: send the whole
            # page to the login form instead of swapping the login page into a fragment.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        # ``next`` is the path without its query string (which may hold a search term).
        return redirect_to_login(request.path, self.get_login_url(view_func), self.get_redirect_field_name(view_func))


class NoStoreMiddleware:
    """Nothing a logged-in user or an API client is shown may be kept by a browser or proxy cache:
    pages and answers carry patient data (the one-time calendar link above all)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated) or request.path_info.startswith("/api/"):
            add_never_cache_headers(response)
        return response
