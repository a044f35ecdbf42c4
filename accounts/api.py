"""The API token endpoint, with the second factor: a user with an authenticator sends its code
(or a recovery code) beside the password; a user who must use one but has none is refused."""

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.settings import api_settings

from clinics.access import log_access
from clinics.api import TokenView as PasswordTokenView
from clinics.models import AccessLog
from clinics.serializers import TokenRequestSerializer, TokenSerializer

from . import services
from .views.signin import where_from


class TokenRequestWithCodeSerializer(TokenRequestSerializer):
    code = serializers.CharField(
        max_length=40,
        required=False,
        help_text="The authenticator app's current code (or a recovery code): required for users "
        "who have set up two-factor sign-in.",
    )


TEMPORARY = "This password was set by a clinic administrator: sign in on the web and choose your own first."


def _refuse(field: str, message: str):
    raise exceptions.ValidationError({field: [message]})


class TokenView(PasswordTokenView):
    @extend_schema(request=TokenRequestWithCodeSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request, format=None):
        serializer = TokenRequestWithCodeSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        django_request = request._request
        user = authenticate(request=django_request, username=values["username"], password=values["password"])
        if user is None:
            # A locked-out account: django-axes' middleware turns this response into its own.
            _refuse(api_settings.NON_FIELD_ERRORS_KEY, "Unable to log in with these credentials.")
        if services.password_is_temporary(user):
            _refuse("password", TEMPORARY)
        factor = "password"
        if services.has_two_factor(user):
            code = values.get("code", "")
            if not code:
                _refuse("code", "This account uses two-factor sign-in: send the authenticator app's current code.")
            device = services.verify_second_factor(user, code)
            if device is None:
                log_access(user, AccessLog.Action.CODE_FAILED, detail=f"API token, {where_from(django_request)}")
                credentials = {settings.AXES_USERNAME_FORM_FIELD: user.get_username()}
                user_login_failed.send(sender=__name__, credentials=credentials, request=django_request)
                _refuse("code", "That code is not right.")
            factor = f"password + {services.describe_factor(device)}"
        elif services.two_factor_required(user):
            _refuse("code", "Two-factor sign-in is required for your account: set it up on the web first.")
        log_access(user, AccessLog.Action.SIGN_IN, detail=f"API token, {factor}, {where_from(django_request)}")
        request.user = user
        return super(PasswordTokenView, self).post(request, format=format)
