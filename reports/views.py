"""The clinic report: the page, its CSV exports (figures and 12-month trends) and the
definitions. For physicians and the clinic's admins (``reports.view_report``); a nurse gets 403,
another clinic 404. No page here shows a patient name, MRN, birth date or pump serial: the late
refills are listed, for clinic admins only, by date and with links by id."""

from __future__ import annotations

import re
from pathlib import Path

import markdown
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from clinics.access import log_access, role_in, scope
from clinics.models import AccessLog, Clinic, Role

from . import present
from .figures import clinic_report, monthly_trend
from .forms import PeriodForm

REPORT = "reports.view_report"
DEFINITIONS = Path(settings.BASE_DIR) / "docs" / "reports.md"


def report_clinics(user):
    """The clinics whose report the user may read (every clinic for a superuser)."""
    return scope(Clinic.objects.all(), user, "pk", {Role.PHYSICIAN, Role.CLINIC_ADMIN}).order_by("name")


def clinic_for(request, clinic_id: int) -> Clinic:
    """The clinic, if the user may read its report: outside their clinics 404, a nurse 403."""
    clinic = get_object_or_404(scope(Clinic.objects.all(), request.user, "pk"), pk=clinic_id)
    if not request.user.has_perm(REPORT, clinic):
        raise PermissionDenied("Only the clinic's physicians and administrators may read its report.")
    return clinic


def _may_list_refills(user, clinic) -> bool:
    """The late-refill list (links to the records) is for the clinic's admins (and superusers)."""
    return user.is_superuser or role_in(user, clinic.pk) == Role.CLINIC_ADMIN


@require_GET
def index(request):
    clinics = list(report_clinics(request.user))
    if len(clinics) == 1:
        return redirect("report", clinic_id=clinics[0].pk)
    if not clinics and not request.user.is_superuser:
        raise PermissionDenied("Only physicians and clinic administrators may read the reports.")
    return render(request, "reports/index.html", {"clinics": clinics})


def _chosen(request, clinic):
    today = timezone.now().astimezone(clinic.zone).date()
    form = PeriodForm(request.GET or None, today=today)
    valid = not form.is_bound or form.is_valid()
    return form, valid


def _filename(clinic, report, what: str) -> str:
    return f"report-{what}-{slugify(clinic.name)}-{report.period.start:%Y-%m-%d}-{report.period.end:%Y-%m-%d}.csv"


def _csv_response(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def report_page(request, clinic_id):
    clinic = clinic_for(request, clinic_id)
    form, valid = _chosen(request, clinic)
    period = form.period if valid else None
    context = {"clinic": clinic, "form": form, "query": request.GET.urlencode()}
    if period is None:
        return render(request, "reports/report.html", context, status=400)
    report = clinic_report(clinic, period)
    last_month = present.trend_month(period)
    trends = monthly_trend(clinic, last_month)
    may_list = _may_list_refills(request.user, clinic)
    context.update(
        report=report,
        sections=present.sections(report),
        trend_label=f"{trends_first(trends):%b %Y} – {last_month.start:%b %Y}" if trends else "",
        chart_data=present.chart_data(report, trends),
        late_refills=present.late_refills(report) if may_list else (),
        may_list_refills=may_list,
        late_count=len(report.late_refills),
        definitions_url=_definitions_url(),
    )
    return render(request, "reports/report.html", context)


def trends_first(trends):
    return next(iter(trends.values()))[0][0]


def _export(request, clinic_id, what: str, make):
    """A CSV export of the chosen period, recorded in the access log; ``make(clinic, report)``
    returns the CSV text and the log's detail."""
    clinic = clinic_for(request, clinic_id)
    form, valid = _chosen(request, clinic)
    if not valid:
        return render(request, "reports/report.html", {"clinic": clinic, "form": form}, status=400)
    report = clinic_report(clinic, form.period)
    text, detail = make(clinic, report)
    log_access(request.user, AccessLog.Action.EXPORT, clinic=clinic, detail=detail)
    return _csv_response(text, _filename(clinic, report, what))


@require_GET
def figures_csv(request, clinic_id):
    def make(clinic, report):
        return present.figures_csv(report), f"Report figures CSV, {report.period.label}"

    return _export(request, clinic_id, "figures", make)


@require_GET
def trends_csv(request, clinic_id):
    def make(clinic, report):
        last_month = present.trend_month(report.period)
        trends = monthly_trend(clinic, last_month)
        return present.trends_csv(report, trends), f"Report trends CSV, 12 months to {last_month.label}"

    return _export(request, clinic_id, "trends", make)


def _definitions_url() -> str:
    return reverse("report-definitions")


@require_GET
def definitions(request):
    """docs/reports.md, rendered: how each figure is computed (headings anchored by figure key)."""
    if not request.user.has_perm(REPORT):
        raise PermissionDenied("Only physicians and clinic administrators may read the reports.")
    return render(request, "reports/definitions.html", {"document": render_definitions()})


def render_definitions() -> str:
    try:
        text = DEFINITIONS.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "The definitions are missing from this installation (docs/reports.md)."
    html = markdown.markdown(text, extensions=["toc", "tables", "attr_list", "fenced_code"])
    return mark_safe(anchor_figure_keys(html))  # noqa: S308 - the project's own document, not user input


FIGURE_KEY = re.compile(r"<code>([a-z][a-z0-9]*(?:_[a-z0-9]+)+)</code>")


def anchor_figure_keys(html: str) -> str:
    """The first mention of each figure key (``<code>refills_on_time_share</code>``) becomes its
    anchor, so each figure's "Definition" link lands on its definition."""
    seen = set()

    def anchor(match):
        key = match[1]
        if key in seen:
            return match[0]
        seen.add(key)
        return f'<code id="{key}">{key}</code>'

    return FIGURE_KEY.sub(anchor, html)
