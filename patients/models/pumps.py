"""Implanted pumps and their derived depletion projection."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from clinics.access import scope

from .. import depletion
from .catalogue import PumpModel
from .common import NOTE, RATE, VOLUME
from .patients import Patient


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
