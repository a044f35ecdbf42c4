"""The user's own account pages, under /account/."""

from django.urls import path

from .views import security

urlpatterns = [
    path("security/", security.security, name="account-security"),
    path("two-factor/", security.enrol, name="account-enrol"),
    path("two-factor/recovery-codes/", security.recovery_codes, name="account-recovery-codes"),
    path("two-factor/recovery-codes/new/", security.new_recovery_codes, name="account-recovery-codes-new"),
    path("two-factor/off/", security.turn_off_two_factor, name="account-two-factor-off"),
    path("sessions/<int:record_id>/end/", security.end_session, name="account-session-end"),
    path("tokens/<str:token_key>/end/", security.end_token, name="account-token-end"),
    path("password/", security.PasswordChangeView.as_view(), name="account-password"),
    path("password/first/", security.first_password, name="account-password-first"),
]
