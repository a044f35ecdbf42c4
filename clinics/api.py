"""REST API v1: the plumbing every endpoint shares, the token endpoint, clinics and staff.

Views only translate: they look objects up through the user's clinic scope (another clinic's
object answers 404), check the role table with ``user.has_perm`` (403), and hand the validated
values to a service function, whose refusals answer 400 with a message per field.
"""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from knox.views import LoginView
from rest_framework import exceptions, generics, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from . import services
from .models import Clinic
from .serializers import (
    ClinicSerializer,
    StaffCreateSerializer,
    StaffMemberSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)


class NullableJSONRenderer(JSONRenderer):
    """JSON, where ``None`` is the document ``null`` (DRF renders it as an empty body)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if data is None and response is not None and response.status_code != status.HTTP_204_NO_CONTENT:
            return b"null"
        return super().render(data, accepted_media_type, renderer_context)


def as_api_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    """A service refusal as DRF's 400: ``{field: [messages]}``."""
    if hasattr(exc, "error_dict"):
        detail = {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
            for field, messages in exc.message_dict.items()
        }
    else:
        detail = {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return exceptions.ValidationError(detail)


def require(user, perm: str, obj=None) -> None:
    """403 unless the role table (clinics/rules.py) grants ``perm`` on ``obj``."""
    if not user.has_perm(perm, obj):
        raise exceptions.PermissionDenied("Your role in this clinic does not allow this.")


def require_superuser(user) -> None:
    if not user.is_superuser:
        raise exceptions.PermissionDenied("Only a superuser may do this.")


class ApiView(generics.GenericAPIView):
    """JSON in, JSON out; service refusals become 400s. Lists are plain arrays."""

    parser_classes = [JSONParser]
    renderer_classes = [NullableJSONRenderer]

    def handle_exception(self, exc):
        if isinstance(exc, DjangoValidationError):
            exc = as_api_error(exc)
        return super().handle_exception(exc)

    def serializer(self, serializer_class, *args, **kwargs):
        context = self.get_serializer_context()
        context.update(kwargs.pop("context", {}))
        return serializer_class(*args, context=context, **kwargs)

    def valid(self, serializer_class, *, context=None, **kwargs):
        """The validated input of ``serializer_class`` (400 on the fields when invalid)."""
        serializer = self.serializer(serializer_class, data=self.request.data, context=context or {}, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# --- token ---------------------------------------------------------------------------------


class TokenThrottle(ScopedRateThrottle):
    """The "token" scope, its rate read when used (so a changed setting takes effect)."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class TokenView(LoginView):
    """Exchange a username and password for an expiring token (stored hashed by knox).

    Goes through ``django.contrib.auth.authenticate`` with the request, so django-axes counts the
    failures and locks the account out like the login page does.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenThrottle]
    throttle_scope = "token"
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request, format=None):
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request=request._request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            # A locked-out account: django-axes' middleware turns this response into its own.
            raise exceptions.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Unable to log in with these credentials."]}
            )
        request.user = user
        return super().post(request, format=format)


# --- clinics and staff -------------------------------------------------------------------------


class ClinicListView(ApiView):
    """The user's clinics; a superuser may create one."""

    serializer_class = ClinicSerializer

    def get_queryset(self):
        return Clinic.objects.for_user(self.request.user)

    @extend_schema(operation_id="v1_clinics_list", responses={200: ClinicSerializer(many=True)})
    def get(self, request):
        """The user's clinics (every clinic for a superuser)."""
        return Response(self.serializer(ClinicSerializer, self.get_queryset(), many=True).data)

    def post(self, request):
        """Create a clinic (superusers only); settings left out take their defaults."""
        require_superuser(request.user)
        values = self.valid(ClinicSerializer)
        clinic = services.create_clinic(actor=request.user, **values)
        return Response(self.serializer(ClinicSerializer, clinic).data, status=status.HTTP_201_CREATED)


class StaffCreateView(ApiView):
    """A new member of staff: a superuser, or that clinic's administrator."""

    serializer_class = StaffCreateSerializer

    @extend_schema(request=StaffCreateSerializer, responses={201: StaffMemberSerializer})
    def post(self, request):
        require(request.user, "clinics.manage_clinic")
        values = self.valid(StaffCreateSerializer)
        require(request.user, "clinics.manage_clinic", values["clinic"])
        membership = services.create_staff(actor=request.user, **values)
        return Response(self.serializer(StaffMemberSerializer, membership).data, status=status.HTTP_201_CREATED)
