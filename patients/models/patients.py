"""Patients, with their withdrawal-risk flags and their status in the clinic's care."""

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from clinics.access import scope
from clinics.models import Clinic

from .common import NOTE


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
