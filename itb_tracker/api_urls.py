"""REST API routes (DESIGN.md "API contract (v1)"), the OpenAPI schema and its docs page."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import api as accounts_api
from alerts import api as alerts_api
from clinics import api as clinics_api
from patients import api as patients_api

v1 = [
    path("alerts/", alerts_api.AlertListView.as_view(), name="api-alerts"),
    path("alerts/<int:pk>/acknowledge/", alerts_api.AlertAcknowledgeView.as_view(), name="api-alert-acknowledge"),
    path("alerts/<int:pk>/resolve/", alerts_api.AlertResolveView.as_view(), name="api-alert-resolve"),
    path("auth/token/", accounts_api.TokenView.as_view(), name="api-token"),
    path("clinics/", clinics_api.ClinicListView.as_view(), name="api-clinics"),
    path("staff/", clinics_api.StaffCreateView.as_view(), name="api-staff"),
    path("pump-models/", patients_api.PumpModelListView.as_view(), name="api-pump-models"),
    path("patients/", patients_api.PatientListView.as_view(), name="api-patients"),
    path("patients/<int:pk>/", patients_api.PatientDetailView.as_view(), name="api-patient"),
    path("patients/<int:pk>/pumps/", patients_api.PumpImplantView.as_view(), name="api-patient-implant"),
    path("pumps/", patients_api.PumpListView.as_view(), name="api-pumps"),
    path("pumps/<int:pk>/", patients_api.PumpDetailView.as_view(), name="api-pump"),
    path("pumps/<int:pk>/explant/", patients_api.PumpExplantView.as_view(), name="api-pump-explant"),
    path("pumps/<int:pk>/replace/", patients_api.PumpReplaceView.as_view(), name="api-pump-replace"),
    path("pumps/<int:pk>/projection/", patients_api.ProjectionView.as_view(), name="api-pump-projection"),
    path("pumps/<int:pk>/handover/", patients_api.HandoverSummaryView.as_view(), name="api-pump-handover"),
    path("pumps/<int:pk>/refills/", patients_api.RefillCreateView.as_view(), name="api-pump-refills"),
    path("pumps/<int:pk>/programs/", patients_api.ProgramCreateView.as_view(), name="api-pump-programs"),
    path("pumps/<int:pk>/appointments/", patients_api.AppointmentCreateView.as_view(), name="api-pump-appointments"),
    path("pumps/<int:pk>/events/", patients_api.PumpEventCreateView.as_view(), name="api-pump-events"),
    path("refills/<int:pk>/", patients_api.RefillAmendView.as_view(), name="api-refill"),
    path(
        "programs/<int:pk>/countersign/", patients_api.ProgramCountersignView.as_view(), name="api-program-countersign"
    ),
    path(
        "appointments/<int:pk>/complete/",
        patients_api.AppointmentStatusView.as_view(transition="complete"),
        name="api-appointment-complete",
    ),
    path(
        "appointments/<int:pk>/missed/",
        patients_api.AppointmentStatusView.as_view(transition="missed"),
        name="api-appointment-missed",
    ),
    path(
        "appointments/<int:pk>/cancel/",
        patients_api.AppointmentStatusView.as_view(transition="cancel"),
        name="api-appointment-cancel",
    ),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The docs page loads its init script from a URL of its own: no inline script under the CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
