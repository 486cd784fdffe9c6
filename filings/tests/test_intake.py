"""Parties and cash transactions in, through ingestion's API (sources of kind parties and
cash_transactions): every row accepted or rejected with its reason, a file loaded once, the
truncated and empty file rules, amendments as versions."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from filings.models import CashTransaction, PartyVersion
from filings.tests.factories import LOADER, PARTIES, cash, data_source, member
from jfintech.tenancy.models import Role
from jfintech.tests.conftest import client_for
from reconciliation.models import IngestionBatch, Rejection

SOURCES = "/api/v1/ingestion/sources/"
BATCHES = "/api/v1/ingestion/batches/"

CSV = (
    "txn,date,branch,dir,amount,ccy,acct,who,for\n"
    "T1,2026-11-20,MAIN,in,6000.00,USD,ACC-1,C-1,\n"
    "T2,2026-11-31,MAIN,in,1.00,USD,ACC-1,C-1,\n"  # no such date
    "T3,2026-11-20,MAIN,up,1.00,USD,ACC-1,C-1,\n"
    "T4,2026-11-20,MAIN,in,12abc,USD,ACC-1,C-1,\n"
    "T5,2026-11-20,MAIN,in,5.00,XXY,ACC-1,C-1,\n"
    "T6,2026-11-20,NOWHERE,in,5.00,USD,ACC-1,C-1,\n"
    "T7,2026-11-20,MAIN,in\n"
    "T1,2026-11-20,MAIN,in,7000.00,USD,ACC-1,C-1,\n"  # repeated in the file
    "T8,2026-11-20,EAST,out,250.00,EUR,ACC-2,C-2,C-3\n"
    ",2026-11-20,MAIN,in,5.00,USD,ACC-1,C-1,\n"
)
COLUMNS = {
    "external_id": "txn",
    "business_date": "date",
    "branch_code": "branch",
    "direction": "dir",
    "amount": "amount",
    "currency": "ccy",
    "account": "acct",
    "conducted_by": "who",
    "on_behalf_of": "for",
}


@pytest.fixture
def admin(configured):
    return client_for(member(configured, Role.ADMIN, username="ada"), tenant_slug=configured.slug)


def _csv_source(admin, kind="cash_transactions", columns=COLUMNS) -> int:
    body = {"name": f"{kind.replace('_', '-')}-csv", "kind": kind, "format": "csv"}
    resp = admin.post(SOURCES, {**body, "mapping": {"columns": columns}}, format="json")
    assert resp.status_code == 201, resp.json()
    assert resp.json()["kind"] == kind
    return resp.json()["id"]


def _upload(client, source_id: int, data: bytes, name="cash.csv"):
    return client.post(
        f"{SOURCES}{source_id}/batches/", {"file": SimpleUploadedFile(name, data)}, format="multipart"
    )


def _push(client, source_id: int, records: list):
    return client.post(f"{SOURCES}{source_id}/records/", {"records": records}, format="json")


def test_csv_rows_accepted_or_rejected_with_reasons_and_line_numbers(configured, admin):
    resp = _upload(admin, _csv_source(admin), CSV.encode())
    batch = resp.json()
    assert resp.status_code == 201, batch
    assert (batch["status"], batch["rows_total"], batch["rows_accepted"], batch["rows_rejected"]) == (
        "loaded",
        10,
        2,
        8,
    )
    rejections = admin.get(f"{BATCHES}{batch['id']}/rejections/").json()["results"]
    assert {r["line_no"]: r["reason"] for r in rejections} == {
        3: "malformed_date",
        4: "malformed_direction",
        5: "malformed_amount",
        6: "unknown_currency",
        7: "unknown_branch",
        8: "malformed_row",
        9: "duplicate_key",
        11: "missing_field",
    }
    by_line = {r["line_no"]: r for r in rejections}
    assert by_line[9]["message"] == "external id T1 already appears at line 2 of this file"
    assert by_line[9]["raw"] == "T1,2026-11-20,MAIN,in,7000.00,USD,ACC-1,C-1,"
    assert batch["control_totals"]["computed"]["rejections_by_reason"]["duplicate_key"] == 1
    t8 = CashTransaction.objects.get(external_id="T8")
    assert (t8.on_behalf_of, t8.detail_code, t8.currency, t8.batch_id) == ("C-3", "56", "EUR", batch["id"])
    assert CashTransaction.objects.get(external_id="T1").amount == 6000


def test_the_same_file_twice_is_a_duplicate_batch(configured, admin):
    source_id = _csv_source(admin)
    first = _upload(admin, source_id, CSV.encode()).json()
    again = _upload(admin, source_id, CSV.encode(), name="renamed.csv")
    assert (again.status_code, again.json()["status"], again.json()["duplicate_of"]) == (
        200,
        "duplicate",
        first["id"],
    )
    assert CashTransaction.objects.count() == 2
    assert Rejection.objects.filter(batch_id=again.json()["id"]).count() == 0


def test_a_truncated_or_empty_file_loads_nothing(configured, admin):
    source_id = _csv_source(admin)
    cut = CSV.encode()[:-1]  # the last line break is missing: cut off?
    resp = _upload(admin, source_id, cut)
    assert (resp.status_code, resp.json()["reject_code"], resp.json()["rows_total"]) == (
        422,
        "truncated_file",
        0,
    )
    header_only = CSV.split("\n", 1)[0].encode() + b"\n"
    resp = _upload(admin, source_id, header_only)
    assert (resp.status_code, resp.json()["reject_code"]) == (422, "empty_file")
    parties_id = data_source(configured, "parties").pk
    resp = _push(admin, parties_id, [])
    assert (resp.status_code, resp.json()["reject_code"]) == (422, "empty_file")
    cut_json = b'[{"party_key": "C-7", "last_name": "Cut'  # a JSON file uploaded cut off
    resp = _upload(admin, parties_id, cut_json, name="parties.json")
    assert (resp.status_code, resp.json()["reject_code"]) == (422, "truncated_file")
    assert not PartyVersion.objects.filter(party_key="C-7").exists()
    assert CashTransaction.objects.count() == 0
    assert not Rejection.objects.exists()


def test_a_push_with_every_row_rejected_is_a_rejected_batch(configured, admin):
    source = data_source(configured, "cash_transactions")
    records = [
        cash("T1", "-5"),
        {**cash("T2", "5"), "colour": "red"},
        "not a record",
        cash("T3", "5", version="²"),
    ]
    resp = _push(admin, source.pk, records)
    batch = resp.json()
    assert (resp.status_code, batch["status"], batch["reject_code"]) == (422, "rejected", "all_rows_rejected")
    assert (batch["rows_total"], batch["rows_rejected"]) == (4, 4)
    assert [(r["line_no"], r["reason"]) for r in batch["first_rejections"]] == [
        (1, "malformed_amount"),
        (2, "malformed_row"),
        (3, "malformed_row"),
        (4, "malformed_version"),
    ]
    assert "unknown fields: colour" in batch["first_rejections"][1]["message"]


def test_amendments_version_and_stale_versions_are_refused(configured, admin):
    source_id = data_source(configured, "cash_transactions").pk
    assert _push(admin, source_id, [cash("T1", "100", version="1")]).status_code == 201
    amended = _push(admin, source_id, [cash("T1", "200", amend=True), cash("T2", "5", version="1")])
    assert (amended.status_code, amended.json()["rows_accepted"]) == (201, 2)
    stale = _push(admin, source_id, [cash("T1", "300", version="2")]).json()
    assert (stale["status"], stale["first_rejections"][0]["reason"]) == ("rejected", "duplicate_key")
    assert stale["first_rejections"][0]["message"] == "T1 version 2 is already loaded"
    versions = CashTransaction.objects.filter(external_id="T1").order_by("version")
    assert [(v.version, v.is_current, str(v.amount)) for v in versions] == [
        (1, False, "100.000000"),
        (2, True, "200.000000"),
    ]
    assert versions[1].batch_id == amended.json()["id"]


def test_party_changes_are_new_versions_identical_rows_are_not(configured, admin):  # PARTIES loaded
    source_id = data_source(configured, "parties").pk
    resp = _push(admin, source_id, [{**PARTIES[0], "occupation": "Joiner"}, PARTIES[1]])
    assert (resp.status_code, resp.json()["rows_accepted"], resp.json()["rows_rejected"]) == (201, 2, 0)
    versions = PartyVersion.objects.filter(party_key="C-1").order_by("version")
    assert [(v.version, v.is_current, v.occupation) for v in versions] == [
        (1, False, "Carpenter"),
        (2, True, "Joiner"),
    ]
    assert versions[1].batch_id == resp.json()["id"]
    assert PartyVersion.objects.filter(party_key="C-2").count() == 1


def test_parties_by_csv_with_the_sources_column_mapping(configured, admin):
    columns = {"party_key": "Customer", "last_name": "Name", "country": "Ctry"}
    source_id = _csv_source(admin, "parties", columns)
    data = b"Customer,Name,Ctry\nC-9,Example Corp,US\nC-9,Example Corp,US\nC-10,Nowhere Ltd,QQ\n"
    batch = _upload(admin, source_id, data, name="parties.csv").json()
    assert (batch["rows_accepted"], batch["rows_rejected"]) == (1, 2)
    assert [(r["line_no"], r["reason"]) for r in batch["first_rejections"]] == [
        (3, "duplicate_key"),
        (4, "unknown_country"),
    ]
    assert PartyVersion.objects.get(party_key="C-9").last_name == "Example Corp"


def test_source_configuration_for_these_kinds_is_checked(configured, admin):
    def refused(body):
        resp = admin.post(SOURCES, {"name": "bad", **body}, format="json")
        assert resp.status_code == 400, resp.json()
        return resp.json()["error"]["code"], resp.json()["error"]["message"]

    assert refused({"kind": "parties", "format": "camt053"})[0] == "invalid_source"
    code, message = refused({"kind": "parties", "format": "csv", "mapping": {"columns": {"party_key": "K"}}})
    assert (code, message) == ("invalid_mapping", "columns must map last_name")
    isin = {"columns": {"isin": "I"}}
    code, message = refused({"kind": "cash_transactions", "format": "csv", "mapping": isin})
    assert code == "invalid_mapping"
    assert "unknown fields in columns: isin" in message
    code, message = refused({"kind": "parties", "format": "json", "mapping": {"date_format": "%d/%m/%Y"}})
    assert code == "invalid_mapping"
    assert "not date_format" in message


def test_integration_role_may_load_an_analyst_may_not_and_batches_are_not_reversed(configured, admin):
    source_id = data_source(configured, "cash_transactions").pk
    analyst = client_for(member(configured, Role.ANALYST, username="ana2"), tenant_slug=configured.slug)
    assert _push(analyst, source_id, [cash("T1", "5")]).status_code == 403
    integrator = member(configured, Role.INTEGRATION, username="int")
    integration = client_for(integrator, tenant_slug=configured.slug)
    loaded = _push(integration, source_id, [cash("T1", "5")])
    assert loaded.status_code == 201
    resp = admin.post(f"{BATCHES}{loaded.json()['id']}/reverse/", {"reason": "wrong"}, format="json")
    assert (resp.status_code, resp.json()["error"]["code"]) == (409, "invalid_state")
    assert IngestionBatch.objects.get(pk=loaded.json()["id"]).status == "loaded"
    assert CashTransaction.objects.filter(external_id="T1", is_current=True).count() == 1


def test_a_run_definition_cannot_read_these_sources(configured):
    from jfintech.common.errors import ApplicationError
    from reconciliation.runs.tests.factories import definition

    with pytest.raises(ApplicationError) as exc:
        definition(configured, left_kind="cash_transactions")
    assert exc.value.code == "invalid_source_kind"


def test_apply_config_configures_a_cash_transactions_source(configured):
    from reconciliation.ingestion.config_file import config_apply

    doc = {
        "version": 1,
        "tenant": configured.slug,
        "sources": [{"name": "cash-desk", "kind": "cash_transactions", "mapping": {"columns": COLUMNS}}],
    }
    assert config_apply(document=doc, actor=LOADER)["sources"] == {"created": 1, "updated": 0, "unchanged": 0}
    admin = client_for(member(configured, Role.ADMIN, username="ada"), tenant_slug=configured.slug)
    source_id = {s["name"]: s["id"] for s in admin.get(SOURCES).json()["results"]}["cash-desk"]
    assert _upload(admin, source_id, CSV.encode()).json()["rows_accepted"] == 2


def test_apply_config_filings_section_is_validated_whole_and_idempotent(tenant):
    from filings.models import Branch, FilingInstitution
    from filings.tests.factories import BRANCHES, INSTITUTION
    from reconciliation.ingestion.config_file import ConfigError, config_apply

    inst = {k: str(v) for k, v in INSTITUTION.items()}
    doc = {
        "version": 1,
        "tenant": tenant.slug,
        "filings": {
            "institution": inst,
            "branches": BRANCHES,
            "fx_rates": [
                {"currency": "EUR", "business_date": "2026-11-20", "usd_per_unit": "1.1", "source": "ECB"}
            ],
        },
    }
    assert config_apply(document=doc, actor=LOADER)["filings"] == {"created": 4, "updated": 0, "unchanged": 0}
    assert config_apply(document=doc, actor=LOADER)["filings"] == {"created": 0, "updated": 0, "unchanged": 4}
    bad = {
        **doc,
        "filings": {
            "branches": [{"code": "X"}],
            "fx_rates": [{"currency": "EUR", "business_date": "nope", "usd_per_unit": "1", "source": "s"}],
        },
    }
    with pytest.raises(ConfigError) as exc:
        config_apply(document=bad, actor=LOADER)
    assert any("branches[0].name" in e for e in exc.value.errors)
    assert any("fx_rates[0].business_date" in e for e in exc.value.errors)
    assert (FilingInstitution.objects.count(), Branch.objects.count()) == (1, 2)


@pytest.mark.django_db(transaction=True)
def test_two_sources_of_one_kind_decide_a_partys_version_one_load_at_a_time(monkeypatch):
    """Ingestion locks a source; two parties sources of a tenant are serialised by the kind's own
    lock: the second load waits, then finds the first's version current (without the lock it
    created a version 1 too, and failed on the unique index once the first committed)."""
    import dataclasses
    import threading
    import time

    from django.db import connection

    from filings.tests.factories import TenantFactory
    from reconciliation.ingestion import kinds
    from reconciliation.ingestion.services import batch_ingest_records, source_upsert

    tenant = TenantFactory(slug="race-bank")
    first = data_source(tenant, "parties")
    second, _ = source_upsert(tenant=tenant, actor=LOADER, name="parties-2", kind="parties", format="json")
    loader = kinds.loader_for("parties")
    inside = threading.Event()

    def slow_in_thread(**kwargs):  # the first load holds its transaction open a while
        refused = loader.load(**kwargs)
        if threading.current_thread().name == "first":
            inside.set()
            time.sleep(1.0)
        return refused

    monkeypatch.setitem(kinds._LOADERS, "parties", dataclasses.replace(loader, load=slow_in_thread))
    outcome = {}

    def load_first():
        try:
            outcome["first"] = batch_ingest_records(
                tenant=tenant, actor=LOADER, source=first, records=[PARTIES[0]]
            )
        finally:
            connection.close()

    thread = threading.Thread(target=load_first, name="first")
    thread.start()
    assert inside.wait(30)
    again = batch_ingest_records(tenant=tenant, actor=LOADER, source=second, records=[PARTIES[0]])
    thread.join(30)
    assert (outcome["first"].status, again.status, again.rows_accepted) == ("loaded", "loaded", 1)
    assert list(PartyVersion.objects.filter(tenant=tenant).values_list("party_key", "version")) == [
        ("C-1", 1)
    ]


def test_a_cash_file_uploaded_in_the_admin_lands_with_its_rejections_and_is_not_reversed(
    configured, client, django_user_model
):
    """The desk's way in: the data source's upload page, the batch page with its rejections, and
    the reverse action refusing a cash batch with the reason (its rows may be in a filing)."""
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    source = data_source(configured, "cash_transactions", format="csv", mapping={"columns": COLUMNS})
    upload = {"file": SimpleUploadedFile("cash.csv", CSV.encode()), "format": "auto"}
    response = client.post(f"/admin/reconciliation/datasource/{source.pk}/upload/", upload)
    batch = IngestionBatch.objects.get(source=source)
    assert response.status_code == 302, response.content.decode()[:500]
    assert (batch.status, batch.rows_total) == ("loaded", 10)
    assert batch.rows_accepted + batch.rows_rejected == batch.rows_total
    assert set(CashTransaction.objects.filter(batch=batch).values_list("external_id", flat=True)) == {
        "T1",
        "T8",
    }
    page = client.get(response.url).content.decode()
    for reason in ("malformed_date", "malformed_direction", "malformed_amount", "unknown_branch"):
        assert reason in page, reason

    reverse = {"action": "reverse_batches", "_selected_action": [batch.pk], "apply": "1", "reason": "wrong"}
    answered = client.post("/admin/reconciliation/ingestionbatch/", reverse, follow=True).content.decode()
    batch.refresh_from_db()
    assert batch.status == "loaded"
    assert f"Batch {batch.pk}:" in answered
    assert CashTransaction.objects.filter(batch=batch).count() == 2
