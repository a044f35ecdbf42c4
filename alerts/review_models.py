"""A physician's conclusion of a review alert (issue #10 item 3): what it was, what was done."""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from patients.models import Appointment, Pump, RefillVisit

NOTE_MAX_CHARS = 2000


class ReviewConclusion(models.Model):
    """One per review alert, written once by a physician (it resolves the alert); never edited."""

    class Outcome(models.TextChoices):
        ENTRY_ERROR = "entry_error", "Measurement or entry error"
        POCKET_FILL = "pocket_fill", "Pocket fill suspected"
        CATHETER = "catheter", "Catheter problem suspected"
        PUMP_FAULT = "pump_fault", "Pump fault suspected"
        CLINICALLY_EXPLAINED = "clinically_explained", "Clinically explained"
        OTHER = "other", "Other"

    class Action(models.TextChoices):
        NONE = "none", "None"
        DOSE_CHANGE = "dose_change", "Dose change"
        DYE_OR_ROTOR_STUDY = "dye_or_rotor_study", "Dye or rotor study"
        SURGICAL_REFERRAL = "surgical_referral", "Surgical referral"
        PUMP_MARGIN = "pump_margin", "Pump-specific margin"

    alert = models.OneToOneField("alerts.Alert", on_delete=models.PROTECT, related_name="conclusion")
    # The timeline entry that carries it (the alert page shows the conclusion there).
    event = models.OneToOneField("alerts.AlertEvent", on_delete=models.PROTECT, related_name="conclusion")
    pump = models.ForeignKey(Pump, on_delete=models.PROTECT, related_name="review_conclusions")
    # The refill reviewed (the audit report lists the conclusion with it); none for delivery drift.
    refill = models.ForeignKey(
        RefillVisit, on_delete=models.PROTECT, null=True, blank=True, related_name="review_conclusions"
    )
    outcome = models.CharField(max_length=30, choices=Outcome.choices)
    action = models.CharField("action taken", max_length=30, choices=Action.choices)
    note = models.TextField(max_length=NOTE_MAX_CHARS, blank=True)
    follow_up_on = models.DateField("follow-up", null=True, blank=True)
    follow_up_appointment = models.ForeignKey(
        Appointment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    concluded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    concluded_at = models.DateTimeField()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-concluded_at", "-id"]

    def __str__(self):
        return f"{self.get_outcome_display()}; action: {self.get_action_display().lower()}"

    @property
    def access_clinic_id(self) -> int:
        return self.alert.clinic_id

    def summary(self) -> str:
        """One line for the alert's resolution, the pump page's history and the audit report."""
        text = f"Review concluded: {self.get_outcome_display()}; action: {self.get_action_display().lower()}"
        if self.follow_up_on:
            text += f"; device check {self.follow_up_on:%Y-%m-%d}"
        return text
