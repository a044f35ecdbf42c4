"""The clinic's on-call rota: who is on call now, the next 8 weeks, rotations and swaps."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from clinics import services
from clinics.models import Membership, RotaOverride, Rotation
from clinics.selectors import GAP_HORIZON, rota_plans

from ..forms import add_refusal, person
from ..rota_forms import OverrideForm, RotationForm, default_starts_on
from .common import MANAGE, clinic_for

WEEKS_SHOWN = 8


def _active_members(clinic) -> dict[int, Membership]:
    members = Membership.objects.active().filter(clinic=clinic).select_related("user")
    return {m.pk: m for m in members.order_by("role", "user__last_name", "user__first_name", "user__username")}


def on_call_summary(clinic, now: datetime, members: dict[int, Membership] | None = None) -> list[dict]:
    """Each rotation in use: who is on call now (None: nobody) and until when."""
    members = _active_members(clinic) if members is None else members
    rows = []
    for plan in rota_plans(now, now + timedelta(weeks=WEEKS_SHOWN), clinic_ids=[clinic.pk]):
        if not plan.in_use:
            continue
        current = plan.shifts[0]
        rows.append({"rotation": plan.rotation, "member": members.get(current.member_id), "until": current.ends_at})
    return rows


def rota_page(request, clinic_id):
    """The next 8 weeks of every rota, with gaps marked, the swaps and cover to come, and forms."""
    clinic = clinic_for(request, clinic_id, MANAGE)
    now = timezone.now()
    members = _active_members(clinic)
    listed = {}
    for rotation in Rotation.objects.filter(clinic=clinic):
        for pk in rotation.member_ids:
            listed.setdefault(pk, None)
    # Members no longer active still show by name in the plan (their turn is a gap).
    names = {
        m.pk: person(m.user)
        for m in Membership.objects.filter(clinic=clinic, pk__in=set(listed) | set(members)).select_related("user")
    }
    plans = []
    for plan in rota_plans(now, now + timedelta(weeks=WEEKS_SHOWN), clinic_ids=[clinic.pk]):
        rows = [
            {
                "starts_at": shift.starts_at,
                "ends_at": shift.ends_at,
                "hours": round(shift.hours),
                "who": names.get(shift.member_id),
                "is_override": shift.is_override,
                "is_gap": shift.member_id not in members,
                "inactive": shift.member_id is not None and shift.member_id not in members,
            }
            for shift in plan.shifts
        ]
        soon = [(s, e) for s, e in plan.gaps if s < now + GAP_HORIZON] if plan.in_use else []
        plans.append({"rotation": plan.rotation, "rows": rows, "in_use": plan.in_use, "gaps_soon": soon})
    overrides = (
        RotaOverride.objects.filter(rotation__clinic=clinic, ends_at__gt=now)
        .select_related("rotation", "membership__user")
        .order_by("starts_at")
    )
    return render(
        request,
        "clinics/rota.html",
        {
            "clinic": clinic,
            "section": "rota",
            "now": now,
            "plans": plans,
            "on_call": on_call_summary(clinic, now, members),
            "overrides": overrides,
            "override_form": _override_form(clinic, members.values()),
            "weeks": WEEKS_SHOWN,
        },
    )


def _override_form(clinic, members, data=None):
    return OverrideForm(
        data, clinic=clinic, rotations=Rotation.objects.filter(clinic=clinic), members=members, prefix="cover"
    )


def rotation_edit(request, clinic_id, rotation_id=None):
    clinic = clinic_for(request, clinic_id, MANAGE)
    rotation = get_object_or_404(Rotation, clinic=clinic, pk=rotation_id) if rotation_id else None
    members = list(_active_members(clinic).values())
    if rotation:
        initial = {
            "name": rotation.name,
            "role": rotation.role,
            "handover_weekday": rotation.handover_weekday,
            "handover_time": rotation.handover_time,
            "length_days": rotation.length_days,
            "starts_on": rotation.starts_on,
        }
    else:
        today = timezone.now().astimezone(clinic.zone).date()
        initial = {
            "handover_weekday": 0,
            "handover_time": time(8, 0),
            "length_days": 7,
            "starts_on": default_starts_on(today, 0),
        }
    form = RotationForm(request.POST or None, initial=initial, members=members, rotation=rotation)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = services.save_rotation(
                actor=request.user,
                clinic=clinic,
                rotation=rotation,
                name=data["name"],
                role=data["role"],
                member_ids=data["member_ids"],
                handover_weekday=data["handover_weekday"],
                handover_time=data["handover_time"],
                length_days=data["length_days"],
                starts_on=data["starts_on"],
            )
        except ValidationError as refusal:
            add_refusal(form, refusal, aliases={"member_ids": "__all__"})
        else:
            messages.success(request, f"{saved.name} saved: {len(saved.member_ids)} member(s) take turns.")
            return redirect("clinic-rota", clinic_id=clinic.pk)
    return render(
        request,
        "clinics/rotation_edit.html",
        {"clinic": clinic, "section": "rota", "rotation": rotation, "form": form},
    )


def override_add(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    members = _active_members(clinic)
    form = _override_form(clinic, members.values(), request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        rotation = get_object_or_404(Rotation, clinic=clinic, pk=data["rotation"])
        membership = members.get(data["membership"])
        try:
            if membership is None:
                raise ValidationError({"membership": "Choose an active member of this clinic."})
            services.add_rota_override(
                actor=request.user,
                rotation=rotation,
                membership=membership,
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
            )
        except ValidationError as refusal:
            add_refusal(form, refusal)
        else:
            messages.success(
                request,
                f"{person(membership.user)} is on call on {rotation.name} instead from "
                f"{data['starts_at']:%a %d %b %H:%M} to {data['ends_at']:%a %d %b %H:%M}.",
            )
            return redirect("clinic-rota", clinic_id=clinic.pk)
    return render(request, "clinics/override_add.html", {"clinic": clinic, "section": "rota", "form": form})


@require_POST
def override_remove(request, clinic_id, override_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    override = get_object_or_404(
        RotaOverride.objects.select_related("rotation"), rotation__clinic=clinic, pk=override_id
    )
    services.remove_rota_override(actor=request.user, override=override)
    messages.success(request, f"The cover on {override.rotation.name} is removed: the rota's own turns apply again.")
    return redirect("clinic-rota", clinic_id=clinic.pk)
