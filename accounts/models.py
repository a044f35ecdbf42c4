"""Staff accounts: recovery codes (a django-otp device), temporary passwords, session records.

The authenticator itself is django-otp's ``TOTPDevice``; its secret has to be readable to check
codes. Recovery codes are not: only their SHA-256 is stored (each code carries 80 random bits,
so a leaked table cannot be searched back to a code).
"""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device


def normalise_code(code: str) -> str:
    """What the user typed, without spaces, dashes or case."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def hash_code(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


class RecoveryCodeDevice(Device):
    """Ten single-use recovery codes of one user (a django-otp device). Wrong codes are
    throttled by django-axes at the sign-in, as wrong passwords are."""

    def verify_token(self, token):
        # Compare-and-set: of two requests racing with one code, only one marks it used.
        used = self.codes.filter(code_hash=hash_code(token), used_at__isnull=True).update(used_at=timezone.now())
        return bool(used)

    @property
    def remaining(self) -> int:
        return self.codes.filter(used_at__isnull=True).count()


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["device", "code_hash"])]

    def __str__(self):
        return f"Recovery code of {self.device.user} ({'used' if self.used_at else 'unused'})"


class TemporaryPassword(models.Model):
    """The user's password was typed by a clinic admin: the next web sign-in must change it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="temporary_password")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    set_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Temporary password of {self.user}"


class UserSessionQuerySet(models.QuerySet):
    def live(self, now=None):
        """Sessions still usable: not ended, their session row unexpired, not idle past the timeout."""
        from django.contrib.sessions.models import Session

        now = now or timezone.now()
        alive = Session.objects.filter(session_key=models.OuterRef("session_key"), expire_date__gt=now)
        return self.filter(
            models.Exists(alive), ended_at__isnull=True, last_seen_at__gt=now - settings.SESSION_IDLE_TIMEOUT
        )


class UserSession(models.Model):
    """One signed-in browser session: shown on the user's Security page, where it can be ended.

    Linked to Django's session row by its key (kept current when the key rotates)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signed_in_sessions")
    session_key = models.CharField(max_length=40, db_index=True)
    user_agent = models.CharField(max_length=300, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    second_factor = models.CharField(max_length=30, blank=True)
    signed_in_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=80, blank=True)

    objects = UserSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen_at", "-id"]

    def __str__(self):
        return f"Session of {self.user} from {self.ip_address or 'unknown address'}"
