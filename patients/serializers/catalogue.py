"""The pump-model catalogue."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from clinics.serializers import StrictInputMixin

from ..models import PumpModel
from .common import CENT, volume


class PumpModelSerializer(StrictInputMixin, serializers.ModelSerializer):
    """A pump model of the catalogue (CLINICAL.md "Devices")."""

    reservoir_ml = volume(min_value=CENT)
    default_lra_ml = volume(min_value=Decimal("0"), required=False)

    class Meta:
        model = PumpModel
        fields = ["id", "manufacturer", "name", "reservoir_ml", "default_lra_ml"]

    def validate(self, attrs):
        lra = attrs.get("default_lra_ml", PumpModel._meta.get_field("default_lra_ml").default)
        if lra >= attrs["reservoir_ml"]:
            raise serializers.ValidationError({"default_lra_ml": ["The alarm threshold must be below the reservoir."]})
        return attrs
