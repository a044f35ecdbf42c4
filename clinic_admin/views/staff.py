"""The clinic administration index and the staff pages: roles, who is on call now, add, deactivate."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.db.models import IntegerField as IntegerFieldType
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import services as account_services
from clinics import services
from clinics.access import forget_roles
from clinics.models import Membership, Role

from ..forms import MembershipForm, StaffAddForm, add_refusal, person
from .common import MANAGE, administered_clinics, clinic_for
from .rota import on_call_summary


def index(request):
    """The clinics the user administers, each with its pages."""
    clinics = list(
        administered_clinics(request.user).annotate(
            staff_count=Count("memberships", filter=Q(memberships__is_active=True), distinct=True),
            failing_count=Count(
                "failing_addresses", filter=Q(failing_addresses__cleared_at__isnull=True), distinct=True
            ),
        )
    )
    if not clinics and not request.user.is_superuser:
        raise PermissionDenied("Only clinic administrators may use the clinic administration pages.")
    return render(request, "clinics/index.html", {"clinics": clinics})


def _members(clinic):
    """The clinic's memberships, active first, with the pumps still assigned to each person."""
    role_order = Case(
        *(When(role=role, then=Value(i)) for i, role in enumerate(Role.values)), output_field=IntegerFieldType()
    )
    return (
        Membership.objects.filter(clinic=clinic)
        .select_related("user")
        .annotate(
            role_order=role_order,
            assigned_pumps=Count(
                "user__assigned_pumps",
                filter=Q(user__assigned_pumps__patient__clinic=F("clinic"), user__assigned_pumps__status="active"),
            ),
        )
        .order_by("-is_active", "role_order", "user__last_name", "user__first_name", "user__username")
    )


def staff_list(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    members = list(_members(clinic))
    on_call = on_call_summary(clinic, timezone.now())
    rotas_of = {}
    for row in on_call:
        if row["member"] is not None:
            rotas_of.setdefault(row["member"].pk, []).append(row["rotation"].name)
    for m in members:
        m.on_call_rotas = rotas_of.get(m.pk, [])
    return render(
        request,
        "clinics/staff_list.html",
        {
            "clinic": clinic,
            "section": "staff",
            "on_call": on_call,
            "active_members": [m for m in members if m.is_active],
            "former_members": [m for m in members if not m.is_active],
        },
    )


def staff_add(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    form = StaffAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                membership = services.create_staff(
                    actor=request.user,
                    clinic=clinic,
                    role=data["role"],
                    username=data["username"],
                    password=data["password"],
                    email=data["email"],
                )
                user = membership.user
                # A password typed here is temporary: the member's first web sign-in changes it.
                account_services.mark_password_temporary(user, actor=request.user)
                if data["first_name"] or data["last_name"]:
                    user.first_name, user.last_name = data["first_name"], data["last_name"]
                    user.save(update_fields=["first_name", "last_name"])
        except ValidationError as refusal:
            add_refusal(form, refusal)
        else:
            messages.success(
                request,
                f"{person(user)} can now log in as {user.username} ({membership.get_role_display()}); "
                "the password you typed is temporary: they choose their own at their first sign-in. "
                "Set their contact details below if needed; put them on a rota from the Rota page.",
            )
            return redirect("clinic-staff-edit", clinic_id=clinic.pk, membership_id=membership.pk)
    return render(request, "clinics/staff_add.html", {"clinic": clinic, "section": "staff", "form": form})


def _membership(clinic, membership_id):
    return get_object_or_404(Membership.objects.select_related("user"), clinic=clinic, pk=membership_id)


def staff_edit(request, clinic_id, membership_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    membership = _membership(clinic, membership_id)
    form = MembershipForm(request.POST or None, instance=Membership.objects.get(pk=membership.pk))
    if request.method == "POST" and form.is_valid():
        if not form.changed_data:
            messages.info(request, "Nothing changed.")
            return redirect("clinic-staff", clinic_id=clinic.pk)
        try:
            services.update_membership(
                membership, request.user, **{name: form.cleaned_data[name] for name in form.changed_data}
            )
        except ValidationError as refusal:
            add_refusal(form, refusal)
        else:
            messages.success(request, f"{person(membership.user)}: changes saved.")
            return _back_to_staff(request, clinic)
    return render(
        request,
        "clinics/staff_edit.html",
        {
            "clinic": clinic,
            "section": "staff",
            "membership": membership,
            "form": form,
            "two_factor_enrolled": account_services.has_two_factor(membership.user),
            "two_factor_required": account_services.two_factor_required(membership.user),
        },
    )


@require_POST
def staff_two_factor_reset(request, clinic_id, membership_id):
    """Clear a member's authenticator and recovery codes (a lost phone): logged, member emailed."""
    clinic = clinic_for(request, clinic_id, MANAGE)
    membership = _membership(clinic, membership_id)
    try:
        account_services.reset_member_two_factor(actor=request.user, membership=membership)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
    else:
        messages.success(
            request,
            f"{person(membership.user)}: two-factor sign-in reset. They were signed out and told by email; "
            "they set it up again at their next sign-in.",
        )
    return redirect("clinic-staff-edit", clinic_id=clinic.pk, membership_id=membership.pk)


@require_POST
def staff_active(request, clinic_id, membership_id):
    """Deactivate or reactivate a member of this clinic. Nobody is deleted: history points at them."""
    clinic = clinic_for(request, clinic_id, MANAGE)
    membership = _membership(clinic, membership_id)
    active = request.POST.get("active") == "1"
    name = person(membership.user)
    if membership.is_active == active:
        return redirect("clinic-staff", clinic_id=clinic.pk)
    fields = {"is_active": active}
    try:
        services.update_membership(membership, request.user, **fields)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
        return redirect("clinic-staff", clinic_id=clinic.pk)
    if active:
        messages.success(request, f"{name} is active again in {clinic.name}.")
        return redirect("clinic-staff", clinic_id=clinic.pk)
    else:
        messages.success(request, f"{name} is deactivated in {clinic.name}: no alerts, no access to its records.")
        assigned = _members(clinic).get(pk=membership.pk).assigned_pumps
        if assigned:
            messages.warning(
                request,
                f"{assigned} pump{'s are' if assigned != 1 else ' is'} still assigned to {name}: "
                "reassign them from each pump's page, or their reminders go to the clinic's admins.",
            )
    return _back_to_staff(request, clinic)


def _back_to_staff(request, clinic):
    """The staff page, unless the admin just gave up their own administrator role here."""
    forget_roles(request.user)
    if request.user.has_perm(MANAGE, clinic):
        return redirect("clinic-staff", clinic_id=clinic.pk)
    return redirect("home")
