"""REST API v1 for alerts: the list of the user's clinics' alerts, acknowledging and resolving one."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from clinics.api import ApiView, require
from clinics.serializers import AwareDateTimeField, ClinicZoneMixin

from . import services
from .models import Alert


class AlertSerializer(ClinicZoneMixin, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    reference = serializers.CharField(read_only=True)
    pump = serializers.IntegerField(source="pump_id", read_only=True)
    refill = serializers.IntegerField(source="refill_id", read_only=True, allow_null=True)
    kind = serializers.CharField(read_only=True)
    severity = serializers.SerializerMethodField()
    status = serializers.CharField(read_only=True)
    raised_at = AwareDateTimeField(read_only=True)
    acknowledged_at = AwareDateTimeField(read_only=True, allow_null=True)
    resolved_at = AwareDateTimeField(read_only=True, allow_null=True)
    resolution = serializers.CharField(read_only=True)

    def clinic_zone(self, instance):
        return instance.clinic.zone

    def get_severity(self, alert) -> str:
        return alert.get_severity_display().lower().replace(" ", "_")


def _alerts(user):
    return Alert.objects.for_user(user).select_related("clinic").order_by("-severity", "-raised_at")


class AlertListView(ApiView):
    serializer_class = AlertSerializer

    @extend_schema(responses=AlertSerializer(many=True))
    def get(self, request):
        alerts = _alerts(request.user)
        status = request.query_params.get("status")
        if status in Alert.Status.values:
            alerts = alerts.filter(status=status)
        return Response(AlertSerializer(alerts, many=True).data)


class AlertAcknowledgeView(ApiView):
    serializer_class = AlertSerializer

    @extend_schema(request=None, responses=AlertSerializer)
    def post(self, request, pk):
        alert = get_object_or_404(_alerts(request.user), pk=pk)
        require(request.user, "alerts.acknowledge", alert)
        alert = services.acknowledge_alert(alert=alert, actor=request.user)
        return Response(AlertSerializer(alert).data)


class ResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, help_text="How it was resolved (a review's conclusion).")


class AlertResolveView(ApiView):
    """A physician review (discrepancy, drift, refill after empty) is resolved by a physician only:
    403 for the other roles, who may acknowledge it."""

    serializer_class = AlertSerializer

    @extend_schema(request=ResolveSerializer, responses=AlertSerializer)
    def post(self, request, pk):
        alert = get_object_or_404(_alerts(request.user), pk=pk)
        require(request.user, alert.resolve_permission, alert)
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = services.resolve_alert(alert=alert, actor=request.user, reason=body.validated_data["reason"])
        return Response(AlertSerializer(alert).data)
