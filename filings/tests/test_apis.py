"""The workflow through the API: data in, prepare, validate, four eyes, the readiness gate and its
override, package, submit, acknowledgement → BSA ID → amendment."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from filings.models import Filing
from filings.tests.ctr_data import CASH
from filings.tests.factories import data_source
from filings.tests.test_workflow import _open_break
from filings.tests.workflow import People, ack_xml, activity_seqnums
from jfintech.tests.conftest import client_for

BASE = "/api/v1/filings/"


@pytest.fixture
def people(configured):
    return People(configured)


def api(user, tenant):
    return client_for(user, tenant_slug=tenant.slug)


def test_the_whole_loop_through_the_api(configured, people):
    ana, abe, ada = (
        api(u, configured) for u in (people.analyst_user, people.approver_user, people.admin_user)
    )
    # Data in through ingestion's push to the tenant's cash_transactions source (the admin loads;
    # the analyst may not).
    push = f"/api/v1/ingestion/sources/{data_source(configured, 'cash_transactions').pk}/records/"
    assert ana.post(push, {"records": CASH}, format="json").status_code == 403
    pushed = ada.post(push, {"records": CASH}, format="json")
    assert (pushed.status_code, pushed.json()["rows_accepted"]) == (201, 5)
    again = ada.post(push, {"records": CASH}, format="json")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")

    prepared = ana.post(f"{BASE}ctr/prepare/", {"first": "2026-11-20"}, format="json")
    assert (prepared.status_code, prepared.json()["filings"]) == (201, 2)
    by_subject = {f["subject_key"]: f["id"] for f in ana.get(BASE).json()["results"]}
    ids = [by_subject["C-1"], by_subject["C-2"]]
    for i in ids:
        assert ana.post(f"{BASE}{i}/validate/").json()["status"] == "validated"
        assert ana.post(f"{BASE}{i}/request-approval/").json()["status"] == "pending_approval"

    # Four eyes: the analyst has no approve permission; the approver may.
    assert ana.post(f"{BASE}{ids[0]}/approve/", {}, format="json").status_code == 403
    # Readiness gate on C-1's account, then the override naming the break.
    _open_break(configured, "ACC-1", "750.00")
    blocked = abe.post(f"{BASE}{ids[0]}/approve/", {}, format="json")
    assert (blocked.status_code, blocked.json()["error"]["code"]) == (409, "readiness_gate")
    case_id = blocked.json()["error"]["details"]["breaks"][0]["case_id"]
    ok = abe.post(
        f"{BASE}{ids[0]}/approve/",
        {"override_case_ids": [case_id], "override_reason": "timing"},
        format="json",
    )
    assert (ok.status_code, ok.json()["status"], ok.json()["gate_override"]["reason"]) == (
        200,
        "approved",
        "timing",
    )
    assert abe.post(f"{BASE}{ids[1]}/approve/", {}, format="json").json()["status"] == "approved"

    package = ana.post(f"{BASE}packages/", {"filing_ids": ids}, format="json")
    assert package.status_code == 201, package.json()
    pid = package.json()["id"]
    xml = ana.get(f"{BASE}packages/{pid}/xml/")
    import hashlib

    assert hashlib.sha256(xml.content).hexdigest() == package.json()["manifest"]["xml_sha256"]
    assert ada.post(f"{BASE}packages/{pid}/submit/").status_code == 200

    from filings.models import Package

    seqs = activity_seqnums(Package.objects.get(pk=pid))
    ack = ack_xml({seqs[0]: ("31000000000011", []), seqs[1]: ("31000000000012", [])})
    upload = SimpleUploadedFile("ack.xml", ack if isinstance(ack, bytes) else ack.encode(), "application/xml")
    got = ada.post(f"{BASE}packages/{pid}/acknowledgements/", data={"file": upload}, format="multipart")
    assert (got.status_code, got.json()["summary"]["accepted"]) == (201, 2)
    detail = ana.get(f"{BASE}{ids[0]}/").json()
    assert (detail["status"], detail["bsa_id"]) == ("accepted", "31000000000011")
    assert [row["external_id"] for row in detail["lineage"]] == ["T1", "T2"]

    amended = ana.post(f"{BASE}{ids[0]}/amend/")
    assert amended.status_code == 200
    child = ana.get(f"{BASE}{amended.json()['id']}/").json()
    assert (child["prior_bsa_id"], child["version"], child["parent"]) == ("31000000000011", 2, ids[0])
    assert [v["id"] for v in child["versions"]] == [ids[0], child["id"]]


def test_rule_catalog(configured, people):
    rules = api(people.analyst_user, configured).get(f"{BASE}rules/").json()
    assert rules["version"] == 3
    assert {"CTR-001", "CTR-016"} <= {r["code"] for r in rules["rules"]}


def test_another_tenants_filing_is_404(configured, people):
    from filings.tests.factories import TenantFactory, member
    from jfintech.tenancy.models import Role

    other = TenantFactory(slug="other-bank")
    stranger = member(other, Role.ANALYST, username="stranger")
    mine = Filing.objects.create(
        tenant=configured,
        kind="ctr",
        subject_key="C-1",
        period_start="2026-11-20",
        period_end="2026-11-20",
        due_date="2026-12-05",
        preparer="x",
        prepared_at="2026-11-25T00:00:00Z",
    )
    assert api(stranger, other).get(f"{BASE}{mine.pk}/").status_code == 404
