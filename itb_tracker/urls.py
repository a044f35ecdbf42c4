from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.views import password_reset, signin

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
    path("login/", signin.SignInView.as_view(), name="login"),
    path("login/code/", signin.SignInCodeView.as_view(), name="login-code"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", password_reset.ResetRequestView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", password_reset.ResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("account/", include("accounts.urls")),
    # The admin signs in through the two-step sign-in, never a password-only form of its own.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("api/", include("itb_tracker.api_urls")),
    path("clinic/", include("clinic_admin.urls")),
    path("reports/", include("reports.urls")),
    path("", include("alerts.urls")),
    path("", include("patients.urls")),
]
