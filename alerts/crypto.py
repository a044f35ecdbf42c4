"""Encryption at rest for contact-method URLs (they carry tokens, keys and private topics).

``NOTIFY_ENCRYPTION_KEYS`` lists Fernet keys, newest first: the first encrypts, any of them
decrypts (``MultiFernet``), and ``rotate`` re-encrypts a token under the first. The keys come from
the environment; only DEBUG and the test settings fall back to a fixed development key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.NOTIFY_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        raise ImproperlyConfigured("NOTIFY_ENCRYPTION_KEYS is not set: phone and chat methods cannot be stored.")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("NOTIFY_ENCRYPTION_KEYS holds a key that is not a Fernet key.") from exc


def is_configured() -> bool:
    try:
        _fernet()
    except ImproperlyConfigured:
        return False
    return True


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # A key was dropped before `rotate_notify_keys` ran: say so without showing anything.
        raise ImproperlyConfigured("A contact method was encrypted with a key no longer configured.") from exc


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode()


def mask(url: str) -> str:
    """``ntfy://ntfy.example.org/…k3``: the scheme and host to recognise it by, never the secrets
    (user, password, path, query). The last two characters help tell two methods apart."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    # Providers whose "host" is itself a credential (twilio's account, pover's user key) show less.
    if parts.scheme in {"pover", "twilio", "slack", "msteams", "workflow", "workflows"}:
        host = host[:3] + "…" if host else ""
    tail = url[-2:] if len(url) > 12 else ""
    return f"{parts.scheme}://{host}/…{tail}"[:120]
