from django.urls import path

from . import views
from .views import calendar, patient_records, pump_records

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/new/", patient_records.patient_create, name="patient-create"),
    path("patients/without-pump/", patient_records.patients_without_pump, name="patients-without-pump"),
    path("patients/<int:pk>/", views.patient_detail, name="patient-detail"),
    path("patients/<int:pk>/edit/", patient_records.patient_edit, name="patient-edit"),
    path("patients/<int:pk>/status/", patient_records.patient_status, name="patient-status"),
    path("patients/<int:pk>/implant/", pump_records.pump_implant, name="pump-implant"),
    path("patients/<int:pk>/implant/preview/", pump_records.pump_implant_preview, name="pump-implant-preview"),
    path("pumps/<int:pk>/", views.pump_detail, name="pump-detail"),
    path("pumps/<int:pk>/edit/", pump_records.pump_edit, name="pump-edit"),
    path("pumps/<int:pk>/explant/", pump_records.pump_explant, name="pump-explant"),
    path("pumps/<int:pk>/replace/", pump_records.pump_replace, name="pump-replace"),
    path("pumps/<int:pk>/dose/", pump_records.program_change, name="program-change"),
    path("pumps/<int:pk>/dose/preview/", pump_records.program_preview, name="program-preview"),
    path("programs/<int:pk>/countersign/", pump_records.program_countersign, name="program-countersign"),
    path("pumps/<int:pk>/handover/", patient_records.handover_summary, name="handover-summary"),
    path("pumps/<int:pk>/refill/", views.refill_create, name="refill-create"),
    path("pumps/<int:pk>/refill/preview/", views.refill_preview, name="refill-preview"),
    path("pumps/<int:pk>/appointments/new/", views.appointment_create, name="appointment-create"),
    path("pumps/<int:pk>/event/", views.pump_event, name="pump-event"),
    path("refills/<int:pk>/card/", views.refill_card, name="refill-card"),
    path("refills/<int:pk>/amend/", views.refill_amend, name="refill-amend"),
    path("appointments/<int:pk>/<str:action>/", views.appointment_status, name="appointment-status"),
    path("schedule/", views.schedule_week, name="schedule-week"),
    path("calendar/", calendar.calendar_settings, name="calendar"),
    path("calendar/new/", calendar.calendar_issue, name="calendar-issue"),
    path("calendar/revoke/", calendar.calendar_revoke, name="calendar-revoke"),
    path("calendar/<str:token>.ics", calendar.calendar_feed, name="calendar-feed"),
]
