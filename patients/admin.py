"""Django admin: catalogues are edited here; clinical records are read-only (their writes go
through the patients/services package so projections, alerts and history stay right)."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from clinics.admin import AccessLoggedAdmin

from .models import Appointment, DrugProduct, Patient, Program, Pump, PumpEvent, PumpModel, PumpProjection, RefillVisit


class NoDeleteHistoryAdmin(SimpleHistoryAdmin):
    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyClinicalAdmin(AccessLoggedAdmin, NoDeleteHistoryAdmin):
    """A clinical record: read-only here, and every read of it is access-logged. Most hang off a pump."""

    patient_path = "pump__patient"
    clinic_path = "pump__patient__clinic"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PumpModel)
class PumpModelAdmin(NoDeleteHistoryAdmin):
    list_display = ["manufacturer", "name", "reservoir_ml", "default_lra_ml", "kind", "is_active"]
    list_filter = ["manufacturer", "kind", "is_active"]


@admin.register(DrugProduct)
class DrugProductAdmin(NoDeleteHistoryAdmin):
    list_display = ["name", "concentration_mcg_per_ml", "max_days_in_pump", "is_active"]


@admin.register(Patient)
class PatientAdmin(ReadOnlyClinicalAdmin):
    patient_path = ""
    clinic_path = "clinic"
    list_display = ["mrn", "family_name", "given_name", "clinic", "status"]
    list_filter = ["clinic", "status"]
    search_fields = ["mrn", "family_name"]


@admin.register(Pump)
class PumpAdmin(ReadOnlyClinicalAdmin):
    patient_path = "patient"
    clinic_path = "patient__clinic"
    list_display = ["serial_number", "pump_model", "patient", "status", "implanted_on"]
    list_filter = ["status", "pump_model"]


@admin.register(Program)
class ProgramAdmin(ReadOnlyClinicalAdmin):
    list_display = ["pump", "effective_at", "daily_dose_mcg", "concentration_mcg_per_ml"]


@admin.register(RefillVisit)
class RefillVisitAdmin(ReadOnlyClinicalAdmin):
    list_display = ["pump", "performed_at", "volume_added_ml", "aspirated_ml", "discrepancy"]
    list_filter = ["discrepancy"]


@admin.register(Appointment)
class AppointmentAdmin(ReadOnlyClinicalAdmin):
    list_display = ["pump", "kind", "scheduled_for", "status"]


@admin.register(PumpEvent)
class PumpEventAdmin(ReadOnlyClinicalAdmin):
    list_display = ["pump", "kind", "occurred_at"]


@admin.register(PumpProjection)
class PumpProjectionAdmin(AccessLoggedAdmin, admin.ModelAdmin):
    patient_path = "pump__patient"
    clinic_path = "pump__patient__clinic"
    list_display = ["pump", "refill_due_on", "conservative_lra_at", "drug_expires_at", "computed_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
