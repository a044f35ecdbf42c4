"""Signed-in sessions and API tokens of a user: recorded, listed, ended.

Ending a session deletes Django's session row (the browser is signed out at its next request)
and marks the record ended; ending a token deletes knox's row. Each end is in the access log.
"""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from clinics.access import log_access
from clinics.models import AccessLog

from .models import UserSession

RECORD_ID_KEY = "itb_session_record"
RECORD_SESSION_KEY = "itb_session_record_key"
SEEN_KEY = "itb_session_seen"
# Last seen is written at most this often: a page view should not always cost a write.
SEEN_EVERY = timedelta(minutes=1)


def client_ip(request) -> str | None:
    from axes.helpers import get_client_ip_address

    try:
        return get_client_ip_address(request) or None
    except Exception:  # a request built by a test client has no address
        return None


def client_agent(request) -> str:
    return (getattr(request, "META", {}) or {}).get("HTTP_USER_AGENT", "")[:300]


def record_sign_in(request, user, *, second_factor: str = "") -> UserSession:
    """A record for the session ``request`` just signed in with (called on ``user_logged_in``)."""
    record = UserSession.objects.create(
        user=user,
        session_key=request.session.session_key or "",
        user_agent=client_agent(request),
        ip_address=client_ip(request),
        second_factor=second_factor,
    )
    request.session[RECORD_ID_KEY] = record.pk
    request.session[RECORD_SESSION_KEY] = record.session_key
    request.session[SEEN_KEY] = record.last_seen_at.timestamp()
    return record


def touch(request) -> None:
    """Keep the signed-in request's record current: its session key (it rotates on a password
    change) and, at most once a minute, its last-seen time. Records sessions that predate them."""
    session = request.session
    record_id = session.get(RECORD_ID_KEY)
    if record_id is None:
        if session.session_key:
            record_sign_in(request, request.user)
        return
    now = timezone.now()
    key = session.session_key
    changes = {}
    if key and session.get(RECORD_SESSION_KEY) != key:
        changes["session_key"] = key
        session[RECORD_SESSION_KEY] = key
    if now.timestamp() - session.get(SEEN_KEY, 0) >= SEEN_EVERY.total_seconds():
        changes["last_seen_at"] = now
        session[SEEN_KEY] = now.timestamp()
    if changes:
        UserSession.objects.filter(pk=record_id).update(**changes)


def signed_out(request, user) -> None:
    record_id = request.session.get(RECORD_ID_KEY) if hasattr(request, "session") else None
    if record_id is not None:
        UserSession.objects.filter(pk=record_id, ended_at__isnull=True).update(
            ended_at=timezone.now(), ended_reason="signed out"
        )


def current_record_id(request) -> int | None:
    return request.session.get(RECORD_ID_KEY)


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


@transaction.atomic
def end_session(record: UserSession, *, actor, reason: str) -> None:
    """Sign one session out (its owner from another browser, or an admin action)."""
    UserSession.objects.filter(pk=record.pk, ended_at__isnull=True).update(ended_at=timezone.now(), ended_reason=reason)
    if record.session_key:
        _session_store()(session_key=record.session_key).delete()
    log_access(actor, AccessLog.Action.SESSION_ENDED, detail=f"{describe_device(record.user_agent)} ({reason})")


@transaction.atomic
def end_token(token: AuthToken, *, actor, reason: str) -> None:
    token.delete()
    log_access(actor, AccessLog.Action.TOKEN_ENDED, detail=f"token {token.token_key}… ({reason})")


@transaction.atomic
def end_all(user, *, reason: str, keep_session_key: str | None = None, tokens: bool = True) -> int:
    """End every session of ``user`` (but ``keep_session_key``) and, with ``tokens``, every API
    token; each one ended is logged. Returns how many were ended."""
    ended = 0
    records = UserSession.objects.filter(user=user, ended_at__isnull=True).select_related("user")
    if keep_session_key:
        records = records.exclude(session_key=keep_session_key)
    for record in records:
        end_session(record, actor=user, reason=reason)
        ended += 1
    if tokens:
        for token in AuthToken.objects.filter(user=user):
            end_token(token, actor=user, reason=reason)
            ended += 1
    return ended


def live_sessions(user, now=None):
    return UserSession.objects.live(now).filter(user=user)


def live_tokens(user, now=None):
    now = now or timezone.now()
    return AuthToken.objects.filter(user=user, expiry__gt=now).order_by("-created")


# --- a readable device name from a User-Agent, no dependency -------------------------------------

_BROWSERS = (
    ("Edge", r"Edg/"),
    ("Firefox", r"Firefox/"),
    ("Chromium", r"Chromium/"),
    ("Chrome", r"Chrome/"),
    ("Safari", r"Safari/"),
    ("curl", r"curl/"),
    ("Python", r"python-requests|Python"),
)
_SYSTEMS = (
    ("Android", r"Android"),
    ("iPhone", r"iPhone"),
    ("iPad", r"iPad"),
    ("Windows", r"Windows"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("ChromeOS", r"CrOS"),
    ("Linux", r"Linux"),
)


def describe_device(user_agent: str) -> str:
    if not user_agent:
        return "Unknown device"
    browser = next((name for name, pattern in _BROWSERS if re.search(pattern, user_agent)), "Browser")
    if "HeadlessChrome" in user_agent:
        browser = "Headless Chrome"
    system = next((name for name, pattern in _SYSTEMS if re.search(pattern, user_agent)), "")
    return f"{browser} on {system}" if system else browser
