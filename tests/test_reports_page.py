"""The clinic report's page and CSV exports (issue 14): physicians and clinic admins read it, a
nurse is refused (403), another clinic's report does not exist for them (404); no page or CSV
carries a patient's name, MRN, birth date or pump serial; the page's queries do not grow with
the pumps."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinics.models import AccessLog, Role
from patients import services
from reports import figures, views
from reports.figures import LateRefill, Period

from .factories import PatientFactory, PumpFactory, first_fill_order, member

PHX = ZoneInfo("America/Phoenix")
# Report day: Tuesday 2026-12-08 in Phoenix; the default period is November 2026.
REPORT_DAY = datetime(2026, 12, 8, 10, tzinfo=PHX)

# The fixture patients' identifiers: none of them may appear in a report, a CSV or a digest.
IDENTIFIED_PATIENTS = [
    {"given_name": "Zebulon", "family_name": "Quixote-Marchetti", "mrn": "MRN-778899", "birth_date": date(1953, 7, 14)},
    {"given_name": "Perpetua", "family_name": "Ollivander-Szabo", "mrn": "MRN-551122", "birth_date": date(1948, 2, 29)},
]
SERIALS = ["SNX-4455667", "SNX-9988776"]


def identifiers() -> list[str]:
    found = []
    for patient, serial in zip(IDENTIFIED_PATIENTS, SERIALS, strict=True):
        born = patient["birth_date"]
        found += [patient["given_name"], patient["family_name"], patient["mrn"], serial]
        found += [born.isoformat(), f"{born:%m/%d/%Y}", f"{born:%d/%m/%Y}", f"{born:%b %d, %Y}", f"{born:%B %-d, %Y}"]
    return found


def assert_no_identifier(text: str) -> None:
    leaked = [value for value in identifiers() if value.lower() in text.lower()]
    assert not leaked, f"patient identifiers in the output: {leaked}"


def fill(pump, actor, when, *, aspirated="0", volume="40", **extra):
    return services.record_refill(
        pump=pump,
        actor=actor,
        performed_at=when,
        aspirated_ml=D(aspirated),
        volume_added_ml=D(volume),
        concentration_mcg_per_ml=D("2000"),
        daily_dose_mcg=D("600"),
        now=when,
        **first_fill_order(pump, actor, extra),
    )


def identified_pumps(clinic, nurse):
    """Two pumps of patients with distinctive identifiers, filled in September and refilled in
    November 2026 (the report's default period)."""
    pumps = []
    for patient, serial in zip(IDENTIFIED_PATIENTS, SERIALS, strict=True):
        pump = PumpFactory(patient=PatientFactory(clinic=clinic, **patient), serial_number=serial)
        fill(pump, nurse, datetime(2026, 9, 7, 9, tzinfo=PHX))
        pumps.append(pump)
    return pumps


@pytest.fixture
def pumps(clinic, nurse):
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=PHX), tick=False):
        made = identified_pumps(clinic, nurse)
        for pump in made:
            fill(pump, nurse, datetime(2026, 11, 16, 9, tzinfo=PHX), aspirated="20")
    return made


@pytest.fixture
def frozen():
    with time_machine.travel(REPORT_DAY, tick=False):
        yield


@pytest.fixture
def other_admin(other_clinic):
    return member(other_clinic, Role.CLINIC_ADMIN, username="otheradmin")


def report_url(clinic, name="report", **query):
    url = reverse(name, args=[clinic.pk])
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def csv_rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


# --- who may read it ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["physician", "clinic_admin"])
def test_physicians_and_clinic_admins_read_last_months_report_by_default(client, frozen, clinic, pumps, role, request):
    client.force_login(request.getfixturevalue(role))
    response = client.get(report_url(clinic))
    assert response.status_code == 200
    page = response.content.decode()
    assert "report for November 2026" in page
    assert "2026-11-01 to 2026-11-30" in page
    assert "America/Phoenix" in page
    for figure in response.context["report"].figures:
        assert f'id="figure-{figure.key}"' in page
        assert figure.label in page or figure.label.replace("'", "&#x27;") in page
    assert 'href="/reports/definitions/#refills_on_time_share"' in page
    # Trends: a canvas per figure with a trend, its data in the page (no inline script).
    assert 'id="report-trends" type="application/json"' in page
    assert page.count("<canvas") == sum(1 for f in response.context["report"].figures if f.trend)
    assert "<script>" not in page


def test_the_nav_links_the_reports_for_physicians_and_admins_only(
    client, frozen, clinic, nurse, physician, clinic_admin
):
    for user, shown in [(nurse, False), (physician, True), (clinic_admin, True)]:
        client.force_login(user)
        page = client.get(reverse("home")).content.decode()
        assert ('href="/reports/"' in page) is shown, user.username


def test_a_nurse_may_not_read_the_report(client, frozen, clinic, nurse, pumps):
    client.force_login(nurse)
    assert client.get(report_url(clinic)).status_code == 403
    assert client.get(report_url(clinic, "report-figures-csv")).status_code == 403
    assert client.get(report_url(clinic, "report-trends-csv")).status_code == 403
    assert client.get(reverse("reports")).status_code == 403
    assert client.get(reverse("report-definitions")).status_code == 403


def test_another_clinics_report_does_not_exist_for_an_admin(client, frozen, clinic, other_admin, pumps):
    client.force_login(other_admin)
    assert client.get(report_url(clinic)).status_code == 404
    assert client.get(report_url(clinic, "report-figures-csv")).status_code == 404
    assert client.get(report_url(clinic, "report-trends-csv")).status_code == 404


def test_the_reports_index_opens_the_only_clinic_at_once(client, frozen, clinic, physician):
    client.force_login(physician)
    response = client.get(reverse("reports"))
    assert response.status_code == 302
    assert response["Location"] == report_url(clinic)


# --- the period chooser ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "month", "month": "2026-03"}, Period.month(2026, 3)),
        ({"kind": "quarter", "quarter": "2026-Q3"}, Period.quarter(2026, 3)),
        (
            {"kind": "range", "start": "2026-03-01", "end": "2026-04-15"},
            Period.between(date(2026, 3, 1), date(2026, 4, 15)),
        ),
    ],
    ids=["month", "quarter", "range"],
)
def test_the_report_covers_the_month_quarter_or_range_chosen(client, frozen, clinic, physician, query, expected):
    client.force_login(physician)
    response = client.get(report_url(clinic, **query))
    assert response.status_code == 200
    assert response.context["report"].period == expected


def test_a_range_across_the_spring_forward_ends_with_its_last_full_month_trend(client, frozen, physician):
    """Chicago changes its clocks on 2026-03-08: the period is still whole days in its zone, and
    the trends end with the last full month (February for a range ending mid-March)."""
    from .factories import ClinicFactory, MembershipFactory

    chicago = ClinicFactory(timezone="America/Chicago")
    MembershipFactory(user=physician, clinic=chicago, role=Role.PHYSICIAN)
    client.force_login(physician)
    response = client.get(report_url(chicago, kind="range", start="2026-03-01", end="2026-03-15"))
    assert response.status_code == 200
    start, end = response.context["report"].period.bounds(chicago.zone)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=15, hours=-1)
    assert "Mar 2025 – Feb 2026" in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        {"kind": "range", "start": "2026-04-15", "end": "2026-03-01"},
        {"kind": "month", "month": "2026-13"},
        {"kind": "month", "month": "2027-01"},
        {"kind": "quarter", "quarter": "2019-Q9"},
    ],
    ids=["ends-before-it-starts", "no-such-month", "not-begun", "no-such-quarter"],
)
def test_a_period_that_cannot_be_reported_is_refused_with_the_reason(client, frozen, clinic, physician, query):
    client.force_login(physician)
    response = client.get(report_url(clinic, **query))
    assert response.status_code == 400
    assert "That period cannot be shown" in response.content.decode()
    assert client.get(report_url(clinic, "report-figures-csv", **query)).status_code == 400


# --- the late refills: listed with links for clinic admins only ------------------------------


@pytest.fixture
def late_refill(monkeypatch, pumps):
    """The report names one refill done after its pump's projected empty time (the figure is
    reports-core's, tested there; here the page's listing of it)."""
    refill = pumps[0].refills.order_by("-performed_at").first()
    real = figures.clinic_report

    def with_late_refill(clinic, period):
        report = real(clinic, period)
        late = LateRefill(refill.pk, refill.pump_id, refill.performed_at, "empty")
        return figures.Report(report.clinic, report.period, report.figures, (late,))

    monkeypatch.setattr(views, "clinic_report", with_late_refill)
    return refill


def test_clinic_admins_get_the_late_refills_as_links_without_identifiers(
    client, frozen, clinic, clinic_admin, late_refill
):
    client.force_login(clinic_admin)
    page = client.get(report_url(clinic)).content.decode()
    history = reverse("clinic-history", args=[clinic.pk, "refill", late_refill.pk])
    assert f'<a href="{history}">Refill on 2026-11-16 (after empty)</a>' in page
    assert f'href="{reverse("pump-detail", args=[late_refill.pump_id])}"' in page
    assert_no_identifier(page)


def test_physicians_see_how_many_refills_were_late_but_not_the_list(client, frozen, clinic, physician, late_refill):
    client.force_login(physician)
    page = client.get(report_url(clinic)).content.decode()
    assert "1 refill done after" in page
    assert "The clinic's administrators see the list." in page
    assert "Refill on 2026-11-16" not in page
    assert reverse("pump-detail", args=[late_refill.pump_id]) not in page


# --- CSV ------------------------------------------------------------------------------------


def test_the_figures_csv_has_every_figure_and_breakdown_with_the_period_in_iso_8601(
    client, frozen, clinic, clinic_admin, pumps
):
    client.force_login(clinic_admin)
    response = client.get(report_url(clinic, "report-figures-csv", kind="quarter", quarter="2026-Q4"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    rows = csv_rows(response)
    report = views.clinic_report(clinic, Period.quarter(2026, 4))
    figure_rows = [r for r in rows if not r["breakdown"]]
    assert [r["figure_key"] for r in figure_rows] == [f.key for f in report.figures]
    assert {r["period"] for r in rows} == {"2026-10-01/2026-12-31"}
    assert {(r["period_start"], r["period_end"]) for r in rows} == {("2026-10-01", "2026-12-31")}
    for row, figure in zip(figure_rows, report.figures, strict=True):
        assert (row["section"], row["label"], row["unit"]) == (figure.section, figure.label, figure.unit)
        assert row["value"] == ("" if figure.value is None else str(figure.value))
    breakdowns = [(r["figure_key"], r["breakdown"], r["value"]) for r in rows if r["breakdown"]]
    expected = [(f.key, label, "" if v is None else str(v)) for f in report.figures for label, v in f.breakdown]
    assert breakdowns == expected
    log = AccessLog.objects.get(action=AccessLog.Action.EXPORT)
    assert (log.user, log.clinic, log.detail) == (clinic_admin, clinic, "Report figures CSV, Q4 2026")


def test_the_trends_csv_has_twelve_months_per_figure(client, frozen, clinic, physician, pumps):
    client.force_login(physician)
    response = client.get(report_url(clinic, "report-trends-csv"))
    assert response.status_code == 200
    rows = csv_rows(response)
    by_key = {}
    for row in rows:
        by_key.setdefault(row["figure_key"], []).append(row["month"])
    report = views.clinic_report(clinic, Period.month(2026, 11))
    assert set(by_key) == {f.key for f in report.figures if f.trend}
    months = [f"{y}-{m:02d}" for y, m in [(2025, 12)] + [(2026, m) for m in range(1, 12)]]
    assert all(found == months for found in by_key.values())
    assert AccessLog.objects.filter(action=AccessLog.Action.EXPORT, detail__contains="trends").count() == 1


# --- no identifiers; constant queries --------------------------------------------------------


@pytest.mark.parametrize("role", ["physician", "clinic_admin"])
def test_no_report_page_or_csv_carries_a_patients_identifiers(
    client, frozen, clinic, pumps, role, request, monkeypatch
):
    # The late-refill list too (clinic admins): every refill of the period is listed as late.
    real = figures.clinic_report

    def all_late(clinic, period):
        report = real(clinic, period)
        late = tuple(LateRefill(r.pk, r.pump_id, r.performed_at, "alarm") for pump in pumps for r in pump.refills.all())
        return figures.Report(report.clinic, report.period, report.figures, late)

    monkeypatch.setattr(views, "clinic_report", all_late)
    client.force_login(request.getfixturevalue(role))
    bodies = [
        client.get(report_url(clinic)).content.decode(),
        client.get(report_url(clinic, kind="quarter", quarter="2026-Q4")).content.decode(),
        client.get(report_url(clinic, kind="range", start="2026-09-01", end="2026-12-07")).content.decode(),
        b"".join([client.get(report_url(clinic, "report-figures-csv")).content]).decode(),
        client.get(report_url(clinic, "report-trends-csv")).content.decode(),
        client.get(reverse("report-definitions")).content.decode(),
    ]
    if role == "clinic_admin":
        assert "Refill on 2026-09-07 (after alarm)" in bodies[2]
    # The fixture's identifiers are where they should be (so the search can find them) …
    assert "Quixote-Marchetti" in client.get(reverse("pump-detail", args=[pumps[0].pk])).content.decode()
    # … and in no report.
    for body in bodies:
        assert_no_identifier(body)


def test_the_report_page_runs_the_same_queries_for_one_pump_or_many(client, frozen, clinic, physician, nurse):
    client.force_login(physician)
    url = report_url(clinic)
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=PHX), tick=False):
        first = PumpFactory(patient=PatientFactory(clinic=clinic))
        fill(first, nurse, datetime(2026, 9, 7, 9, tzinfo=PHX))
        fill(first, nurse, datetime(2026, 11, 16, 9, tzinfo=PHX), aspirated="20")
    client.get(url)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=PHX), tick=False):
        for _ in range(4):
            pump = PumpFactory(patient=PatientFactory(clinic=clinic))
            fill(pump, nurse, datetime(2026, 9, 7, 9, tzinfo=PHX))
            fill(pump, nurse, datetime(2026, 11, 16, 9, tzinfo=PHX), aspirated="20")
    with CaptureQueriesContext(connection) as five:
        assert client.get(url).status_code == 200
    assert len(five) == len(one), [q["sql"] for q in five.captured_queries]


def test_every_figure_has_its_definition_one_click_away(client, frozen, clinic, physician):
    """Each figure's "Definition" link lands on an anchor of docs/reports.md, rendered."""
    client.force_login(physician)
    report = client.get(report_url(clinic)).context["report"]
    definitions = client.get(reverse("report-definitions"))
    assert definitions.status_code == 200
    page = definitions.content.decode()
    assert "<h1" in page and "<script>" not in page
    missing = [f.key for f in report.figures if f'id="{f.key}"' not in page]
    assert missing == []
