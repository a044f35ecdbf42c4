"""Alerts, escalation policies, notifications, the alert timeline and the alerting heartbeat.

Deadlines live here as columns (``Alert.next_step_at``, ``Notification.lease_until``), never in
broker ETAs: a Redis broker redelivers a long-delayed task, and a killed worker loses a
filesystem-broker task. The scan (alerts/engine/) reads these columns through indexes.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from clinics.access import scope
from clinics.models import Clinic, Rotation
from patients.models import Program, Pump, RefillVisit


class Severity(models.IntegerChoices):
    REMINDER = 10, "Reminder"
    REVIEW = 15, "Physician review"
    URGENT = 20, "Urgent"
    CRITICAL = 30, "Critical"
    EMERGENCY = 40, "Emergency"


# A withdrawal-risk flag moves an alert one step up this ladder (physician reviews stay as they are).
SEVERITY_LADDER = [Severity.REMINDER, Severity.URGENT, Severity.CRITICAL, Severity.EMERGENCY]


def one_step_higher(severity: int) -> int:
    if severity not in SEVERITY_LADDER:
        return severity
    return SEVERITY_LADDER[min(SEVERITY_LADDER.index(severity) + 1, len(SEVERITY_LADDER) - 1)]


class AlertKind(models.TextChoices):
    REFILL_DUE = "refill_due", "Refill due"
    REFILL_OVERDUE = "refill_overdue", "Refill overdue"
    RESERVOIR_CRITICAL = "reservoir_critical", "Reservoir critical"
    APPOINTMENT_MISSED = "appointment_missed", "Appointment missed"
    PUMP_ALARM = "pump_alarm", "Pump alarm or symptoms reported"
    RESIDUAL_DISCREPANCY = "residual_discrepancy", "Residual volume discrepancy"
    DELIVERY_DRIFT = "delivery_drift", "Delivery drift"
    REPLACEMENT_DUE = "replacement_due", "Pump replacement due"
    REFILL_AFTER_EMPTY = "refill_after_empty", "Refill after an empty reservoir"
    CARE_ENDED = "care_ended", "Left the clinic's care: check"
    ROTA_GAP = "rota_gap", "Nobody on call (rota gap)"
    ORDER_UNSIGNED = "order_unsigned", "Dose order not countersigned"


# Kinds about the clinic rather than one pump: they have no pump.
CLINIC_LEVEL_KINDS = (AlertKind.ROTA_GAP,)


# The refill kinds are one problem getting worse: they share one open alert per pump, whose kind
# and severity rise with the condition (due → overdue → critical), never a pile of three alerts.
REFILL_FAMILY = (AlertKind.REFILL_DUE, AlertKind.REFILL_OVERDUE, AlertKind.RESERVOIR_CRITICAL)


# Reviews of one refill (its residual, its restart after an empty reservoir): one alert per refill,
# so a second discrepancy on the same pump raises its own review instead of vanishing into the first.
REFILL_REVIEW_KINDS = (AlertKind.RESIDUAL_DISCREPANCY, AlertKind.REFILL_AFTER_EMPTY)

# Physician reviews (DESIGN.md "Who may do what"): only a physician resolves them; others acknowledge.
# The "Needs physician review" queue lists them. An unsigned order resolves when it is countersigned.
PHYSICIAN_REVIEW_KINDS = (
    AlertKind.RESIDUAL_DISCREPANCY,
    AlertKind.DELIVERY_DRIFT,
    AlertKind.REFILL_AFTER_EMPTY,
    AlertKind.ORDER_UNSIGNED,
)


def dedupe_key(kind: str, pump_id: int, refill_id: int | None = None, program_id: int | None = None) -> str:
    if refill_id is not None and kind in REFILL_REVIEW_KINDS:
        return f"{kind}:refill:{refill_id}"
    if program_id is not None:
        # One alert per order: a pump may have two unsigned orders, each signed on its own.
        return f"{kind}:program:{program_id}"
    family = "refill" if kind in REFILL_FAMILY else kind
    return f"{family}:pump:{pump_id}"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    IN_APP = "in_app", "In-app inbox"
    WEBHOOK = "webhook", "Webhook"
    PHONE = "phone", "Phone or chat"


class EscalationPolicy(models.Model):
    """What a clinic does for alerts of one severity: ordered levels, repeats, re-alerts."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="escalation_policies")
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    repeat_count = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=0,
        help_text="How many times the whole chain repeats if nobody acknowledges (empty: until acknowledged).",
    )
    realert_minutes = models.PositiveIntegerField(
        default=240, help_text="After an acknowledgement, an unresolved alert notifies again after this long."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["clinic", "severity"]
        verbose_name_plural = "escalation policies"
        constraints = [models.UniqueConstraint(fields=["clinic", "severity"], name="one_policy_per_severity")]

    def __str__(self):
        return f"{self.clinic}: {self.get_severity_display()}"

    @property
    def access_clinic_id(self):
        return self.clinic_id

    def snapshot(self) -> dict:
        """The policy frozen into an alert when it is raised (editing it never changes a running one)."""
        return {
            "severity": self.severity,
            "repeat_count": self.repeat_count,
            "realert_minutes": self.realert_minutes,
            "levels": [level.snapshot() for level in self.levels.all()],
        }


class EscalationLevel(models.Model):
    """One step of a policy: who, through which channels, and how long to wait for an acknowledgement."""

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="levels")
    position = models.PositiveSmallIntegerField(default=0)
    roles = models.JSONField(default=list, blank=True, help_text="Roles notified: nurse, physician, clinic_admin.")
    # Rotation ids (rotations are never deleted), a list like ``roles`` so that loading policies for
    # the scan takes no extra query. Resolved to a person at each step, at the time of the step.
    on_call_rotation_ids = models.JSONField(
        default=list, blank=True, help_text="Notify whoever is on call on these rotas at the time of the step."
    )
    assigned_nurse = models.BooleanField(default=False, help_text="Notify the pump's assigned nurse.")
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    channels = models.JSONField(default=list, help_text="email, in_app, webhook")
    wait_minutes = models.PositiveIntegerField(
        default=30, help_text="Wait this long for an acknowledgement before the next level."
    )
    history = HistoricalRecords(m2m_fields=[users])

    class Meta:
        ordering = ["policy", "position", "id"]

    def __str__(self):
        return f"Level {self.position + 1} of {self.policy}"

    def snapshot(self) -> dict:
        return {
            "roles": list(self.roles),
            "on_call_rotation_ids": sorted(int(pk) for pk in self.on_call_rotation_ids),
            "assigned_nurse": self.assigned_nurse,
            "user_ids": sorted(u.pk for u in self.users.all()),
            "channels": list(self.channels),
            "wait_minutes": self.wait_minutes,
        }


class AlertQuerySet(models.QuerySet):
    def for_user(self, user):
        return scope(self, user, "clinic")

    def open(self):
        return self.filter(status__in=Alert.OPEN_STATUSES)


class Alert(models.Model):
    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    OPEN_STATUSES = (Status.TRIGGERED, Status.ACKNOWLEDGED)

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="alerts")
    pump = models.ForeignKey(
        Pump,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="alerts",
        help_text="None: a clinic-level kind.",
    )
    # The refill a review is about (REFILL_REVIEW_KINDS); its dedupe key names it.
    refill = models.ForeignKey(
        RefillVisit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="alerts",
        help_text="The refill a physician review is about.",
    )
    kind = models.CharField(max_length=30, choices=AlertKind.choices)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    dedupe_key = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRIGGERED)
    detail = models.CharField(max_length=255, blank=True, help_text="Shown to logged-in staff only.")
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution = models.CharField(max_length=255, blank=True)
    policy_snapshot = models.JSONField(default=dict)
    escalation_level = models.PositiveSmallIntegerField(default=0, help_text="Next level to notify.")
    repeat_round = models.PositiveSmallIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=40, blank=True, help_text="Token of the scan that claimed the step.")
    nobody_to_notify = models.BooleanField(default=False, help_text="A level resolved to nobody.")
    # What an unsigned-order alert is about: the nurse-entered program waiting for a physician.
    program = models.ForeignKey(Program, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts")
    # What a clinic-level alert is about: a rota gap's rotation and hours.
    rotation = models.ForeignKey(Rotation, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    period_starts_at = models.DateTimeField(null=True, blank=True)
    period_ends_at = models.DateTimeField(null=True, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-severity", "raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(status__in=["triggered", "acknowledged"]),
                name="one_open_alert_per_dedupe_key",
            ),
            models.CheckConstraint(
                condition=Q(pump__isnull=False) | Q(kind__in=[str(k) for k in CLINIC_LEVEL_KINDS]),
                name="alert_has_pump_unless_clinic_level",
            ),
        ]
        indexes = [
            models.Index(fields=["next_step_at"], condition=Q(next_step_at__isnull=False), name="alert_due_step"),
            models.Index(fields=["clinic", "status", "-severity"]),
            models.Index(fields=["pump", "status"]),
            models.Index(fields=["claim"]),
        ]

    def __str__(self):
        return f"{self.reference} {self.get_kind_display()} ({self.get_severity_display()})"

    @property
    def reference(self) -> str:
        """What emails, webhooks and logs carry instead of a patient's name."""
        return f"ALR-{self.pk:06d}"

    @property
    def access_clinic_id(self):
        return self.clinic_id

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_physician_review(self) -> bool:
        return self.kind in PHYSICIAN_REVIEW_KINDS

    @property
    def resolve_permission(self) -> str:
        """The rule a user needs to resolve this alert: a physician review needs the physician role."""
        return "patients.review_clinical" if self.is_physician_review else "alerts.acknowledge"


class AlertEvent(models.Model):
    """The alert's timeline: every step, append-only."""

    class Kind(models.TextChoices):
        RAISED = "raised", "Raised"
        UPGRADED = "upgraded", "Severity raised"
        NOTIFIED = "notified", "Notified"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Delivery failed"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        ESCALATED = "escalated", "Escalated"
        REPEATED = "repeated", "Repeated"
        REALERTED = "realerted", "Re-alerted"
        RESOLVED = "resolved", "Resolved"
        NOBODY = "nobody", "Nobody to notify"
        CONCLUDED = "concluded", "Review concluded"

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="timeline")
    at = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    detail = models.CharField(max_length=255, blank=True)
    # The moment the detail speaks of ("re-alert at", "refill performed at"), kept as data so
    # that pages show it in the clinic's zone; never written into ``detail`` as text.
    subject_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()}"


class NotificationQuerySet(models.QuerySet):
    def unread_in_app(self, user):
        return self.filter(recipient=user, channel=Channel.IN_APP, read_at__isnull=True, alert__status="triggered")


class Notification(models.Model):
    """One message to one recipient through one channel, delivered at least once, sent at most once
    (the compare-and-set claim and the ``sent`` status guard the send)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="notifications")
    step = models.CharField(max_length=40, help_text="Which escalation step created it (round:level or re-alert).")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="notifications"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=40, blank=True, help_text="Token of the scan that last enqueued it.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    contact_method = models.ForeignKey(
        "alerts.ContactMethod", on_delete=models.PROTECT, null=True, blank=True, related_name="notifications"
    )
    unless_acknowledged = models.BooleanField(
        default=False, help_text="A later step of a personal rule: cancelled once the alert is acknowledged."
    )

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "step", "channel", "address"], name="one_notification_per_step_and_address"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "enqueued_at"]),
            models.Index(fields=["status", "lease_until"]),
            models.Index(fields=["recipient", "channel", "read_at"]),
        ]

    def __str__(self):
        return f"{self.channel} to {self.address or self.recipient_id} for {self.alert_id} ({self.status})"


class Webhook(models.Model):
    """A clinic's webhook (set by its clinic admins): JSON POST, HMAC-SHA256 signed."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["secret"])

    class Meta:
        ordering = ["clinic", "url"]

    def __str__(self):
        return self.url

    @property
    def access_clinic_id(self):
        return self.clinic_id


class FailingAddress(models.Model):
    """An email address or webhook that failed permanently: shown to the clinic's admins."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="failing_addresses")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=500)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    last_error = models.CharField(max_length=500, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_failed_at"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "channel", "address"], name="one_failing_row_per_address")
        ]

    def __str__(self):
        return f"{self.channel} {self.address}"


class Heartbeat(models.Model):
    """When the scan last ran: every page shows a banner when it has gone quiet."""

    name = models.CharField(max_length=40, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_summary = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return f"{self.name}: {self.last_success_at}"


# Personal contact methods and rules live in their own module; imported here so the app registers them.
from .contact_models import EMAIL_STEP, ContactMethod, NotificationRule  # noqa: E402,F401
from .review_models import ReviewConclusion  # noqa: E402,F401
