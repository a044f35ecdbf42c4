"""Clinics, staff memberships with roles, on-call rotations, and the append-only access log."""

import zoneinfo
from datetime import time
from decimal import Decimal

import holidays
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

# Zone names that exist but would give a clinic the server's zone or none at all.
NOT_A_CLINIC_ZONE = {"localtime", "posixrules", "Factory"}


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones() or value in NOT_A_CLINIC_ZONE:
        raise ValidationError(f"“{value}” is not a known time zone (for example America/Phoenix).")


WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Longest closure a clinic may enter: the due-date search looks back a bounded number of days.
LONGEST_CLOSURE_DAYS = 366


# The most a clinic's dose settings may be (CLINICAL.md "Dose safety"): a clinic may lower them,
# never raise them (DESIGN.md: "a clinic setting may only tighten a safety limit").
HARD_DOSE_LIMIT_MAX_MCG_PER_DAY = Decimal("3000")
HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY = Decimal("1000")


def default_opening_weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday to Friday (date.weekday() numbers)


def validate_opening_weekdays(value) -> None:
    if not isinstance(value, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in value):
        raise ValidationError("Opening weekdays are day numbers 0 (Monday) to 6 (Sunday).")
    if not value:
        raise ValidationError("A clinic opens on at least one weekday: refills are done on open days.")


def validate_holiday_country(value: str) -> None:
    if value and value not in holidays.list_supported_countries():
        raise ValidationError(f"“{value}” is not a country the holiday calendar knows (for example US).")


class ClinicQuerySet(models.QuerySet):
    def for_user(self, user):
        """The clinics a user may see: their active memberships, or every clinic for a superuser."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(memberships__user=user, memberships__is_active=True).distinct()


class Clinic(models.Model):
    """A pump clinic and the settings its projections and alerts use (CLINICAL.md defaults)."""

    name = models.CharField(max_length=200, unique=True)
    timezone = models.CharField(max_length=64, default="America/Phoenix", validators=[validate_timezone])
    phone = models.CharField(max_length=40, blank=True)

    refill_margin_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MaxValueValidator(60)],
        help_text="Days before the conservative alarm date (or drug expiry) that a refill is due.",
    )
    high_risk_extra_days = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(30)],
        help_text="Extra margin for patients with a withdrawal-risk flag.",
    )
    overinfusion_allowance_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("50"))],
        help_text="Over-infusion the conservative projection assumes (%).",
    )
    small_reservoir_limit_ml = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("20.00"),
        help_text="Reservoirs up to this size use the small-reservoir discrepancy tolerance.",
    )
    discrepancy_small_reservoir_ml = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Residual tolerance (mL) for reservoirs up to the small-reservoir limit.",
    )
    discrepancy_large_reservoir_ml = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("2.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Residual tolerance (mL) for larger reservoirs.",
    )
    discrepancy_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("15.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Residual tolerance as % of the expected residual (the larger tolerance applies).",
    )
    dose_change_limit_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("20.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="A dose change larger than this (%) needs an explicit confirmation.",
    )
    high_dose_threshold_mcg_per_day = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("1000.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY)],
        help_text="A daily dose above this (mcg/day) needs an explicit confirmation (at most 1000, and not "
        "above the hard limit).",
    )
    max_daily_dose_mcg_per_day = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("3000.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(HARD_DOSE_LIMIT_MAX_MCG_PER_DAY)],
        help_text="Hard limit: daily dose plus bolus allowance above this is refused (mcg/day; it may be lowered, "
        "never raised above 3000).",
    )
    reminder_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MaxValueValidator(90)],
        help_text="A pump is 'due soon' this many days before its refill due date.",
    )
    critical_hours = models.PositiveSmallIntegerField(
        default=48,
        validators=[MaxValueValidator(240)],
        help_text="A pump is critical this many hours before its conservative alarm time.",
    )
    drift_alert_ratio = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.10"),
        validators=[MinValueValidator(Decimal("1.00"))],
        help_text="A measured delivery ratio above this raises a physician review.",
    )
    appointment_grace_hours = models.PositiveSmallIntegerField(
        default=2,
        help_text="A refill appointment still open this long after its time is missed.",
    )
    replacement_warning_days = models.PositiveSmallIntegerField(
        default=180,
        help_text="Plan a pump replacement this many days before its ERI date.",
    )
    # The clinic's calendar (CLINICAL.md "Closed days"): with its closures it makes the closed
    # days, which move refill due dates; the opening hours hold reminder emails and webhooks.
    opening_weekdays = models.JSONField(
        default=default_opening_weekdays,
        validators=[validate_opening_weekdays],
        help_text="Weekdays the clinic opens (0 = Monday … 6 = Sunday).",
    )
    holiday_country = models.CharField(
        max_length=3,
        blank=True,
        validators=[validate_holiday_country],
        help_text="Public holidays of this country are closed days (ISO code, e.g. US; empty: none).",
    )
    holiday_subdivision = models.CharField(
        max_length=10, blank=True, help_text="State or region of the public holidays (e.g. AZ; empty: national only)."
    )
    opens_at = models.TimeField(default=time(8, 0), help_text="Reminder emails and webhooks wait for this time.")
    closes_at = models.TimeField(
        default=time(17, 0), help_text="Reminders raised after this wait for the next opening."
    )
    restart_order_after_empty_hours = models.PositiveSmallIntegerField(
        default=24,
        validators=[MaxValueValidator(720)],
        help_text="A pump empty longer than this restarts only on a physician's order, even at the old dose.",
    )

    two_factor_required = models.BooleanField(
        default=False,
        help_text="Every member of this clinic must sign in with an authenticator code "
        "(clinic administrators must anyway).",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = ClinicQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(overinfusion_allowance_pct__gte=0), name="clinic_allowance_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(drift_alert_ratio__gte=1), name="clinic_drift_ratio_at_least_one"
            ),
            # A safety limit is only ever tightened, whatever writes the row (page, admin, SQL).
            models.CheckConstraint(
                condition=models.Q(
                    max_daily_dose_mcg_per_day__gte=0, max_daily_dose_mcg_per_day__lte=HARD_DOSE_LIMIT_MAX_MCG_PER_DAY
                ),
                name="clinic_hard_dose_limit_at_most_3000",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    high_dose_threshold_mcg_per_day__gte=0,
                    high_dose_threshold_mcg_per_day__lte=HIGH_DOSE_THRESHOLD_MAX_MCG_PER_DAY,
                ),
                name="clinic_high_dose_threshold_at_most_1000",
            ),
            models.CheckConstraint(
                condition=models.Q(high_dose_threshold_mcg_per_day__lte=models.F("max_daily_dose_mcg_per_day")),
                name="clinic_high_dose_threshold_within_hard_limit",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.holiday_subdivision and not self.holiday_country:
            errors["holiday_subdivision"] = "Choose the country of the public holidays first."
        elif self.holiday_country and self.holiday_subdivision:
            known = holidays.country_holidays(self.holiday_country).subdivisions
            if self.holiday_subdivision not in known:
                errors["holiday_subdivision"] = (
                    f"“{self.holiday_subdivision}” is not a subdivision of {self.holiday_country} "
                    f"(known: {', '.join(known[:12])}{'…' if len(known) > 12 else ''})."
                )
        if self.opens_at is not None and self.closes_at is not None and self.opens_at >= self.closes_at:
            errors["closes_at"] = "The clinic closes after it opens."
        threshold, limit = self.high_dose_threshold_mcg_per_day, self.max_daily_dose_mcg_per_day
        if threshold is not None and limit is not None and threshold > limit:
            errors["high_dose_threshold_mcg_per_day"] = (
                f"The high-dose threshold cannot be above the hard limit ({limit.normalize():f} mcg/day): "
                "lower it as well."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def access_clinic_id(self) -> int:
        return self.pk


class ClinicClosure(models.Model):
    """Days the clinic is closed beyond its weekdays and public holidays (a holiday shutdown, staff
    leave), first and last day included. Refill due dates inside it move before it."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="closures")
    first_day = models.DateField()
    last_day = models.DateField()
    reason = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["first_day", "last_day", "id"]
        indexes = [models.Index(fields=["clinic", "last_day"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(last_day__gte=models.F("first_day")), name="closure_in_order"),
        ]

    def __str__(self):
        return f"{self.clinic}: closed {self.first_day} to {self.last_day} ({self.reason})"

    def clean(self):
        if self.first_day and self.last_day:
            if self.last_day < self.first_day:
                raise ValidationError({"last_day": "The last day is on or after the first day."})
            if (self.last_day - self.first_day).days >= LONGEST_CLOSURE_DAYS:
                raise ValidationError({"last_day": f"A closure lasts at most {LONGEST_CLOSURE_DAYS} days."})

    @property
    def access_clinic_id(self) -> int:
        return self.clinic_id


class Role(models.TextChoices):
    NURSE = "nurse", "Nurse"
    PHYSICIAN = "physician", "Physician"
    CLINIC_ADMIN = "clinic_admin", "Clinic administrator"


class MembershipQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True, user__is_active=True)


class Membership(models.Model):
    """A user's role in one clinic. Memberships are deactivated, never deleted."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    phone = models.CharField(max_length=40, blank=True)
    notification_email = models.EmailField(blank=True, help_text="Alerts go here (default: the user's email).")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["clinic__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="membership_one_per_user_and_clinic"),
            models.CheckConstraint(condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"),
        ]

    def __str__(self):
        return f"{self.user} — {self.get_role_display()} at {self.clinic}"

    @property
    def email(self) -> str:
        return self.notification_email or self.user.email

    @property
    def access_clinic_id(self) -> int:
        return self.clinic_id


class AccessLogQuerySet(models.QuerySet):
    def update(self, **kwargs):  # pragma: no cover - guarded path
        raise PermissionError("The access log is append-only.")

    def delete(self):
        raise PermissionError("The access log is append-only.")


class AccessLog(models.Model):
    """Append-only: who read which record, exported what, fetched which feed."""

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        EXPORT = "export", "Exported"
        FEED = "feed", "Fetched feed"
        API = "api", "Read through the API"
        # Staff accounts (accounts/): user-level events, clinic left empty.
        SIGN_IN = "sign_in", "Signed in"
        SIGN_OUT = "sign_out", "Signed out"
        CODE_FAILED = "code_failed", "Wrong two-factor code"
        ENROLLED = "enrolled", "Two-factor enrolled"
        TWO_FACTOR_RESET = "2fa_reset", "Two-factor reset"
        PASSWORD_RESET = "pw_reset", "Password reset"
        PASSWORD_CHANGED = "pw_changed", "Password changed"
        SESSION_ENDED = "session_ended", "Session ended"
        TOKEN_ENDED = "token_ended", "API token ended"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, null=True, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, null=True, blank=True)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("content_type", "object_id")
    detail = models.CharField(max_length=255, blank=True)

    objects = AccessLogQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id", "at"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.user} {self.action} {self.content_type}#{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("The access log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The access log is append-only.")


class CalendarFeed(models.Model):
    """A private, revocable calendar subscription URL of one user. Only the token's hash is
    stored: the URL is shown once, and a leaked database does not open anyone's feed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calendar_feeds")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Calendar feed of {self.user} ({'revoked' if self.revoked_at else 'active'})"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class Rotation(models.Model):
    """An on-call rota of one role: members take turns in order, handing over every
    ``length_days`` days at ``handover_time`` (clinic zone), from ``starts_on`` (a hand-over day).
    Who is on call is computed from it (clinics/rota.py), never stored."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="rotations")
    name = models.CharField(max_length=80, help_text="What escalation levels call it, e.g. “On-call nurse”.")
    role = models.CharField(max_length=20, choices=Role.choices, help_text="Whose rota this is.")
    member_ids = models.JSONField(default=list, blank=True, help_text="Membership ids, in turn order.")
    handover_weekday = models.PositiveSmallIntegerField(choices=Weekday.choices, default=Weekday.MONDAY)
    handover_time = models.TimeField(default=time(8, 0))
    length_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(90)], help_text="Days each member is on call."
    )
    starts_on = models.DateField(help_text="The first hand-over (a hand-over weekday).")
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["clinic", "role", "name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="rotation_name_unique_per_clinic"),
            models.CheckConstraint(condition=models.Q(length_days__gte=1), name="rotation_length_positive"),
        ]

    def __str__(self):
        return f"{self.name} ({self.clinic})"

    @property
    def access_clinic_id(self) -> int:
        return self.clinic_id

    def clean(self):
        if self.starts_on and self.starts_on.weekday() != self.handover_weekday:
            raise ValidationError(
                {"starts_on": f"The first hand-over must be a {Weekday(self.handover_weekday).label}."}
            )

    def spec(self, zone: zoneinfo.ZoneInfo | None = None):
        """The rotation as the rota arithmetic takes it."""
        from . import rota

        return rota.Rotation(
            member_ids=tuple(self.member_ids),
            starts_on=self.starts_on,
            handover_time=self.handover_time,
            length_days=self.length_days,
            zone=zone or self.clinic.zone,
        )


class RotaOverride(models.Model):
    """This member on call instead of the rotation, from one instant to another (a swap, sick cover)."""

    rotation = models.ForeignKey(Rotation, on_delete=models.PROTECT, related_name="overrides")
    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="rota_overrides")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["rotation", "starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="override_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["rotation", "ends_at"])]

    def __str__(self):
        return f"{self.membership.user} instead on {self.rotation.name} {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def access_clinic_id(self) -> int:
        return self.rotation.clinic_id

    def spec(self):
        from . import rota

        return rota.Override(member_id=self.membership_id, starts_at=self.starts_at, ends_at=self.ends_at)
