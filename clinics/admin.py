from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .access import log_access, log_list_access
from .models import AccessLog, Clinic, Membership


class AccessLoggedAdmin:
    """A Django-admin page of patient data writes the access log as every other read does
    (DESIGN.md "AccessLog"; superusers read every clinic's records here): one record's change
    form, change history or historical version — a row naming its patient, in its clinic — and
    each changelist page — one row per clinic whose records it listed (``log_list_access``).

    Mixed in before the ModelAdmin class; ``patient_path`` leads from the model to its patient
    ("" for Patient itself), ``clinic_path`` to its clinic (for the changelist, in one query)."""

    patient_path = ""
    clinic_path = "clinic"

    def _patient_of(self, obj):
        for name in filter(None, self.patient_path.split("__")):
            obj = getattr(obj, name)
            if obj is None:
                return None  # a clinic-level alert: no patient on the page
        return obj

    def _log_read(self, request, obj, what: str) -> None:
        patient = self._patient_of(obj)
        if patient is not None:
            detail = f"Django admin: {what} of {self.model._meta.verbose_name} {obj.pk}"
            log_access(request.user, AccessLog.Action.VIEW, patient, detail=detail)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            self._log_read(request, obj, "change form")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def render_history_view(self, request, template, context, **kwargs):
        # simple_history's history list ("object") and one historical version ("original").
        obj = context.get("original") or context.get("object")
        if obj is not None:
            self._log_read(request, obj, "historical version" if "original" in context else "change history")
        return super().render_history_view(request, template, context, **kwargs)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            pks = [obj.pk for obj in changelist.result_list]
            clinic_ids = self.model._default_manager.filter(pk__in=pks).values_list(self.clinic_path, flat=True)
            log_list_access(
                request.user,
                AccessLog.Action.VIEW,
                clinic_ids,
                detail=f"Django admin: {self.model._meta.verbose_name_plural} list, {len(pks)} row(s)",
            )
        return response


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Clinic)
class ClinicAdmin(SimpleHistoryAdmin):
    list_display = ["name", "timezone", "phone", "refill_margin_days", "reminder_days"]
    search_fields = ["name"]
    inlines = [MembershipInline]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Membership)
class MembershipAdmin(SimpleHistoryAdmin):
    list_display = ["user", "clinic", "role", "is_active"]
    list_filter = ["clinic", "role", "is_active"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AccessLog)
class AccessLogAdmin(admin.ModelAdmin):
    list_display = ["at", "user", "clinic", "action", "content_type", "object_id", "detail"]
    list_filter = ["action", "clinic"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
