from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from clinics.admin import AccessLoggedAdmin

from .models import (
    Alert,
    AlertEvent,
    EscalationLevel,
    EscalationPolicy,
    FailingAddress,
    Heartbeat,
    Notification,
    Webhook,
)


class LevelInline(admin.TabularInline):
    model = EscalationLevel
    extra = 0


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(SimpleHistoryAdmin):
    list_display = ["clinic", "severity", "repeat_count", "realert_minutes"]
    list_filter = ["clinic", "severity"]
    inlines = [LevelInline]


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TimelineInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "kind", "actor", "detail"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(AccessLoggedAdmin, ReadOnly):
    # Its pump's serial and its timeline are the patient's; a clinic-level alert names no patient.
    patient_path = "pump__patient"
    list_display = ["reference", "clinic", "kind", "severity", "status", "raised_at", "next_step_at"]
    list_filter = ["status", "kind", "severity", "clinic"]
    inlines = [TimelineInline]


@admin.register(Notification)
class NotificationAdmin(ReadOnly):
    list_display = ["alert", "channel", "address", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "channel"]


@admin.register(Webhook)
class WebhookAdmin(SimpleHistoryAdmin):
    list_display = ["clinic", "url", "is_active"]
    exclude = ["secret"]


@admin.register(FailingAddress)
class FailingAddressAdmin(ReadOnly):
    list_display = ["clinic", "channel", "address", "last_failed_at", "cleared_at", "last_error"]


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnly):
    list_display = ["name", "last_success_at"]
