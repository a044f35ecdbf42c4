"""The field shapes and helpers every resource's serializers share."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from rest_framework import serializers

from ..models import NOTE_MAX_CHARS, REASON_MAX_CHARS, Patient, Pump, PumpModel

User = get_user_model()

# The models' decimal shapes (patients/models/common.py): more digits or places are refused, not rounded.
VOLUME = {"max_digits": 6, "decimal_places": 2}  # mL
DOSE = {"max_digits": 8, "decimal_places": 2}  # mcg/day
CONCENTRATION = {"max_digits": 8, "decimal_places": 2}  # mcg/mL
RATE = {"max_digits": 8, "decimal_places": 4}  # mL/day
# Free text (patients/models/common.py): notes 2,000 characters, reasons 500; longer is 400 on the field.
TEXT = {"max_length": NOTE_MAX_CHARS, "allow_blank": True}
REASON = {"max_length": REASON_MAX_CHARS, "allow_blank": True}
CENT = Decimal("0.01")


def volume(**kwargs):
    return serializers.DecimalField(**VOLUME, **kwargs)


def dose(**kwargs):
    return serializers.DecimalField(**DOSE, **kwargs)


def concentration(**kwargs):
    return serializers.DecimalField(**CONCENTRATION, **kwargs)


def users_patients(context):
    return Patient.objects.for_user(context["request"].user)


def active_pump_models(context):
    return PumpModel.objects.filter(is_active=True)


def pump_zone(pump: Pump):
    return pump.patient.clinic.zone
