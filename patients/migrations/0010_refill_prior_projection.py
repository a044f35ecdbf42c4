"""What the projection said just before each refill (issue 14), stored on the refill.

Refills recorded from now on store it when they are recorded (patients/services/refills.py). This
migration computes it once for the refills recorded before, from the record: the previous fill's
projection through the projection core (``patients.depletion``), with the programs in force between
the two fills (programs starting at or after the refill are left out: they did not exist yet), the
delivery ratio measured over the fills before it, the patient's current margin (flags and extra
days are not kept per date) and the clinic's current calendar (its closures and public holidays)
to move the due date off closed days. The rule is written out here from the core's parts (not the
services, whose models a migration cannot use), as ``project_record`` composes them.

Reads two queries per pump (refills, programs) and writes one UPDATE per refill; a refill that
already has its snapshot is left alone, so running it again changes nothing.
"""

from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import migrations, models

from clinics.calendar import ClinicCalendar
from patients import depletion

DEFAULT_MAX_DAYS_IN_PUMP = 180


def _segments(pump, model, programs, start, until):
    segments = []
    for program in programs:
        if not (start <= program.effective_at < until):
            continue
        total = program.daily_dose_mcg + program.bolus_mcg_per_day
        if total == 0:
            rate = Decimal("0")
        elif model.kind == "constant_flow" and pump.flow_rate_ml_per_day:
            rate = pump.flow_rate_ml_per_day
        else:
            rate = depletion.rate_ml_per_day(
                program.daily_dose_mcg, program.bolus_mcg_per_day, program.concentration_mcg_per_ml
            )
        segments.append(depletion.Segment(start=program.effective_at, rate_ml_per_day=rate))
    return tuple(segments)


def _max_days(refill, products):
    if refill.drug_product_id is not None:
        return products[refill.drug_product_id][1]
    days = [d for concentration, d in products.values() if concentration == refill.concentration_mcg_per_ml]
    return min(days, default=DEFAULT_MAX_DAYS_IN_PUMP)


def backfill(apps, schema_editor):
    Clinic = apps.get_model("clinics", "Clinic")
    ClinicClosure = apps.get_model("clinics", "ClinicClosure")
    Pump = apps.get_model("patients", "Pump")
    Program = apps.get_model("patients", "Program")
    RefillVisit = apps.get_model("patients", "RefillVisit")
    DrugProduct = apps.get_model("patients", "DrugProduct")
    products = {
        p.pk: (p.concentration_mcg_per_ml, p.max_days_in_pump) for p in DrugProduct.objects.filter(is_active=True)
    }
    products.update({p.pk: (None, p.max_days_in_pump) for p in DrugProduct.objects.filter(is_active=False)})
    pending = RefillVisit.objects.filter(prior_due_on__isnull=True).values("pump_id").distinct()
    calendars = {}
    for pump in Pump.objects.filter(pk__in=pending).select_related("patient", "pump_model").order_by("pk"):
        patient = pump.patient
        if patient.clinic_id not in calendars:
            clinic = Clinic.objects.get(pk=patient.clinic_id)
            closures = tuple(
                ClinicClosure.objects.filter(clinic_id=clinic.pk).values_list("first_day", "last_day", "reason")
            )
            calendars[clinic.pk] = (
                clinic,
                ClinicCalendar(
                    zone=ZoneInfo(clinic.timezone),
                    opening_weekdays=frozenset(clinic.opening_weekdays),
                    closures=closures,
                    holiday_country=clinic.holiday_country,
                    holiday_subdivision=clinic.holiday_subdivision,
                ),
            )
        clinic, calendar = calendars[patient.clinic_id]
        zone = calendar.zone
        high_risk = patient.sci_at_or_above_t6 or patient.communication_difficulty or patient.prior_withdrawal
        margin = depletion.margin_days(
            clinic.refill_margin_days, patient.extra_margin_days, clinic.high_risk_extra_days, high_risk
        )
        refills = list(RefillVisit.objects.filter(pump_id=pump.pk).order_by("performed_at"))
        programs = list(Program.objects.filter(pump_id=pump.pk).order_by("effective_at", "id"))
        samples = []
        for previous, refill in zip(refills, refills[1:], strict=False):
            fill = depletion.Fill(
                filled_at=previous.performed_at,
                volume_ml=previous.volume_added_ml,
                segments=_segments(pump, pump.pump_model, programs, previous.performed_at, refill.performed_at),
            )
            if refill.prior_due_on is None:
                projection = depletion.project(
                    fill,
                    lra_ml=pump.lra_ml,
                    max_days_in_pump=_max_days(previous, products),
                    vial_expires_on=previous.drug_expires_on,
                    zone=zone,
                    overinfusion_allowance_pct=clinic.overinfusion_allowance_pct,
                    margin=margin,
                    reminder_days=clinic.reminder_days,
                    critical_hours=clinic.critical_hours,
                    now=refill.performed_at,
                    measured_delivery_ratio=depletion.delivery_ratio(samples),
                    is_closed=calendar,
                )
                RefillVisit.objects.filter(pk=refill.pk).update(
                    prior_due_on=projection.refill_due_on,
                    prior_unmoved_due_on=projection.unmoved_refill_due_on,
                    prior_lra_at=projection.lra_at,
                    prior_empty_at=projection.empty_at,
                    prior_conservative_lra_at=projection.conservative_lra_at,
                )
            # This interval's delivery sample, for the fills after it.
            programmed = min(depletion.consumed_ml(fill, refill.performed_at), previous.volume_added_ml)
            samples.append(
                depletion.DeliverySample(
                    gone_ml=previous.volume_added_ml - refill.aspirated_ml,
                    programmed_ml=programmed,
                    excluded=refill.discrepancy,
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0009_free_text_limits"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalrefillvisit",
            name="prior_conservative_lra_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="historicalrefillvisit",
            name="prior_due_on",
            field=models.DateField(blank=True, null=True, verbose_name="due date in force before the refill"),
        ),
        migrations.AddField(
            model_name="historicalrefillvisit",
            name="prior_empty_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="projected empty time before the refill"),
        ),
        migrations.AddField(
            model_name="historicalrefillvisit",
            name="prior_lra_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="projected alarm time before the refill"),
        ),
        migrations.AddField(
            model_name="historicalrefillvisit",
            name="prior_unmoved_due_on",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="refillvisit",
            name="prior_conservative_lra_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="refillvisit",
            name="prior_due_on",
            field=models.DateField(blank=True, null=True, verbose_name="due date in force before the refill"),
        ),
        migrations.AddField(
            model_name="refillvisit",
            name="prior_empty_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="projected empty time before the refill"),
        ),
        migrations.AddField(
            model_name="refillvisit",
            name="prior_lra_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="projected alarm time before the refill"),
        ),
        migrations.AddField(
            model_name="refillvisit",
            name="prior_unmoved_due_on",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
