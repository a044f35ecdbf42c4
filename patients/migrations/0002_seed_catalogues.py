"""Seed the pump-model and drug-product catalogues from CLINICAL.md ("Devices", "Drug")."""

from decimal import Decimal as D

from django.db import migrations

PUMP_MODELS = [
    # manufacturer, name, reservoir mL, kind, battery years, notes
    (
        "Medtronic",
        "SynchroMed II 20 mL",
        D("20"),
        "programmable",
        D("7"),
        "Simple continuous, flex (up to 13 steps a day) and bolus modes; battery about 5–7 years.",
    ),
    (
        "Medtronic",
        "SynchroMed II 40 mL",
        D("40"),
        "programmable",
        D("7"),
        "Simple continuous, flex (up to 13 steps a day) and bolus modes; battery about 5–7 years.",
    ),
    (
        "Flowonix",
        "Prometra 20 mL",
        D("20"),
        "programmable",
        None,
        "Programmable valve pump; empty the reservoir before MRI.",
    ),
    (
        "Flowonix",
        "Prometra II 20 mL",
        D("20"),
        "programmable",
        None,
        "Programmable valve pump; empty the reservoir before MRI.",
    ),
    (
        "Flowonix",
        "Prometra II 40 mL",
        D("40"),
        "programmable",
        None,
        "Programmable valve pump; empty the reservoir before MRI.",
    ),
    (
        "Codman",
        "3000 30 mL",
        D("30"),
        "constant_flow",
        None,
        "Constant flow (gas propellant), no battery: the device's own flow rate fixes the dose.",
    ),
    ("Medtronic", "SynchroMed EL 10 mL", D("10"), "programmable", D("7"), "Legacy model."),
    ("Medtronic", "SynchroMed EL 18 mL", D("18"), "programmable", D("7"), "Legacy model."),
]

DRUG_PRODUCTS = [
    ("Lioresal Intrathecal", D("50")),
    ("Lioresal Intrathecal", D("500")),
    ("Lioresal Intrathecal", D("2000")),
    ("Gablofen", D("50")),
    ("Gablofen", D("500")),
    ("Gablofen", D("1000")),
    ("Gablofen", D("2000")),
]


def seed(apps, schema_editor):
    PumpModel = apps.get_model("patients", "PumpModel")
    DrugProduct = apps.get_model("patients", "DrugProduct")
    for manufacturer, name, reservoir, kind, battery, notes in PUMP_MODELS:
        PumpModel.objects.get_or_create(
            manufacturer=manufacturer,
            name=name,
            defaults={
                "reservoir_ml": reservoir,
                "default_lra_ml": D("2.00"),
                "kind": kind,
                "battery_life_years": battery,
                "notes": notes,
            },
        )
    for name, concentration in DRUG_PRODUCTS:
        DrugProduct.objects.get_or_create(
            name=name, concentration_mcg_per_ml=concentration, defaults={"max_days_in_pump": 180}
        )


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
