"""Clinic administration and audit pages, under /clinic/ (clinic admins of that clinic, superusers)."""

from django.urls import path

from . import policy_views
from .views import audit, caseload, clinic_settings, closures, rota, staff

urlpatterns = [
    path("", staff.index, name="clinic-admin"),
    path("<int:clinic_id>/", staff.staff_list, name="clinic-staff"),
    path("<int:clinic_id>/staff/new/", staff.staff_add, name="clinic-staff-add"),
    path("<int:clinic_id>/staff/<int:membership_id>/", staff.staff_edit, name="clinic-staff-edit"),
    path("<int:clinic_id>/staff/<int:membership_id>/active/", staff.staff_active, name="clinic-staff-active"),
    path(
        "<int:clinic_id>/staff/<int:membership_id>/two-factor-reset/",
        staff.staff_two_factor_reset,
        name="clinic-staff-two-factor-reset",
    ),
    path("<int:clinic_id>/rota/", rota.rota_page, name="clinic-rota"),
    path("<int:clinic_id>/rota/new/", rota.rotation_edit, name="clinic-rotation-add"),
    path("<int:clinic_id>/rota/<int:rotation_id>/", rota.rotation_edit, name="clinic-rotation-edit"),
    path("<int:clinic_id>/rota/cover/", rota.override_add, name="clinic-rota-override-add"),
    path(
        "<int:clinic_id>/rota/cover/<int:override_id>/remove/",
        rota.override_remove,
        name="clinic-rota-override-remove",
    ),
    path("<int:clinic_id>/settings/", clinic_settings.clinic_settings, name="clinic-settings"),
    path("<int:clinic_id>/closures/", closures.closure_list, name="clinic-closures"),
    path("<int:clinic_id>/closures/<int:closure_id>/", closures.closure_detail, name="clinic-closure"),
    path("<int:clinic_id>/closures/<int:closure_id>/remove/", closures.closure_remove, name="clinic-closure-remove"),
    path("<int:clinic_id>/escalation/", policy_views.policy_list, name="clinic-policies"),
    path(
        "<int:clinic_id>/escalation/defaults/",
        policy_views.policy_restore_defaults,
        name="clinic-policies-defaults",
    ),
    path("<int:clinic_id>/escalation/<int:policy_id>/", policy_views.policy_edit, name="clinic-policy-edit"),
    path("<int:clinic_id>/notifications/", policy_views.notifications, name="clinic-notifications"),
    path(
        "<int:clinic_id>/notifications/webhooks/<int:webhook_id>/active/",
        policy_views.webhook_active,
        name="clinic-webhook-active",
    ),
    path("<int:clinic_id>/import/", caseload.caseload_import, name="clinic-import"),
    path("<int:clinic_id>/import/<int:upload_id>/commit/", caseload.caseload_commit, name="clinic-import-commit"),
    path(
        "<int:clinic_id>/import/template.<slug:fmt>",
        caseload.caseload_template,
        name="clinic-import-template",
    ),
    path("<int:clinic_id>/audit/", audit.refill_report, name="clinic-audit"),
    path("<int:clinic_id>/history/<slug:kind>/<int:pk>/", audit.record_history, name="clinic-history"),
    path("<int:clinic_id>/access-log/", audit.access_log, name="clinic-access-log"),
]
