"""Appointments: booked and shown."""

from __future__ import annotations

from rest_framework import serializers

from clinics.serializers import (
    AwareDateTimeField,
    ClinicZoneMixin,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictInputMixin,
    clinic_staff,
)

from ..models import Appointment
from .common import TEXT, User, pump_zone


class AppointmentCreateSerializer(StrictInputMixin, serializers.Serializer):
    """An appointment to book."""

    kind = serializers.ChoiceField(choices=Appointment.Kind.choices)
    scheduled_for = AwareDateTimeField()
    assigned_to = ScopedPrimaryKeyRelatedField(User, clinic_staff, required=False, allow_null=True)
    notes = serializers.CharField(**TEXT, required=False)
    closed_day_confirmed = StrictBooleanField(
        required=False, help_text="Book on a day the clinic is closed (weekday, public holiday, closure)."
    )


class AppointmentSerializer(ClinicZoneMixin, serializers.Serializer):
    """An appointment and its status."""

    id = serializers.IntegerField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    kind = serializers.ChoiceField(choices=Appointment.Kind.choices, read_only=True)
    scheduled_for = AwareDateTimeField(read_only=True)
    assigned_to = serializers.IntegerField(source="assigned_to_id", read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=Appointment.Status.choices, read_only=True)
    status_changed_at = AwareDateTimeField(read_only=True, allow_null=True)
    notes = serializers.CharField(read_only=True)

    def clinic_zone(self, instance):
        return pump_zone(instance.pump)


class ScheduledAppointmentSerializer(AppointmentSerializer):
    """A new appointment with the service's warnings (a refill booked after the due date, …)."""

    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)
