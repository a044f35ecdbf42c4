"""The monthly report digest's bookkeeping: one row per clinic, month and admin.

A row is the digest's outbox entry, delivered by the same machinery as the alerts' notifications
(``alerts.delivery.claim_row``: a compare-and-set claim with a lease, ``Notification``'s statuses,
back-off retries, the email channel's refusal rules). It is a model of its own rather than a
``Notification`` because a notification belongs to an alert (its timeline, its failing-address
flag, its cancellation when the alert resolves) and the alerting side must not import reports.
The unique constraint makes "never twice for the same month" a database rule.
"""

from django.conf import settings
from django.db import models

from alerts.models import Notification
from clinics.models import Clinic


class DigestDelivery(models.Model):
    Status = Notification.Status

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    month = models.DateField(help_text="First day of the month the digest reports on.")
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    address = models.EmailField()
    subject = models.CharField(max_length=200)
    body = models.TextField(help_text="Figures only: no patient name, MRN, birth date or pump serial.")
    status = models.CharField(max_length=10, choices=Notification.Status.choices, default=Notification.Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=40, blank=True, help_text="Token of the run that last enqueued it.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-month", "clinic_id", "recipient_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "month", "recipient"], name="one_digest_per_clinic_month_recipient"
            )
        ]
        indexes = [models.Index(fields=["status", "enqueued_at"]), models.Index(fields=["status", "lease_until"])]

    def __str__(self):
        return f"digest {self.month:%Y-%m} of clinic {self.clinic_id} to {self.recipient_id} ({self.status})"
