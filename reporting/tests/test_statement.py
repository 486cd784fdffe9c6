"""The reconciliation statement against figures computed here from the records and the statement
the test loaded: it balances (zero unexplained) and, with a statement that does not add up, shows
the difference as a finding."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from reconciliation.models import IngestionBatch, StatementBalance
from reconciliation.runs import services as run_services
from reconciliation.runs.tests.factories import ACTOR, AS_OF, TenantFactory, definition, records, source_of
from reporting import reports

pytestmark = pytest.mark.django_db(transaction=True)
PASSES = [
    {"name": "exact_ref", "type": "exact", "keys": ["reference"]},
    {"name": "tol", "type": "tolerance", "keys": ["reference"], "amount": {"absolute": "0.10"}},
]
LEDGER = {"A": "1000.00", "B": "250.00", "C": "-300.00", "D": "99.95"}
BANK = {"A": "1000.00", "D": "100.00", "FEE": "-12.50", "INT": "3.10"}
OPENING = Decimal("5000.00")
NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)


def _month(closing: Decimal | None = None):
    tenant = TenantFactory(slug="stmt-bank")
    defn = definition(tenant, rules={"passes": PASSES}, name="gl-vs-bank")
    ledger, bank = source_of(defn, "left"), source_of(defn, "right")
    records(ledger, *({"reference": k, "amount": v, "account": "ACC-9"} for k, v in LEDGER.items()))
    records(bank, *({"reference": k, "amount": v, "account": "ACC-9"} for k, v in BANK.items()))
    records(bank, {"reference": "ELSEWHERE", "amount": "77.00", "account": "ACC-OTHER"})  # another account
    closing = closing if closing is not None else OPENING + sum(Decimal(v) for v in BANK.values())
    StatementBalance.objects.create(
        tenant=tenant,
        source=bank,
        batch=IngestionBatch.objects.filter(source=bank).first(),
        account="ACC-9",
        statement_id="NOV-2026",
        currency="EUR",
        opening=OPENING,
        closing=closing,
        opening_date=date(2026, 11, 1),
        closing_date=date(2026, 11, 30),
        entries_count=len(BANK),
    )
    run = run_services.run_start(
        tenant=tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF, dispatch=False
    )
    assert run_services.run_execute_inline(run).status == "completed"
    return tenant, defn, closing


def test_the_statement_of_the_month_balances_and_every_line_is_the_records():
    tenant, defn, closing = _month()
    report = reports.statement_report(
        tenant=tenant,
        definition_id=defn.pk,
        account="ACC-9",
        currency="EUR",
        period_end=date(2026, 12, 3),
        user=None,
        now=NOW,
    )
    cents = lambda d: int(Decimal(d) * 100)  # noqa: E731
    lines = [row[1] for row in report.tables[0].rows]
    ledger = OPENING + sum(Decimal(v) for v in LEDGER.values())
    expected = [
        cents(closing),
        cents(LEDGER["B"]),  # in transit
        cents(LEDGER["C"]),  # outstanding
        -cents(BANK["FEE"]) - cents(BANK["INT"]),  # bank only, as an effect on ledger - bank
        cents(LEDGER["D"]) - cents(BANK["D"]),  # the tolerance match's difference
        0,  # nothing written off
    ]
    adjusted = sum(expected)
    assert lines == [*expected, adjusted, cents(ledger), cents(ledger) - adjusted]
    assert lines[-1] == 0
    assert report.findings == []
    items = sorted((r[0], r[1], r[5], r[7]) for r in report.tables[1].rows)
    assert items == sorted(
        [
            ("in_transit", "left", "B", 25000),
            ("outstanding", "left", "C", -30000),
            ("bank_only", "right", "FEE", -1250),
            ("bank_only", "right", "INT", 310),
            ("amount_difference", "left", "D", 9995),
            ("amount_difference", "right", "D", 10000),
        ]
    )
    assert "<svg" in report.charts[0][1]


def test_a_statement_that_does_not_add_up_is_a_finding():
    tenant, defn, closing = _month(closing=Decimal("6100.00"))
    report = reports.statement_report(
        tenant=tenant,
        definition_id=defn.pk,
        account="ACC-9",
        currency="EUR",
        period_end=date(2026, 12, 3),
        user=None,
        now=NOW,
    )
    correct = OPENING + sum(Decimal(v) for v in BANK.values())
    assert report.tables[0].rows[-1][1] == int((correct - closing) * 100)  # -940: the statement is 9.40 high
    assert report.findings
    assert "Unexplained difference of -940" in report.findings[0]


def test_the_auditor_pack_holds_the_statement_and_verifies():
    import io
    import zipfile

    from reporting import packs

    tenant, defn, _ = _month()
    data = packs.build_pack(
        tenant=tenant,
        definition=defn,
        date_from=date(2026, 11, 1),
        date_to=date(2026, 11, 30),
        user=None,
        now=NOW,
    )
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {"reports/statement-ACC-9-EUR.html", "reports/statement-ACC-9-EUR.pdf"} <= set(names)
    assert packs.verify_pack(data).problems == []


def test_an_approver_generates_the_pack_in_the_admin_and_an_analyst_may_not():
    from django.test import Client

    from exceptions.tests.factories import member
    from jfintech.tenancy.models import Role
    from reporting import packs
    from reporting.models import ReportArtifact

    tenant, defn, _ = _month()
    url = f"/admin/reporting/reportartifact/reports/pack/?tenant={tenant.slug}"
    body = {"definition": defn.pk, "from": "2026-11-01", "to": "2026-11-30"}
    client = Client()
    client.force_login(member(tenant, Role.ANALYST, is_staff=True))
    assert client.post(url, body).status_code == 403
    client.force_login(member(tenant, Role.APPROVER, is_staff=True))
    index = client.get(f"/admin/reporting/reportartifact/reports/?tenant={tenant.slug}")
    assert b"Generate and sign" in index.content
    response = client.post(url, body)
    assert response.status_code == 302
    artifact = ReportArtifact.objects.get(tenant=tenant, kind="auditor_pack")
    assert response["Location"].endswith(f"/{artifact.pk}/change/")
    assert packs.verify_pack(bytes(artifact.content)).problems == []
    download = client.get(f"/admin/reporting/reportartifact/{artifact.pk}/download/")
    assert b"".join(download.streaming_content) == bytes(artifact.content)
