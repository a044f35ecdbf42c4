"""Pump events: an alarm heard or a patient's call."""

from __future__ import annotations

from rest_framework import serializers

from clinics.serializers import AwareDateTimeField, ClinicZoneMixin, StrictInputMixin

from .. import services
from ..models import PumpEvent
from .common import TEXT, pump_zone


class PumpEventCreateSerializer(StrictInputMixin, serializers.Serializer):
    """An alarm heard or a patient's call, with the checklist items reported."""

    kind = serializers.ChoiceField(choices=PumpEvent.Kind.choices)
    occurred_at = AwareDateTimeField()
    source = serializers.ChoiceField(choices=PumpEvent.Source.choices, required=False)
    symptoms = serializers.ListField(
        child=serializers.ChoiceField(choices=list(services.SYMPTOMS.items())),
        required=False,
        max_length=len(services.SYMPTOMS),
        help_text="Items of the patient call checklist that were reported.",
    )
    notes = serializers.CharField(**TEXT, required=False)


class PumpEventSerializer(ClinicZoneMixin, serializers.Serializer):
    """A recorded pump event."""

    id = serializers.IntegerField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    kind = serializers.ChoiceField(choices=PumpEvent.Kind.choices, read_only=True)
    occurred_at = AwareDateTimeField(read_only=True)
    source = serializers.ChoiceField(choices=PumpEvent.Source.choices, read_only=True)
    symptoms = serializers.ListField(child=serializers.CharField(), read_only=True)
    notes = serializers.CharField(read_only=True)
    reported_by = serializers.IntegerField(source="reported_by_id", read_only=True, allow_null=True)
    emergency = serializers.SerializerMethodField(
        help_text="A critical alarm, withdrawal or overdose signs: emergency care now, not a booked refill."
    )

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)

    def get_emergency(self, event) -> bool:
        return services.is_emergency(event.kind, event.symptoms)
