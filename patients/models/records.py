"""Clinical records: a pump's dose programs, refill visits, appointments and events, and a
patient's status changes."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from clinics.access import scope

from .catalogue import DrugProduct
from .common import CONCENTRATION, DOSE, NOTE, REASON, VOLUME
from .patients import Patient
from .pumps import Pump


class Program(models.Model):
    """One dose segment. Rows are not edited for a dose change: a change is a new row."""

    pump = models.ForeignKey(Pump, on_delete=models.PROTECT, related_name="programs")
    effective_at = models.DateTimeField()
    concentration_mcg_per_ml = models.DecimalField(**CONCENTRATION)
    daily_dose_mcg = models.DecimalField("daily dose (mcg/day)", **DOSE)
    bolus_mcg_per_day = models.DecimalField("bolus allowance (mcg/day)", **DOSE, default=Decimal("0"))
    stop_reason = models.CharField(max_length=255, blank=True)
    ordered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outside_prescriber = models.CharField(
        max_length=255, blank=True, help_text="A refill done elsewhere: the prescriber there (free text)."
    )
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="countersigned by",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The physician who countersigned the order (or entered it themselves).",
    )
    verified_at = models.DateTimeField("countersigned at", null=True, blank=True)
    # Set when a nurse enters an order naming a physician: the order waits for a physician's
    # countersignature from then on, and escalates after ORDER_COUNTERSIGN_HOURS. None: nothing to
    # countersign (a physician's own entry, an import, a refill at an unchanged dose, or a program
    # recorded before countersigning existed).
    countersign_requested_at = models.DateTimeField(null=True, blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["pump", "effective_at", "id"]
        get_latest_by = ["effective_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(concentration_mcg_per_ml__gt=0), name="program_concentration_positive"),
            models.CheckConstraint(
                condition=Q(daily_dose_mcg__gte=0) & Q(bolus_mcg_per_day__gte=0), name="program_dose_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(daily_dose_mcg__gt=0) | ~Q(stop_reason=""), name="program_zero_dose_has_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["pump", "effective_at"]),
            # The review queue and the scan read the orders waiting for a countersignature.
            models.Index(
                fields=["countersign_requested_at"],
                condition=Q(countersign_requested_at__isnull=False, verified_at__isnull=True),
                name="program_awaiting_countersign",
            ),
        ]

    def __str__(self):
        return f"{self.daily_dose_mcg} mcg/day from {self.effective_at:%Y-%m-%d %H:%M}"

    @property
    def awaits_countersign(self) -> bool:
        return self.countersign_requested_at is not None and self.verified_at is None

    @property
    def access_clinic_id(self) -> int:
        return self.pump.access_clinic_id

    @property
    def total_mcg_per_day(self) -> Decimal:
        return self.daily_dose_mcg + self.bolus_mcg_per_day

    @property
    def rate_ml_per_day(self) -> Decimal:
        return self.total_mcg_per_day / self.concentration_mcg_per_ml


class RefillVisit(models.Model):
    """A refill. Never deleted; a correction is an amendment with a reason (history keeps both)."""

    pump = models.ForeignKey(Pump, on_delete=models.PROTECT, related_name="refills")
    performed_at = models.DateTimeField()
    performed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    performed_elsewhere = models.CharField(
        max_length=255, blank=True, help_text="Where and by whom, when the refill was done elsewhere."
    )
    # The reservoir capacity at the time, copied so the database itself can refuse an overfill.
    reservoir_ml = models.DecimalField(**VOLUME)
    expected_residual_ml = models.DecimalField(**VOLUME, null=True, blank=True)
    aspirated_ml = models.DecimalField(**VOLUME)
    volume_added_ml = models.DecimalField(**VOLUME)
    drug_product = models.ForeignKey(DrugProduct, on_delete=models.PROTECT, null=True, blank=True)
    concentration_mcg_per_ml = models.DecimalField(**CONCENTRATION)
    drug_lot = models.CharField(max_length=60, blank=True)
    drug_expires_on = models.DateField("vial or beyond-use date", null=True, blank=True)
    program = models.OneToOneField(Program, on_delete=models.PROTECT, related_name="refill")
    discrepancy = models.BooleanField(default=False)
    discrepancy_reason = models.TextField(**REASON)
    # Refill after a projected empty reservoir (CLINICAL.md): when it had run empty, and the
    # withdrawal assessment made at the visit (keys of services.WITHDRAWAL_SIGNS).
    empty_since = models.DateTimeField(null=True, blank=True)
    nothing_aspirated = models.BooleanField(default=False)
    withdrawal_signs = models.JSONField(default=list, blank=True)
    notes = models.TextField(**NOTE)
    amended_at = models.DateTimeField(null=True, blank=True)
    amend_reason = models.TextField(**REASON)
    # What the pump's projection said just before this refill (the previous fill's), stored when
    # the refill is recorded and never changed by an amendment, so the reports (reports/figures/)
    # never depend on later edits. Empty for a first fill.
    prior_due_on = models.DateField("due date in force before the refill", null=True, blank=True)
    prior_unmoved_due_on = models.DateField(null=True, blank=True)
    prior_lra_at = models.DateTimeField("projected alarm time before the refill", null=True, blank=True)
    prior_empty_at = models.DateTimeField("projected empty time before the refill", null=True, blank=True)
    prior_conservative_lra_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["pump", "-performed_at"]
        get_latest_by = "performed_at"
        constraints = [
            # Zero only when emptying the reservoir (an MRI): the service asks for the stop reason.
            models.CheckConstraint(condition=Q(volume_added_ml__gte=0), name="refill_volume_added_non_negative"),
            models.CheckConstraint(condition=Q(aspirated_ml__gte=0), name="refill_aspirated_non_negative"),
            models.CheckConstraint(
                condition=Q(volume_added_ml__lte=F("reservoir_ml")), name="refill_volume_within_reservoir"
            ),
            models.CheckConstraint(
                condition=Q(aspirated_ml__lte=F("reservoir_ml")), name="refill_aspirated_within_reservoir"
            ),
            models.CheckConstraint(condition=Q(concentration_mcg_per_ml__gt=0), name="refill_concentration_positive"),
            models.CheckConstraint(
                condition=Q(discrepancy=False) | ~Q(discrepancy_reason=""), name="refill_discrepancy_has_reason"
            ),
            models.UniqueConstraint(fields=["pump", "performed_at"], name="refill_one_per_pump_and_time"),
        ]
        indexes = [models.Index(fields=["pump", "performed_at"])]

    def __str__(self):
        return f"Refill of {self.pump_id} at {self.performed_at:%Y-%m-%d %H:%M}"

    @property
    def access_clinic_id(self) -> int:
        return self.pump.access_clinic_id


class AppointmentQuerySet(models.QuerySet):
    def for_user(self, user):
        return scope(self, user, "pump__patient__clinic")


class Appointment(models.Model):
    class Kind(models.TextChoices):
        REFILL = "refill", "Refill"
        DOSE_ADJUSTMENT = "dose_adjustment", "Dose adjustment"
        DEVICE_CHECK = "device_check", "Device check"
        REPLACEMENT = "replacement", "Replacement"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        COMPLETED = "completed", "Completed"
        MISSED = "missed", "Missed"
        CANCELLED = "cancelled", "Cancelled"

    pump = models.ForeignKey(Pump, on_delete=models.PROTECT, related_name="appointments")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.REFILL)
    scheduled_for = models.DateTimeField()
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="appointments"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    notes = models.TextField(**NOTE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = AppointmentQuerySet.as_manager()

    class Meta:
        ordering = ["scheduled_for", "id"]
        indexes = [
            models.Index(fields=["pump", "status", "scheduled_for"]),
            models.Index(fields=["status", "scheduled_for"]),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.scheduled_for:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def access_clinic_id(self) -> int:
        return self.pump.access_clinic_id

    @property
    def reference(self) -> str:
        return f"A-{self.pk:05d}"


class PumpEvent(models.Model):
    """Something reported about a pump: an alarm heard, withdrawal symptoms, a call."""

    class Kind(models.TextChoices):
        LOW_RESERVOIR_ALARM = "low_reservoir_alarm", "Low-reservoir alarm (single tone)"
        CRITICAL_ALARM = "critical_alarm", "Critical alarm (dual tone)"
        ERI_ALARM = "eri_alarm", "Elective replacement alarm"
        WITHDRAWAL_SYMPTOMS = "withdrawal_symptoms", "Withdrawal symptoms"
        CATHETER_REVISION = "catheter_revision", "Catheter revision"
        OTHER = "other", "Other"

    class Source(models.TextChoices):
        PATIENT_CALL = "patient_call", "Patient or carer call"
        INTERROGATION = "interrogation", "Pump interrogation"
        CLINIC = "clinic", "Seen in clinic"

    pump = models.ForeignKey(Pump, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PATIENT_CALL)
    symptoms = models.JSONField(default=list, blank=True, help_text="Checklist items reported.")
    notes = models.TextField(**NOTE)
    resolution = models.TextField(**NOTE)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["pump", "occurred_at"])]

    def __str__(self):
        return f"{self.get_kind_display()} at {self.occurred_at:%Y-%m-%d %H:%M}"

    @property
    def access_clinic_id(self) -> int:
        return self.pump.access_clinic_id


class PatientStatusChange(models.Model):
    """A patient leaving care or coming back: who recorded it, why, from when. A change dated
    ahead (a transfer) waits, the patient still in the scan, until the scan applies it on its date."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="status_changes")
    status = models.CharField(max_length=20, choices=Patient.Status.choices)
    previous_status = models.CharField(max_length=20, choices=Patient.Status.choices)
    effective_on = models.DateField()
    reason = models.CharField(max_length=255)
    transferred_to = models.CharField(max_length=255, blank=True)
    accepted_first_refill_on = models.DateField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True, help_text="Superseded before its date.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "-recorded_at", "-id"]
        indexes = [
            models.Index(
                fields=["effective_on"],
                condition=Q(applied_at__isnull=True, cancelled_at__isnull=True),
                name="status_change_pending",
            )
        ]

    def __str__(self):
        return f"{self.get_status_display()} from {self.effective_on:%Y-%m-%d}"

    @property
    def access_clinic_id(self) -> int:
        return self.patient.clinic_id

    @property
    def is_pending(self) -> bool:
        return self.applied_at is None and self.cancelled_at is None
