"""The catalogues superusers keep: implantable pump models and intrathecal baclofen products."""

from datetime import timedelta
from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from .common import CONCENTRATION, NOTE, VOLUME


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
