"""Caseload import (DESIGN.md flow 8): download the template, upload a filled file for a dry run
that shows every row's outcome, then import it — all or nothing, through the same services as
the forms, recorded as the clinic admin."""

from __future__ import annotations

import tablib
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from patients.imports import ImportFileError, read_table
from patients.models import CaseloadUpload
from patients.services.caseload import COLUMNS, import_caseload, template_rows

from ..forms import CaseloadUploadForm
from .common import MANAGE, clinic_for

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def caseload_import(request, clinic_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    CaseloadUpload.objects.filter(uploaded_at__lt=timezone.now() - CaseloadUpload.KEEP).delete()
    form = CaseloadUploadForm(request.POST or None, request.FILES or None)
    context = {"clinic": clinic, "section": "import", "form": form, "columns": COLUMNS}
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        content = upload.read()
        try:
            rows = read_table(content, upload.name)
        except ImportFileError as exc:
            form.add_error("file", str(exc))
        else:
            result = import_caseload(clinic=clinic, actor=request.user, rows=rows, commit=False)
            pending = None
            if not result.refused and result.count("create"):
                CaseloadUpload.objects.filter(clinic=clinic, uploaded_by=request.user).delete()
                pending = CaseloadUpload.objects.create(
                    clinic=clinic,
                    uploaded_by=request.user,
                    uploaded_at=timezone.now(),
                    filename=upload.name[:200],
                    content=content,
                )
            context.update(result=result, filename=upload.name, pending=pending)
    return render(request, "clinics/caseload_import.html", context)


@require_POST
def caseload_commit(request, clinic_id, upload_id):
    clinic = clinic_for(request, clinic_id, MANAGE)
    pending = get_object_or_404(CaseloadUpload, pk=upload_id, clinic=clinic, uploaded_by=request.user)
    rows = read_table(bytes(pending.content), pending.filename)
    result = import_caseload(clinic=clinic, actor=request.user, rows=rows, commit=True, filename=pending.filename)
    if not result.committed:
        context = {"clinic": clinic, "section": "import", "form": CaseloadUploadForm(), "columns": COLUMNS}
        if result.collision:
            # Another import took one of its MRNs or serials while it ran: its rows passed when
            # checked, so their outcomes would mislead; the message alone, and a new dry run.
            pending.delete()
            messages.error(request, result.collision)
            return render(request, "clinics/caseload_import.html", context)
        # Something changed since the dry run (a colleague registered one of these pumps): show why.
        messages.error(request, "Nothing was imported: the file no longer passes every check. See the rows below.")
        return render(
            request, "clinics/caseload_import.html", {**context, "result": result, "filename": pending.filename}
        )
    pending.delete()
    created, skipped = result.count("create"), result.count("skip")
    messages.success(
        request,
        f"Imported {created} pump{'s' if created != 1 else ''} with their patients, last refills and programs"
        + (f"; {skipped} row{'s' if skipped != 1 else ''} already imported were skipped" if skipped else "")
        + ". Their projections and alerts are live on the worklist.",
    )
    return redirect("home")


def caseload_template(request, clinic_id, fmt):
    clinic_for(request, clinic_id, MANAGE)
    if fmt not in ("csv", "xlsx"):
        raise Http404("The template comes as .csv or .xlsx.")
    header, example = template_rows()
    data = tablib.Dataset(example, headers=header, title="Caseload")
    if fmt == "csv":
        response = HttpResponse(data.export("csv"), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="itb-caseload-template.csv"'
        return response
    columns = tablib.Dataset(
        *[(c.name, "yes" if c.required else "", c.meaning, c.example) for c in COLUMNS],
        headers=["column", "required", "meaning and units", "example"],
        title="Columns",
    )
    book = tablib.Databook([data, columns])
    response = HttpResponse(book.export("xlsx"), content_type=XLSX)
    response["Content-Disposition"] = 'attachment; filename="itb-caseload-template.xlsx"'
    return response
