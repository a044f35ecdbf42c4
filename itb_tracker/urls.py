from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import health


def superuser_only(request):
    # The Django admin is for superusers (catalogues, configuration); clinic admins use in-app pages.
    return request.user.is_active and request.user.is_superuser


admin.site.has_permission = superuser_only
admin.site.site_header = "ITB Tracker administration"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("itb_tracker.api_urls")),
    path("clinic/", include("clinic_admin.urls")),
    path("", include("alerts.urls")),
    path("", include("patients.urls")),
]
