"""The caseload import: committed imports and the files a dry run checked."""

from datetime import timedelta

from django.conf import settings
from django.db import models

from clinics.models import Clinic


class CaseloadImport(models.Model):
    """One committed caseload import (DESIGN.md flow 8), listed in the clinic's audit report. The
    rows it created carry their own history, recorded as ``imported_by``."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="caseload_imports")
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField()
    filename = models.CharField(max_length=200, blank=True)
    created_count = models.PositiveIntegerField(help_text="Pumps created (with their patients, fills and programs).")
    skipped_count = models.PositiveIntegerField(help_text="Rows already imported with identical values.")

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self):
        return f"Caseload import of {self.imported_at:%Y-%m-%d %H:%M}: {self.created_count} pumps"

    @property
    def access_clinic_id(self) -> int:
        return self.clinic_id


class CaseloadUpload(models.Model):
    """A file checked by a dry run, kept until its admin commits it (then deleted with the import)
    or for a day at most, so the import stores exactly the file the dry run showed."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    uploaded_at = models.DateTimeField()
    filename = models.CharField(max_length=200, blank=True)
    content = models.BinaryField()

    KEEP = timedelta(days=1)

    def __str__(self):
        return f"Caseload file checked at {self.uploaded_at:%Y-%m-%d %H:%M}"
