"""Personal contact methods (push, SMS, chat through apprise) and personal notification rules.

Imported by ``alerts.models`` so Django registers them with the alerts app. A method's URL holds
secrets (tokens, keys, a private ntfy topic): it is stored encrypted (``alerts.crypto``) and shown
back only as ``display``, a masked form. A method is used only once verified (a 6-digit code sent
in a test message, typed back by its owner) and while not suspended.
"""

from django.conf import settings
from django.db import models

from .models import Severity


class ContactMethod(models.Model):
    """One of a member's destinations: an apprise URL (ntfy, Pushover, Twilio SMS, Slack, json …)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contact_methods")
    label = models.CharField(max_length=60, help_text="Your name for it, e.g. “Work phone (ntfy)”.")
    scheme = models.CharField(max_length=20)
    url_encrypted = models.TextField(help_text="The apprise URL, Fernet-encrypted.")
    display = models.CharField(max_length=120, help_text="A masked form of the URL, safe to show.")
    created_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    code_hash = models.CharField(max_length=128, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    suspended_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True, help_text="Refused permanently (a provider's 4xx).")
    last_error = models.CharField(max_length=300, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user", "created_at", "id"]
        indexes = [models.Index(fields=["user", "removed_at"])]

    def __str__(self):
        return f"{self.label} ({self.display})"

    @property
    def is_usable(self) -> bool:
        """Alerts go only to a verified method that is neither suspended nor removed."""
        return self.verified_at is not None and self.suspended_at is None and self.removed_at is None

    @property
    def state(self) -> str:
        if self.removed_at:
            return "removed"
        if self.suspended_at:
            return "suspended"
        if self.verified_at is None:
            return "unverified"
        if self.failing_since:
            return "failing"
        return "verified"

    @property
    def address(self) -> str:
        """What a notification row records as its address: the method, never its URL."""
        return f"method:{self.pk}"


# A rule step's method: "email" (the member's notification email, as before) or a method's id.
EMAIL_STEP = "email"


class NotificationRule(models.Model):
    """How one member wants to be reached for alerts of one severity: ordered steps, each
    ``{"method": "email" | <ContactMethod id>, "after_minutes": N}`` — that method, N minutes after
    the escalation level reached them, unless the alert has been acknowledged by then.
    A member without a rule for a severity follows ``alerts.personal_rules.default_steps``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notification_rules")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    steps = models.JSONField(default=list)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["user", "severity"]
        constraints = [models.UniqueConstraint(fields=["user", "severity"], name="one_rule_per_user_and_severity")]

    def __str__(self):
        return f"{self.user}: {self.get_severity_display()}"
