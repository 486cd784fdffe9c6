"""Intraday camt.054 notifications re-reported by the end-of-day camt.053 (DataSource.re_reports):
each economic entry — (account, AcctSvcrRef) — is one active record, whichever file arrives first;
the later copy is stored `linked`; a copy that differs is rejected, never linked silently; reversal
releases links; a reconciliation run counts each entry once."""

import io
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from rest_framework.test import APIClient

from jfintech.audit.models import AuditEvent
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory, member
from reconciliation.ingestion import services
from reconciliation.ingestion.config_file import ConfigError, config_apply, load_document
from reconciliation.ingestion.tests.factories import ACTOR
from reconciliation.models import DataSource, IngestionBatch, Record, Rejection
from reconciliation.runs import services as run_services
from reconciliation.runs.models import RunStatus
from reconciliation.runs.tests.factories import records

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date.today() - timedelta(days=1)
IBAN = "DE89370400440532013000"
NS = "urn:iso:std:iso:20022:tech:xsd:camt.{message}.001.08"


@dataclass
class Booking:
    """One booked entry as the bank reports it: its servicer reference is the same in the
    notification and the statement; the entry reference (NtryRef) is each message's own."""

    servicer_ref: str
    amount: D  # signed: credit > 0
    end_to_end: str
    party: str
    remittance: str
    transactions: tuple = ()  # ((end_to_end, signed amount), ...) of a batch booking


# The day's bookings on the account: four are notified intraday (camt.054), and the end-of-day
# statement (camt.053) re-reports them with three more booked after the last notification.
INTRADAY = [
    Booking(
        "2024120900001234", D("15000.00"), "INV-2024-0931", "Nordwind Logistik GmbH", "Invoice 2024-0931"
    ),
    Booking("2024120900001235", D("-2350.75"), "PAY-SUP-7781", "Kraemer Bürobedarf KG", "Order 7781"),
    Booking("2024120900001236", D("980.40"), "INV-2024-0944", "Atelier Lumière SARL", "Invoice 2024-0944"),
    Booking("2024120900001237", D("-12500.00"), "SAL-2024-12", "Payroll", "Salaries December"),
]
LATE = [
    Booking("2024120900001301", D("4200.00"), "INV-2024-0950", "Hafenkontor AG", "Invoice 2024-0950"),
    Booking("2024120900001302", D("-89.90"), "CARD-55120", "Telekom Deutschland", "Monthly plan"),
    Booking("2024120900001303", D("-1200.00"), "TAX-Q4-ADV", "Finanzamt Köln-Mitte", "VAT advance Q4"),
]


def _cdi(amount: D) -> str:
    return "DBIT" if amount < 0 else "CRDT"


def _tx(end_to_end: str, amount: D | None, booking: Booking) -> str:
    role = "Dbtr" if booking.amount >= 0 else "Cdtr"
    amt = f'<Amt Ccy="EUR">{abs(amount):.2f}</Amt><CdtDbtInd>{_cdi(amount)}</CdtDbtInd>' if amount else ""
    return (
        f"<TxDtls><Refs><EndToEndId>{end_to_end}</EndToEndId></Refs>{amt}"
        f"<RltdPties><{role}><Pty><Nm>{booking.party}</Nm></Pty></{role}></RltdPties>"
        f"<RmtInf><Ustrd>{booking.remittance}</Ustrd></RmtInf></TxDtls>"
    )


def _entry(booking: Booking, entry_ref: str) -> str:
    txs = booking.transactions or ((booking.end_to_end, None),)
    return (
        f"<Ntry><NtryRef>{entry_ref}</NtryRef>"
        f'<Amt Ccy="EUR">{abs(booking.amount):.2f}</Amt><CdtDbtInd>{_cdi(booking.amount)}</CdtDbtInd>'
        f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{DAY}</Dt></BookgDt><ValDt><Dt>{DAY}</Dt></ValDt>"
        f"<AcctSvcrRef>{booking.servicer_ref}</AcctSvcrRef>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>"
        f"<NtryDtls>{''.join(_tx(e2e, amount, booking) for e2e, amount in txs)}</NtryDtls></Ntry>\n"
    )


def _balance(code: str, amount: D) -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{abs(amount):.2f}</Amt>'
        f"<CdtDbtInd>{_cdi(amount)}</CdtDbtInd><Dt><Dt>{DAY}</Dt></Dt></Bal>\n"
    )


def camt054(bookings, notification_id="NTF-20241209-01") -> bytes:
    entries = "".join(_entry(b, f"N{i:03d}") for i, b in enumerate(bookings, start=1))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{NS.format(message="054")}">\n'
        f"<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>{notification_id}</MsgId>"
        f"<CreDtTm>{DAY}T14:05:00</CreDtTm></GrpHdr>\n"
        f"<Ntfctn><Id>{notification_id}</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>{DAY}T14:05:00</CreDtTm>"
        f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>\n{entries}</Ntfctn>\n"
        "</BkToCstmrDbtCdtNtfctn></Document>\n"
    ).encode()


def camt053(bookings, opening=D("50000.00"), statement_id="STM-20241209") -> bytes:
    closing = opening + sum((b.amount for b in bookings), D(0))
    entries = "".join(_entry(b, f"S{i:04d}") for i, b in enumerate(bookings, start=1))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{NS.format(message="053")}">\n'
        f"<BkToCstmrStmt><GrpHdr><MsgId>{statement_id}</MsgId><CreDtTm>{DAY}T22:30:00</CreDtTm></GrpHdr>\n"
        f"<Stmt><Id>{statement_id}</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>{DAY}T22:30:00</CreDtTm>"
        f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>\n"
        f"{_balance('OPBD', opening)}{_balance('CLBD', closing)}{entries}</Stmt>\n"
        "</BkToCstmrStmt></Document>\n"
    ).encode()


def pair(tenant=None):
    """A notification source and the statement source that re-reports it, through the service."""
    tenant = tenant or TenantFactory()
    notifications, _ = services.source_upsert(
        tenant=tenant, actor=ACTOR, name="bank-ntf", kind="statement", format="camt054"
    )
    statements, _ = services.source_upsert(
        tenant=tenant,
        actor=ACTOR,
        name="bank-stmt",
        kind="statement",
        format="camt053",
        re_reports="bank-ntf",
    )
    return notifications, statements


def ingest(source, content: bytes, name: str) -> IngestionBatch:
    return services.batch_ingest_file(
        tenant=source.tenant, actor=ACTOR, source=source, fileobj=io.BytesIO(content), file_name=name
    )


def active(tenant):
    return Record.objects.filter(tenant=tenant, status="active")


def by_servicer_ref(queryset) -> dict:
    return {r.attributes["acct_svcr_ref"]: r for r in queryset}


def test_the_statement_links_the_notified_entries_and_a_run_counts_each_entry_once():
    notifications, statements = pair()
    tenant = notifications.tenant
    ntf = ingest(notifications, camt054(INTRADAY), "camt054-1405.xml")
    assert (ntf.status, ntf.rows_accepted, ntf.rows_linked) == ("loaded", 4, 0)

    stmt = ingest(statements, camt053(INTRADAY + LATE), "camt053-eod.xml")
    assert (stmt.status, stmt.rows_total, stmt.rows_accepted, stmt.rows_rejected) == ("loaded", 7, 7, 0)
    assert stmt.rows_linked == 4
    assert stmt.computed_totals["linked"] == 4
    # Exactly one active record per economic entry: the four notified, the three only the statement has.
    live = by_servicer_ref(active(tenant))
    assert sorted(live) == sorted(b.servicer_ref for b in INTRADAY + LATE)
    assert {live[b.servicer_ref].source_id for b in INTRADAY} == {notifications.pk}
    assert {live[b.servicer_ref].source_id for b in LATE} == {statements.pk}
    linked = by_servicer_ref(Record.objects.filter(source=statements, status="linked"))
    assert sorted(linked) == sorted(b.servicer_ref for b in INTRADAY)
    for ref, record in linked.items():
        assert record.attributes["linked_to"] == live[ref].pk
        assert record.attributes["linked_batch"] == ntf.pk
        assert record.amount == live[ref].amount
    # The API and the audit trail show the count.
    client = APIClient()
    client.force_login(member(tenant, Role.ANALYST))
    client.defaults["HTTP_X_TENANT"] = tenant.slug
    body = client.get(f"/api/v1/ingestion/batches/{stmt.pk}/").json()
    assert (body["rows_linked"], body["control_totals"]["computed"]["linked"]) == (4, 4)
    assert AuditEvent.objects.get(action="batch.loaded", object_id=str(stmt.pk)).after["rows_linked"] == 4

    # The ledger books the seven entries; a run over the account (both bank sources on one side)
    # matches each entry once: the linked copies are outside its scope.
    ledger, _ = services.source_upsert(
        tenant=tenant, actor=ACTOR, name="gl-bank", kind="ledger", format="json"
    )
    records(
        ledger,
        *(
            {"business_date": DAY, "account": IBAN, "reference": b.end_to_end, "amount": str(b.amount)}
            for b in INTRADAY + LATE
        ),
    )
    definition = run_services.definition_create(
        tenant=tenant, actor=ACTOR, name="bank-rec", kind="two_way",
        sources={"left": [ledger], "right": [notifications, statements]},
        rules={"passes": [{"name": "exact_ref", "type": "exact", "keys": ["reference"]}]},
    )  # fmt: skip
    run = run_services.run_execute_inline(
        run_services.run_start(
            tenant=tenant, actor=ACTOR, definition=definition, trigger="cli", dispatch=False
        )
    )
    assert run.status == RunStatus.COMPLETED, run.error
    assert (run.records_in_scope, run.matched, run.in_breaks, run.excluded) == (14, 14, 0, 0)
    assert run.conservation["ok"] is True
    assert run.conservation["double_counted"] == 0


def test_a_late_notification_after_the_statement_is_linked_to_the_statement(tmp_path):
    notifications, statements = pair()
    stmt = ingest(statements, camt053(INTRADAY + LATE), "camt053-eod.xml")
    assert (stmt.rows_accepted, stmt.rows_linked) == (7, 0)
    path = tmp_path / "camt054-late.xml"
    path.write_bytes(camt054(INTRADAY))
    out = io.StringIO()
    call_command(
        "ingest", "--tenant", notifications.tenant.slug, "--source", "bank-ntf", str(path), stdout=out
    )
    assert "4 accepted (4 linked to the partner source's records), 0 rejected" in out.getvalue()
    late = IngestionBatch.objects.get(source=notifications)
    assert (late.status, late.rows_accepted, late.rows_linked) == ("loaded", 4, 4)
    live = by_servicer_ref(active(statements.tenant))
    assert len(live) == 7
    assert {r.source_id for r in live.values()} == {statements.pk}
    for record in Record.objects.filter(source=notifications):
        assert record.status == "linked"
        assert record.attributes["linked_to"] == live[record.attributes["acct_svcr_ref"]].pk


def test_a_re_report_with_another_amount_is_rejected_with_both_amounts_not_linked():
    notifications, statements = pair()
    ingest(notifications, camt054(INTRADAY), "camt054-1405.xml")
    corrected = Booking(**{**INTRADAY[2].__dict__, "amount": D("908.40")})  # the bank re-keyed it
    stmt = ingest(statements, camt053([*INTRADAY[:2], corrected, INTRADAY[3], *LATE]), "camt053-eod.xml")
    assert (stmt.status, stmt.rows_accepted, stmt.rows_rejected, stmt.rows_linked) == ("loaded", 6, 1, 3)
    rejection = Rejection.objects.get(batch=stmt)
    assert rejection.reason == "re_report_conflict"
    assert INTRADAY[2].servicer_ref in rejection.message
    assert "908.40" in rejection.message
    assert "980.40" in rejection.message
    assert "bank-ntf" in rejection.message
    assert stmt.computed_totals["rejections_by_reason"] == {"re_report_conflict": 1}
    # The notified amount stays the entry's one active record until someone decides.
    live = by_servicer_ref(active(statements.tenant))
    assert len(live) == 7
    assert live[INTRADAY[2].servicer_ref].amount == D("980.40")


def test_a_batch_booking_links_per_transaction_and_a_different_split_is_a_conflict():
    notifications, statements = pair()
    split = Booking("2024120900001400", D("3000.00"), "", "Sammelgutschrift", "SEPA batch",
                    transactions=(("E2E-A", D("1000.00")), ("E2E-B", D("2000.00"))))  # fmt: skip
    whole = Booking("2024120900001401", D("500.00"), "E2E-C", "Einzel", "one")
    ingest(notifications, camt054([split, whole]), "camt054.xml")
    assert active(statements.tenant).count() == 3
    # The statement reports the batch booking whole, and the single entry split in two.
    as_whole = Booking("2024120900001400", D("3000.00"), "E2E-AB", "Sammelgutschrift", "SEPA batch")
    as_split = Booking("2024120900001401", D("500.00"), "", "Einzel", "one",
                       transactions=(("E2E-C1", D("200.00")), ("E2E-C2", D("300.00"))))  # fmt: skip
    stmt = ingest(statements, camt053([as_whole, as_split]), "camt053.xml")
    assert (stmt.rows_accepted, stmt.rows_rejected, stmt.rows_linked) == (0, 3, 0)
    assert set(Rejection.objects.filter(batch=stmt).values_list("reason", flat=True)) == {
        "re_report_conflict"
    }
    assert all(
        "split into other transactions" in m for m in Rejection.objects.values_list("message", flat=True)
    )

    # The same split on both sides links transaction by transaction.
    other_ntf, other_stmt = pair()
    ingest(other_ntf, camt054([split]), "camt054.xml")
    stmt = ingest(other_stmt, camt053([split]), "camt053.xml")
    assert (stmt.rows_accepted, stmt.rows_linked) == (2, 2)
    links = {
        r.external_id.rsplit("/", 1)[1]: r.attributes["linked_to"] for r in Record.objects.filter(batch=stmt)
    }
    partner = {r.external_id.rsplit("/", 1)[1]: r.pk for r in Record.objects.filter(source=other_ntf)}
    assert links == partner


def test_reversing_the_notification_batch_makes_the_linked_statement_entries_active_again():
    notifications, statements = pair()
    tenant = notifications.tenant
    ntf = ingest(notifications, camt054(INTRADAY), "camt054-1405.xml")
    stmt = ingest(statements, camt053(INTRADAY + LATE), "camt053-eod.xml")
    assert stmt.rows_linked == 4

    services.batch_reverse(tenant=tenant, actor=ACTOR, batch=ntf, reason="sent to the wrong client")
    live = by_servicer_ref(active(tenant))
    assert len(live) == 7
    assert {r.source_id for r in live.values()} == {statements.pk}
    released = [live[b.servicer_ref] for b in INTRADAY]
    assert all("linked_to" not in r.attributes for r in released)
    assert {r.attributes["unlinked_from"] for r in released} == set(
        Record.objects.filter(batch=ntf).values_list("pk", flat=True)
    )
    assert AuditEvent.objects.get(action="batch.reverse", object_id=str(ntf.pk)).after["links_released"] == 4

    # The notification loaded again arrives after the statement now: it is the linked copy.
    again = ingest(notifications, camt054(INTRADAY), "camt054-1405.xml")
    assert (again.status, again.rows_linked) == ("loaded", 4)
    assert active(tenant).count() == 7

    # Reversing the statement now: the notification's copies linked to it become the entries' records.
    services.batch_reverse(tenant=tenant, actor=ACTOR, batch=stmt, reason="statement recalled")
    live = by_servicer_ref(active(tenant))
    assert sorted(live) == sorted(b.servicer_ref for b in INTRADAY)
    assert {r.batch_id for r in live.values()} == {again.pk}


def test_reversing_the_linked_statement_leaves_the_notifications_active():
    notifications, statements = pair()
    tenant = notifications.tenant
    ingest(notifications, camt054(INTRADAY), "camt054-1405.xml")
    stmt = ingest(statements, camt053(INTRADAY + LATE), "camt053-eod.xml")
    services.batch_reverse(tenant=tenant, actor=ACTOR, batch=stmt, reason="statement recalled")
    live = by_servicer_ref(active(tenant))
    assert sorted(live) == sorted(b.servicer_ref for b in INTRADAY)
    assert {r.source_id for r in live.values()} == {notifications.pk}
    assert not Record.objects.filter(source=statements).exclude(status="reversed").exists()


def test_re_reports_is_validated_in_apply_config_the_api_and_the_admin(admin_client):
    tenant = TenantFactory()
    services.source_upsert(tenant=tenant, actor=ACTOR, name="gl", kind="ledger", format="json")
    header = f"version: 1\ntenant: {tenant.slug}\nsources:\n"
    # A pair in one file, the named source listed after the one naming it; twice: nothing changes.
    document = load_document(
        header + "  - {name: eod, kind: statement, format: camt053, re_reports: intraday}\n"
        "  - {name: intraday, kind: statement, format: camt054}\n"
    )
    assert config_apply(document=document, actor=ACTOR)["sources"] == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
    }
    assert config_apply(document=document, actor=ACTOR)["sources"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 2,
    }
    eod = DataSource.objects.get(tenant=tenant, name="eod")
    assert eod.re_reports.name == "intraday"
    assert AuditEvent.objects.get(action="source.create", after__name="eod").after["re_reports"] == "intraday"

    statement = "kind: statement, format: camt053"
    cases = {
        f"{{name: x, {statement}, re_reports: x}}": "re_reports: a source cannot re-report itself",
        f"{{name: x, {statement}, re_reports: nowhere}}": "no source named 'nowhere'",
        f"{{name: x, {statement}, re_reports: gl}}": "gl is a ledger source",
        "{name: x, kind: ledger, format: json, re_reports: intraday}": "only a statement source re-reports",
        f"{{name: x, {statement}, re_reports: eod}}": "eod itself re-reports intraday",
        f"{{name: x, {statement}, re_reports: intraday}}": "intraday is already re-reported by eod",
        f"{{name: x, {statement}, re_reports: [intraday]}}": "re_reports: must be a source's name",
        "{name: intraday, kind: ledger, format: json}": "eod re-reports this source, which must stay",
    }
    for item, message in cases.items():
        with pytest.raises(ConfigError) as raised:
            config_apply(document=load_document(f"{header}  - {item}\n"), actor=ACTOR)
        assert any(message in error for error in raised.value.errors), (item, raised.value.errors)
    # Moving the pair in one file: eod leaves it, x takes it.
    moved = load_document(
        header + "  - {name: x, kind: statement, format: camt053, re_reports: intraday}\n"
        "  - {name: eod, kind: statement, format: camt053}\n"
    )
    assert config_apply(document=moved, actor=ACTOR)["sources"] == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
    }
    assert DataSource.objects.get(tenant=tenant, name="intraday").re_reported_by.name == "x"

    client = APIClient()
    client.force_login(member(tenant, Role.ADMIN))
    client.defaults["HTTP_X_TENANT"] = tenant.slug
    bad = client.post(
        "/api/v1/ingestion/sources/",
        {"name": "y", "kind": "statement", "format": "camt053", "re_reports": "y"},
        format="json",
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_source")
    assert "cannot re-report itself" in bad.json()["error"]["message"]
    intraday = client.get(
        f"/api/v1/ingestion/sources/{DataSource.objects.get(tenant=tenant, name='intraday').pk}/"
    )
    assert (intraday.json()["re_reports"], intraday.json()["re_reported_by"]) == (None, "x")

    form = {"tenant": tenant.pk, "name": "admin-made", "kind": "statement", "format": "camt053",
            "mapping": "{}", "connector": "{}", "is_active": "on",
            "re_reports": DataSource.objects.get(tenant=tenant, name="intraday").pk}  # fmt: skip
    response = admin_client.post("/admin/reconciliation/datasource/add/", form)
    assert response.status_code == 200
    assert "already re-reported by x" in response.content.decode()
    form["re_reports"] = DataSource.objects.get(tenant=tenant, name="eod").pk
    response = admin_client.post("/admin/reconciliation/datasource/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert DataSource.objects.get(tenant=tenant, name="admin-made").re_reports.name == "eod"


def test_a_statement_loaded_while_its_notification_loads_waits_for_it_and_links():
    """Loads of either source of a pair hold both sources' locks: a statement arriving while the
    notification's load is still open waits for its commit, then sees its records and links."""
    notifications, statements = pair()
    loaded, outcome = threading.Event(), {}

    def statement_load():
        loaded.wait(30)
        try:
            outcome["batch"] = ingest(statements, camt053(INTRADAY + LATE), "camt053-eod.xml")
        finally:
            connection.close()

    worker = threading.Thread(target=statement_load)
    worker.start()
    with transaction.atomic():
        ingest(notifications, camt054(INTRADAY), "camt054-1405.xml")
        loaded.set()
        time.sleep(1)  # the statement's load reaches the locks while this one is uncommitted
        assert "batch" not in outcome
    worker.join(60)
    assert outcome["batch"].rows_linked == 4
    assert active(notifications.tenant).count() == 7
