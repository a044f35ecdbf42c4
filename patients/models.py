"""Patients, the pump and drug catalogues, pumps, dose programs, refill visits, appointments
and pump events. Volumes (mL) and doses (mcg/day) are Decimals everywhere.

Clinical records keep their full history (django-simple-history) and are changed only through
``patients/services.py``, which saves through the ORM so each change is recorded with its actor.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from clinics.access import scope
from clinics.models import Clinic

from . import depletion

VOLUME = {"max_digits": 6, "decimal_places": 2}  # mL, up to 9999.99
DOSE = {"max_digits": 8, "decimal_places": 2}  # mcg/day
CONCENTRATION = {"max_digits": 8, "decimal_places": 2}  # mcg/mL
RATE = {"max_digits": 8, "decimal_places": 4}  # mL/day

# Free text has a maximum length (issue 9, item 10: a 100,000-character note stretched the pump
# page). A validator, not a column length: text already stored is never truncated; the forms, the
# API and the services refuse longer input on the field.
NOTE_MAX_CHARS = 2000
REASON_MAX_CHARS = 500
NOTE = {"blank": True, "validators": [MaxLengthValidator(NOTE_MAX_CHARS)]}
REASON = {"blank": True, "validators": [MaxLengthValidator(REASON_MAX_CHARS)]}


class PumpModel(models.Model):
    """Catalogue of implantable pumps (CLINICAL.md "Devices"); superusers edit it."""

    class Kind(models.TextChoices):
        PROGRAMMABLE = "programmable", "Programmable"
        CONSTANT_FLOW = "constant_flow", "Constant flow"

    manufacturer = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    reservoir_ml = models.DecimalField(**VOLUME)
    default_lra_ml = models.DecimalField(**VOLUME, default=Decimal("2.00"))
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PROGRAMMABLE)
    battery_life_years = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    days_eri_to_end_of_service = models.PositiveSmallIntegerField(
        "days from ERI to end of service",
        null=True,
        blank=True,
        help_text="The battery stops this many days after the elective replacement indicator (empty: no battery).",
    )
    notes = models.TextField(**NOTE)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["manufacturer", "name", "reservoir_ml"]
        constraints = [
            models.UniqueConstraint(fields=["manufacturer", "name"], name="pump_model_unique_name"),
            models.CheckConstraint(condition=Q(reservoir_ml__gt=0), name="pump_model_reservoir_positive"),
            models.CheckConstraint(
                condition=Q(default_lra_ml__gte=0) & Q(default_lra_ml__lt=F("reservoir_ml")),
                name="pump_model_lra_within_reservoir",
            ),
        ]

    def __str__(self):
        return f"{self.manufacturer} {self.name}"

    @property
    def is_constant_flow(self) -> bool:
        return self.kind == self.Kind.CONSTANT_FLOW

    def end_of_service_on(self, eri_on):
        """Projected end of service of a pump of this model with ``eri_on`` (None when unknown)."""
        if eri_on is None or self.days_eri_to_end_of_service is None:
            return None
        return eri_on + timedelta(days=self.days_eri_to_end_of_service)


class DrugProduct(models.Model):
    """Catalogue of intrathecal baclofen products and their stability in the pump."""

    name = models.CharField(max_length=100)
    concentration_mcg_per_ml = models.DecimalField(**CONCENTRATION)
    max_days_in_pump = models.PositiveSmallIntegerField(default=180)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "concentration_mcg_per_ml"]
        constraints = [
            models.UniqueConstraint(fields=["name", "concentration_mcg_per_ml"], name="drug_product_unique"),
            models.CheckConstraint(
                condition=Q(concentration_mcg_per_ml__gt=0), name="drug_product_concentration_positive"
            ),
            models.CheckConstraint(condition=Q(max_days_in_pump__gt=0), name="drug_product_stability_positive"),
        ]

    def __str__(self):
        return f"{self.name} {self.concentration_mcg_per_ml.normalize():f} mcg/mL"


class PatientQuerySet(models.QuerySet):
    def for_user(self, user):
        return scope(self, user, "clinic")

    def active(self):
        return self.filter(status=Patient.Status.ACTIVE)


class Patient(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        TRANSFERRED = "transferred", "Transferred"
        DECEASED = "deceased", "Deceased"

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=40)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    phone = models.CharField(max_length=40, blank=True)
    contact_notes = models.TextField(**NOTE, help_text="Carer, alternative contacts.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    # The last status change (PatientStatusChange keeps them all, with who recorded them).
    status_reason = models.CharField(max_length=255, blank=True)
    status_changed_on = models.DateField(null=True, blank=True)
    transferred_to = models.CharField("receiving clinic", max_length=255, blank=True)
    accepted_first_refill_on = models.DateField("first refill the receiving clinic accepted", null=True, blank=True)

    # Withdrawal-risk flags (Gablofen label): each widens the refill margin.
    sci_at_or_above_t6 = models.BooleanField("spinal cord injury at or above T6", default=False)
    communication_difficulty = models.BooleanField(default=False)
    prior_withdrawal = models.BooleanField("history of withdrawal", default=False)
    extra_margin_days = models.PositiveSmallIntegerField(
        default=0, help_text="Extra days of margin for this patient (travel, distance)."
    )
    # Other risk notes shown to staff (no effect on the margin).
    renal_impairment = models.BooleanField(default=False)
    cns_depressants = models.BooleanField("takes CNS depressants", default=False)
    pregnancy_or_breastfeeding = models.BooleanField(default=False)
    risk_notes = models.TextField(**NOTE)

    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["family_name", "given_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "mrn"], name="patient_mrn_unique_per_clinic"),
            models.CheckConstraint(
                condition=Q(status__in=["active", "transferred", "deceased"]), name="patient_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.family_name}, {self.given_name} ({self.mrn})"

    @property
    def access_clinic_id(self) -> int:
        return self.clinic_id

    @property
    def has_withdrawal_risk(self) -> bool:
        return self.sci_at_or_above_t6 or self.communication_difficulty or self.prior_withdrawal


class PumpQuerySet(models.QuerySet):
    def for_user(self, user):
        return scope(self, user, "patient__clinic")

    def in_service(self):
        """Implanted pumps of active patients: the ones the clinic must keep filled."""
        return self.filter(status=Pump.Status.ACTIVE, patient__status=Patient.Status.ACTIVE)


class Pump(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Implanted"
        EXPLANTED = "explanted", "Explanted"

    class ExplantReason(models.TextChoices):
        REPLACEMENT = "replacement", "Replacement"
        INFECTION = "infection", "Infection"
        NOT_NEEDED = "not_needed", "No longer needed"
        DEATH = "death", "Death"
        OTHER = "other", "Other"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="pumps")
    pump_model = models.ForeignKey(PumpModel, on_delete=models.PROTECT, related_name="pumps")
    serial_number = models.CharField(max_length=60)
    implanted_on = models.DateField()
    explanted_on = models.DateField(null=True, blank=True)
    assigned_nurse = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="assigned_pumps"
    )
    lra_ml = models.DecimalField("low-reservoir alarm threshold (mL)", **VOLUME)
    eri_on = models.DateField("elective replacement indicator date", null=True, blank=True)
    flow_rate_ml_per_day = models.DecimalField(
        "flow rate (mL/day)",
        **RATE,
        null=True,
        blank=True,
        help_text="Constant-flow devices only: measured at implant.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    explant_reason = models.CharField(max_length=20, choices=ExplantReason.choices, blank=True)
    explant_notes = models.TextField(**NOTE)
    replaces = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaced_by",
        help_text="The explanted pump this one replaced.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    objects = PumpQuerySet.as_manager()

    class Meta:
        ordering = ["patient__family_name", "patient__given_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["pump_model", "serial_number"], name="pump_serial_unique_per_model"),
            models.CheckConstraint(condition=Q(lra_ml__gte=0), name="pump_lra_non_negative"),
            models.CheckConstraint(
                condition=Q(flow_rate_ml_per_day__isnull=True) | Q(flow_rate_ml_per_day__gt=0),
                name="pump_flow_rate_positive",
            ),
            models.CheckConstraint(
                condition=Q(explanted_on__isnull=True) | Q(explanted_on__gte=F("implanted_on")),
                name="pump_explant_after_implant",
            ),
            models.CheckConstraint(
                condition=Q(status="active", explanted_on__isnull=True)
                | Q(status="explanted", explanted_on__isnull=False),
                name="pump_status_matches_explant",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "patient"]),
            models.Index(fields=["eri_on"], condition=Q(eri_on__isnull=False), name="pump_eri_on"),
        ]

    def __str__(self):
        return f"{self.pump_model} #{self.serial_number}"

    @property
    def access_clinic_id(self) -> int:
        return self.patient.clinic_id

    @property
    def reference(self) -> str:
        """A reference that identifies the pump to staff without naming the patient."""
        return f"P-{self.pk:05d}"

    @property
    def end_of_service_on(self):
        """ERI date + the model's days to end of service; None without either."""
        return self.pump_model.end_of_service_on(self.eri_on)


class PumpProjection(models.Model):
    """The pump's depletion projection, derived and unaudited (recomputed with every write that
    changes it). Status is not stored: it follows from these instants and ``now``."""

    pump = models.OneToOneField(Pump, on_delete=models.CASCADE, primary_key=True, related_name="projection")
    computed_at = models.DateTimeField()
    filled_at = models.DateTimeField()
    reservoir_at_fill_ml = models.DecimalField(**VOLUME)
    rate_ml_per_day = models.DecimalField(**RATE)
    conservative_factor = models.DecimalField(max_digits=6, decimal_places=4)
    lra_at = models.DateTimeField(null=True, blank=True)
    empty_at = models.DateTimeField(null=True, blank=True)
    conservative_lra_at = models.DateTimeField(null=True, blank=True)
    drug_expires_at = models.DateTimeField()
    # The due date after it moved to the clinic's last open day on or before the unmoved one.
    refill_due_on = models.DateField()
    unmoved_refill_due_on = models.DateField()
    delivery_ratio = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    # Status thresholds as instants, so SQL can derive the status with plain comparisons.
    critical_from = models.DateTimeField()
    overdue_from = models.DateTimeField()
    due_soon_from = models.DateTimeField()
    is_stopped = models.BooleanField(default=False)
    end_of_service_on = models.DateField(null=True, blank=True)
    # The fill's program segments [[start ISO, rate mL/day], …], so the volume at any moment can
    # be computed from this row alone (lists show "reservoir now" without a query per pump).
    segments = models.JSONField(default=list)

    class Meta:
        indexes = [
            models.Index(fields=["critical_from"]),
            models.Index(fields=["overdue_from"]),
            models.Index(fields=["due_soon_from"]),
            models.Index(fields=["refill_due_on"]),
            models.Index(fields=["unmoved_refill_due_on"]),
            models.Index(fields=["delivery_ratio"], condition=Q(delivery_ratio__isnull=False), name="projection_ratio"),
        ]

    def __str__(self):
        return f"Projection of {self.pump_id}"

    def as_fill(self) -> depletion.Fill:
        return depletion.Fill(
            filled_at=self.filled_at,
            volume_ml=self.reservoir_at_fill_ml,
            segments=tuple(
                depletion.Segment(start=datetime.fromisoformat(start), rate_ml_per_day=Decimal(rate))
                for start, rate in self.segments
            ),
        )

    @property
    def due_date_moved(self) -> bool:
        return self.unmoved_refill_due_on != self.refill_due_on

    def reservoir_ml_at(self, at) -> Decimal:
        """Estimated volume at ``at`` (nominal rates, never below zero)."""
        return depletion.volume_at(self.as_fill(), at)

    def status_at(self, now) -> str:
        # The one definition of status lives in the projection core; this row carries its inputs.
        return depletion.status_at(self, now)


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
    # the refill is recorded and never changed by an amendment, so the reports (reports/figures.py)
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


class CaseloadImport(models.Model):
    """One committed caseload import (DESIGN.md flow 8), listed in the clinic's audit report. The
    rows it created carry their own history, recorded as ``imported_by``."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="caseload_imports")
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField()
    filename = models.CharField(max_length=200, blank=True)
    created_count = models.PositiveIntegerField(help_text="Pumps created (with their patients, fills and programs).")
    skipped_count = models.PositiveIntegerField(help_text="Rows already imported with identical values.")

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self):
        return f"Caseload import of {self.imported_at:%Y-%m-%d %H:%M}: {self.created_count} pumps"

    @property
    def access_clinic_id(self) -> int:
        return self.clinic_id


class CaseloadUpload(models.Model):
    """A file checked by a dry run, kept until its admin commits it (then deleted with the import)
    or for a day at most, so the import stores exactly the file the dry run showed."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    uploaded_at = models.DateTimeField()
    filename = models.CharField(max_length=200, blank=True)
    content = models.BinaryField()

    KEEP = timedelta(days=1)

    def __str__(self):
        return f"Caseload file checked at {self.uploaded_at:%Y-%m-%d %H:%M}"
