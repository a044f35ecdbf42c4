"""REST API v1 for the pump catalogue, patients, pumps and their care records.

Each write view: find the object in the user's scope (404), check the role table (403), parse
the body (400 per field), call the one service function (its refusals: 400 per field).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from clinics.access import log_access, log_list_access, scope
from clinics.api import ApiView, as_api_error, require, require_superuser
from clinics.models import AccessLog

from . import services
from .models import Appointment, Patient, Program, Pump, PumpModel, PumpProjection, RefillVisit
from .serializers import (
    AppointmentCreateSerializer,
    AppointmentSerializer,
    HandoverSummarySerializer,
    PatientSerializer,
    PatientUpdateSerializer,
    ProgramCreateSerializer,
    ProgramSerializer,
    ProjectionSerializer,
    PumpEventCreateSerializer,
    PumpEventSerializer,
    PumpExplantSerializer,
    PumpImplantSerializer,
    PumpModelSerializer,
    PumpReplaceSerializer,
    PumpSerializer,
    PumpUpdateSerializer,
    RefillAmendSerializer,
    RefillCreateSerializer,
    RefillVisitSerializer,
    ScheduledAppointmentSerializer,
)

CREATED = status.HTTP_201_CREATED


class PatientsApiView(ApiView):
    def get_serializer_context(self):
        # One "now" per request: every projection in a response is judged at the same instant.
        return {**super().get_serializer_context(), "now": timezone.now()}


def _pumps(user):
    """The user's pumps with everything a pump's representation reads, in one query."""
    return (
        Pump.objects.for_user(user)
        .select_related("patient__clinic", "projection", "pump_model")
        .order_by("patient__family_name", "patient__given_name", "id")
    )


class PumpActionView(PatientsApiView):
    """A write on one pump of the user's clinics (``pk`` in the URL) needing ``permission``."""

    permission = "patients.record_care"

    def get_pump(self) -> Pump:
        """The pump in the user's scope (404), with the permission checked (403)."""
        pump = get_object_or_404(
            Pump.objects.for_user(self.request.user).select_related("patient__clinic", "pump_model"),
            pk=self.kwargs["pk"],
        )
        require(self.request.user, self.permission, pump)
        return pump

    def pump_context(self, pump: Pump) -> dict:
        # Staff named in the body (ordered_by, assigned_to, …) are looked up in the pump's clinic.
        return {"clinic_id": pump.patient.clinic_id}


# --- catalogue -----------------------------------------------------------------------------------


class PumpModelListView(PatientsApiView):
    """The pump-model catalogue; a superuser may add to it."""

    serializer_class = PumpModelSerializer

    def get_queryset(self):
        return PumpModel.objects.all()

    @extend_schema(operation_id="v1_pump_models_list", responses={200: PumpModelSerializer(many=True)})
    def get(self, request):
        """The pump-model catalogue."""
        return Response(self.serializer(PumpModelSerializer, self.get_queryset(), many=True).data)

    def post(self, request):
        """Add a pump model (superusers only)."""
        require_superuser(request.user)
        pump_model = services.create_pump_model(actor=request.user, **self.valid(PumpModelSerializer))
        return Response(self.serializer(PumpModelSerializer, pump_model).data, status=CREATED)


# --- patients ---------------------------------------------------------------------------------------


class PatientListView(PatientsApiView):
    """Patients of the user's clinics; care staff register new ones."""

    serializer_class = PatientSerializer

    def get_queryset(self):
        return Patient.objects.for_user(self.request.user).prefetch_related(services.PENDING_STATUS_PREFETCH)

    @extend_schema(operation_id="v1_patients_list", responses={200: PatientSerializer(many=True)})
    def get(self, request):
        """Patients of the user's clinics (the read is written to the access log: one row per clinic)."""
        patients = list(self.get_queryset())
        log_list_access(
            request.user,
            AccessLog.Action.API,
            (patient.clinic_id for patient in patients),
            detail=f"patient list: {len(patients)} patient(s)",
        )
        return Response(self.serializer(PatientSerializer, patients, many=True).data)

    def post(self, request):
        """Register a patient (staff of that clinic, clinic admins included)."""
        require(request.user, "patients.register_patient")
        values = self.valid(PatientSerializer)
        clinic = values.pop("clinic")
        require(request.user, "patients.register_patient", clinic)
        patient = services.create_patient(clinic=clinic, actor=request.user, **values)
        return Response(self.serializer(PatientSerializer, patient).data, status=CREATED)


class PatientDetailView(PatientsApiView):
    """One patient; every read is written to the access log."""

    serializer_class = PatientSerializer

    def get(self, request, pk):
        patient = get_object_or_404(Patient.objects.for_user(request.user), pk=pk)
        log_access(request.user, AccessLog.Action.API, patient)
        return Response(self.serializer(PatientSerializer, patient).data)

    @extend_schema(
        request=PatientUpdateSerializer,
        responses={200: PatientSerializer},
        examples=[
            OpenApiExample("Set a withdrawal-risk flag", {"sci_at_or_above_t6": True}, request_only=True),
            OpenApiExample(
                "Transfer from a date",
                {
                    "status": "transferred",
                    "status_reason": "Moved to another state",
                    "status_changed_on": "2026-05-01",
                    "transferred_to": "Receiving clinic",
                },
                request_only=True,
            ),
        ],
    )
    def patch(self, request, pk):
        """Edit the patient: demographics, contacts, risk flags and extra days (the due dates
        follow at once), or the status with a reason and a date (DESIGN.md flow 7)."""
        patient = get_object_or_404(Patient.objects.for_user(request.user).select_related("clinic"), pk=pk)
        require(request.user, "patients.register_patient", patient)
        values = self.valid(PatientUpdateSerializer, instance=patient, partial=True)
        patient = services.update_patient(patient=patient, actor=request.user, **values)
        return Response(self.serializer(PatientSerializer, Patient.objects.get(pk=patient.pk)).data)


def _nest_fill_errors(exc: DjangoValidationError):
    """A service refusal with the fill's fields under ``fill``, as the body nests them."""
    api_error = as_api_error(exc)
    detail = dict(api_error.detail)
    fill = {key: detail.pop(key) for key in list(detail) if key in services.FILL_FIELDS}
    if fill:
        detail["fill"] = fill
    api_error.detail = detail
    return api_error


class PumpImplantView(PatientsApiView):
    """Implant a pump with its first fill and initial program, in one transaction."""

    serializer_class = PumpImplantSerializer

    @extend_schema(
        request=PumpImplantSerializer,
        responses={201: PumpSerializer},
        examples=[
            OpenApiExample(
                "SynchroMed II 40 mL filled with 40 mL of 2000 mcg/mL at 150 mcg/day",
                {
                    "pump_model": 2,
                    "serial_number": "NEW12345",
                    "implanted_on": "2026-01-05",
                    "fill": {
                        "performed_at": "2026-01-05T09:00:00-07:00",
                        "volume_added_ml": 40,
                        "concentration_mcg_per_ml": 2000,
                        "daily_dose_mcg": 150,
                    },
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        patient = get_object_or_404(Patient.objects.for_user(request.user).select_related("clinic"), pk=pk)
        require(request.user, "patients.manage_pump", patient)
        values = self.valid(PumpImplantSerializer, context={"clinic_id": patient.clinic_id})
        try:
            pump = services.implant_pump(patient=patient, actor=request.user, **values)
        except DjangoValidationError as exc:
            raise _nest_fill_errors(exc) from None
        return Response(self.serializer(PumpSerializer, _pumps(request.user).get(pk=pump.pk)).data, status=CREATED)


# --- pumps ----------------------------------------------------------------------------------------------


class PumpListView(PatientsApiView):
    """Pumps of the user's clinics, each with its projection; care staff register new ones."""

    serializer_class = PumpSerializer

    def get_queryset(self):
        return _pumps(self.request.user)

    @extend_schema(operation_id="v1_pumps_list", responses={200: PumpSerializer(many=True)})
    def get(self, request):
        """Pumps of the user's clinics, each with its projection judged now."""
        return Response(self.serializer(PumpSerializer, self.get_queryset(), many=True).data)

    def post(self, request):
        """Register a pump (care staff of the patient's clinic); the alarm threshold defaults to the model's."""
        require(request.user, "patients.manage_pump")
        values = self.valid(PumpSerializer)
        patient, pump_model = values.pop("patient"), values.pop("pump_model")
        require(request.user, "patients.manage_pump", patient)
        pump = services.create_pump(patient=patient, pump_model=pump_model, actor=request.user, **values)
        return Response(self.serializer(PumpSerializer, _pumps(request.user).get(pk=pump.pk)).data, status=CREATED)


class PumpDetailView(PumpActionView):
    """One pump with its projection; PATCH changes its settings or records its explant."""

    serializer_class = PumpSerializer
    permission = "patients.manage_pump"

    def get(self, request, pk):
        """One pump with its projection judged now."""
        pump = get_object_or_404(_pumps(request.user), pk=pk)
        return Response(self.serializer(PumpSerializer, pump).data)

    @extend_schema(
        request=PumpUpdateSerializer,
        responses={200: PumpSerializer},
        examples=[OpenApiExample("Raise the alarm threshold", {"lra_ml": 4}, request_only=True)],
    )
    def patch(self, request, pk):
        """Change the pump's settings (alarm threshold, ERI date, assigned nurse, flow rate, serial
        number) or record its explant."""
        pump = self.get_pump()
        values = self.valid(PumpUpdateSerializer, instance=pump, partial=True, context=self.pump_context(pump))
        services.update_pump(pump=pump, actor=request.user, **values)
        return Response(self.serializer(PumpSerializer, _pumps(request.user).get(pk=pump.pk)).data)


class PumpExplantView(PumpActionView):
    """Explant the pump: it leaves the worklist and the scan, its scanned alerts resolve."""

    serializer_class = PumpExplantSerializer
    permission = "patients.manage_pump"

    @extend_schema(
        request=PumpExplantSerializer,
        responses={200: PumpSerializer},
        examples=[
            OpenApiExample(
                "Explant for infection", {"explanted_on": "2026-03-01", "reason": "infection"}, request_only=True
            )
        ],
    )
    def post(self, request, pk):
        pump = self.get_pump()
        values = self.valid(PumpExplantSerializer)
        services.explant_pump(pump=pump, actor=request.user, **values)
        return Response(self.serializer(PumpSerializer, _pumps(request.user).get(pk=pump.pk)).data)


class PumpReplaceView(PumpActionView):
    """Explant the pump and implant its successor with the first fill, in one step; the new
    pump's first dose is checked against the old pump's last dose."""

    serializer_class = PumpReplaceSerializer
    permission = "patients.manage_pump"

    @extend_schema(request=PumpReplaceSerializer, responses={201: PumpSerializer})
    def post(self, request, pk):
        pump = self.get_pump()
        values = self.valid(PumpReplaceSerializer, context=self.pump_context(pump))
        try:
            new = services.replace_pump(pump=pump, actor=request.user, **values)
        except DjangoValidationError as exc:
            raise _nest_fill_errors(exc) from None
        return Response(self.serializer(PumpSerializer, _pumps(request.user).get(pk=new.pk)).data, status=CREATED)


class ProjectionView(PatientsApiView):
    """The pump's projection judged now; ``null`` for a pump never filled (or explanted)."""

    serializer_class = ProjectionSerializer

    @extend_schema(
        responses={
            200: OpenApiResponse(
                {"allOf": [{"$ref": "#/components/schemas/Projection"}], "nullable": True},
                description="The projection, or null for a pump never filled (or explanted).",
            )
        }
    )
    def get(self, request, pk):
        pump = get_object_or_404(Pump.objects.for_user(request.user), pk=pk)
        projection = PumpProjection.objects.select_related("pump__patient__clinic").filter(pump=pump).first()
        if projection is None:
            return Response(None)
        return Response(self.serializer(ProjectionSerializer, projection).data)


class HandoverSummaryView(PumpActionView):
    """The handover summary a transfer sends the receiving clinic (the printable page's content)."""

    serializer_class = HandoverSummarySerializer
    permission = "patients.view_record"  # a read: every member of the pump's clinic, as the page

    @extend_schema(
        responses={
            200: HandoverSummarySerializer,
            404: OpenApiResponse(description="No such pump in the user's clinics."),
        }
    )
    def get(self, request, pk):
        """The pump's handover summary: patient, pump, drug and concentration, current program,
        last refill, projected alarm and due dates, times in the sending clinic's zone (the read
        is written to the access log)."""
        pump = self.get_pump()
        log_access(request.user, AccessLog.Action.API, pump.patient, detail=f"handover summary {pump.reference}")
        summary = services.handover_summary(pump, now=self.get_serializer_context()["now"])
        return Response(self.serializer(HandoverSummarySerializer, summary).data)


# --- care records ------------------------------------------------------------------------------------------


class RefillCreateView(PumpActionView):
    """Record a refill: the visit, the program it starts and the new projection, or a refusal."""

    serializer_class = RefillCreateSerializer

    @extend_schema(
        request=RefillCreateSerializer,
        responses={201: RefillVisitSerializer},
        examples=[
            OpenApiExample(
                "Refill with 2000 mcg/mL at 600 mcg/day",
                {
                    "performed_at": "2026-01-05T09:00:00-07:00",
                    "aspirated_ml": 0,
                    "volume_added_ml": 40,
                    "concentration_mcg_per_ml": 2000,
                    "daily_dose_mcg": 600,
                    "drug_lot": "A1234",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        pump = self.get_pump()
        values = self.valid(RefillCreateSerializer, context=self.pump_context(pump))
        refill = services.record_refill(pump=pump, actor=request.user, **values)
        return Response(self.serializer(RefillVisitSerializer, refill).data, status=CREATED)


class RefillAmendView(PatientsApiView):
    """Amend a refill with a reason; the original stays in the history."""

    serializer_class = RefillAmendSerializer

    @extend_schema(
        request=RefillAmendSerializer,
        responses={200: RefillVisitSerializer},
        examples=[
            OpenApiExample(
                "Correct a mistyped volume",
                {"volume_added_ml": 38, "amend_reason": "Typed 40 for 38 mL"},
                request_only=True,
            )
        ],
    )
    def patch(self, request, pk):
        queryset = scope(
            RefillVisit.objects.select_related("pump__patient__clinic"), request.user, "pump__patient__clinic"
        )
        refill = get_object_or_404(queryset, pk=pk)
        require(request.user, "patients.record_care", refill)
        values = self.valid(RefillAmendSerializer, context={"clinic_id": refill.pump.patient.clinic_id})
        amend_reason = values.pop("amend_reason")
        refill = services.amend_refill(refill=refill, actor=request.user, amend_reason=amend_reason, **values)
        return Response(self.serializer(RefillVisitSerializer, refill).data)


class ProgramCreateView(PumpActionView):
    """Reprogram the pump (the concentration stays the last fill's); a nurse names the physician."""

    serializer_class = ProgramCreateSerializer
    permission = "patients.change_program"

    @extend_schema(
        request=ProgramCreateSerializer,
        responses={201: ProgramSerializer},
        examples=[
            OpenApiExample(
                "Lower the dose by 10 %",
                {"effective_at": "2026-02-01T09:00:00-07:00", "daily_dose_mcg": 540},
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        pump = self.get_pump()
        values = self.valid(ProgramCreateSerializer, context=self.pump_context(pump))
        program = services.change_program(pump=pump, actor=request.user, **values)
        return Response(self.serializer(ProgramSerializer, program).data, status=CREATED)


class ProgramCountersignView(PatientsApiView):
    """A physician countersigns a nurse-entered dose order (the ordering physician or another
    physician of the clinic); the order's "not countersigned" alert resolves."""

    serializer_class = ProgramSerializer

    @extend_schema(
        request=None,
        responses={
            200: ProgramSerializer,
            400: OpenApiResponse(description="Already countersigned, or nothing to countersign."),
            403: OpenApiResponse(description="Not a physician of the pump's clinic."),
        },
    )
    def post(self, request, pk):
        queryset = scope(Program.objects.select_related("pump__patient__clinic"), request.user, "pump__patient__clinic")
        program = get_object_or_404(queryset, pk=pk)
        require(request.user, "patients.countersign_order", program)
        program = services.countersign_program(program=program, actor=request.user)
        return Response(self.serializer(ProgramSerializer, program).data)


class AppointmentCreateView(PumpActionView):
    """Book an appointment; the answer carries the service's warnings."""

    serializer_class = AppointmentCreateSerializer

    @extend_schema(
        request=AppointmentCreateSerializer,
        responses={201: ScheduledAppointmentSerializer},
        examples=[
            OpenApiExample(
                "Book the next refill",
                {"kind": "refill", "scheduled_for": "2026-04-22T10:30:00-07:00"},
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        pump = self.get_pump()
        values = self.valid(AppointmentCreateSerializer, context=self.pump_context(pump))
        appointment, warnings = services.schedule_appointment(pump=pump, actor=request.user, **values)
        appointment.warnings = warnings
        return Response(self.serializer(ScheduledAppointmentSerializer, appointment).data, status=CREATED)


class AppointmentStatusView(PatientsApiView):
    """Mark a scheduled appointment completed, missed or cancelled."""

    TRANSITIONS = {
        "complete": services.complete_appointment,
        "missed": services.mark_appointment_missed,
        "cancel": services.cancel_appointment,
    }
    serializer_class = AppointmentSerializer
    transition = "complete"

    @extend_schema(request=None, responses={200: AppointmentSerializer})
    def post(self, request, pk):
        appointment = get_object_or_404(
            Appointment.objects.for_user(request.user).select_related("pump__patient__clinic"), pk=pk
        )
        require(request.user, "patients.record_care", appointment)
        change = self.TRANSITIONS[self.transition]
        appointment = change(appointment=appointment, actor=request.user)
        return Response(self.serializer(AppointmentSerializer, appointment).data)


class PumpEventCreateView(PumpActionView):
    """Record an alarm heard or a patient's call; emergencies alert at once."""

    serializer_class = PumpEventCreateSerializer

    @extend_schema(
        request=PumpEventCreateSerializer,
        responses={201: PumpEventSerializer},
        examples=[
            OpenApiExample(
                "Carer reports itching and fever",
                {
                    "kind": "withdrawal_symptoms",
                    "occurred_at": "2026-02-01T08:15:00-07:00",
                    "symptoms": ["itching", "high_fever"],
                    "notes": "Itching since last night.",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        pump = self.get_pump()
        values = self.valid(PumpEventCreateSerializer)
        event = services.record_pump_event(pump=pump, actor=request.user, **values)
        return Response(self.serializer(PumpEventSerializer, event).data, status=CREATED)
