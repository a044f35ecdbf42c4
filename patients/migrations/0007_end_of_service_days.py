"""SynchroMed II stops about 90 days after its elective replacement indicator (CLINICAL.md
"Battery end of service"); battery-less constant-flow pumps have no end of service."""

from django.db import migrations

SYNCHROMED_II = ("SynchroMed II 20 mL", "SynchroMed II 40 mL")


def forwards(apps, schema_editor):
    PumpModel = apps.get_model("patients", "PumpModel")
    PumpModel.objects.filter(manufacturer="Medtronic", name__in=SYNCHROMED_II).update(days_eri_to_end_of_service=90)


def backwards(apps, schema_editor):
    PumpModel = apps.get_model("patients", "PumpModel")
    PumpModel.objects.filter(manufacturer="Medtronic", name__in=SYNCHROMED_II).update(days_eri_to_end_of_service=None)


class Migration(migrations.Migration):
    dependencies = [("patients", "0006_patient_lifecycle")]

    operations = [migrations.RunPython(forwards, backwards)]
