"""A SAR through the CTR's workflow: validate, four eyes, package (write-once, byte-identical with a
fixed clock), submit, acknowledgement → BSA ID → amendment (corrects/amends with the prior BSA ID)."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, transaction

from exceptions.models import Case
from filings import services
from filings.models import Filing, Package
from filings.tests.ctr_data import prepare_ctr
from filings.tests.factories import load_cash
from filings.tests.sar_data import CASH, NARRATIVE, NOW, prepare_sar
from filings.tests.test_workflow import _open_break
from filings.tests.workflow import LATER, People, ack_xml, activity_seqnums
from filings.validation import schema_sha256
from jfintech.common.errors import ApplicationError
from jfintech.tests.conftest import client_for

BASE = "/api/v1/filings/"
S = Filing.Status


@pytest.fixture
def people(configured):
    return People(configured)


def test_sar_four_eyes_package_ack_and_amendment_through_the_api(configured, people):
    ana, abe, ada = (
        client_for(u, tenant_slug=configured.slug)
        for u in (people.analyst_user, people.approver_user, people.admin_user)
    )
    load_cash(configured, CASH)
    _open_break(configured, "ACC-7", "9000.00")
    case_id = Case.objects.get(tenant=configured, account="ACC-7").pk
    fid = ana.post(f"{BASE}sar/refer/", {"case_ids": [case_id]}, format="json").json()["id"]

    # An incomplete draft fails validation with every violation, and stays a draft.
    invalid = ana.post(f"{BASE}{fid}/validate/").json()
    assert invalid["status"] == "draft"
    assert {e["code"] for e in invalid["errors"]} >= {"SAR-015", "SAR-018"}

    edit = {
        "narrative": NARRATIVE,
        "activity_subtypes": ["114", "1999"],
        "activity_other_texts": {"1999": "Cash split across two branches"},
        "period_start": "2026-11-18",
    }
    assert (
        ana.post(f"{BASE}{fid}/sar/", {**edit, "period_end": "2026-11-19"}, format="json").status_code == 200
    )
    valid = ana.post(f"{BASE}{fid}/validate/").json()
    assert (valid["status"], valid["errors"], valid["preparer"]) == ("validated", [], "ana")
    assert ana.post(f"{BASE}{fid}/request-approval/").json()["status"] == "pending_approval"

    # Four eyes: the preparer (an analyst) may not approve; an approver may.
    assert ana.post(f"{BASE}{fid}/approve/", {}, format="json").status_code == 403
    approved = abe.post(f"{BASE}{fid}/approve/", {}, format="json")
    assert (approved.status_code, approved.json()["approver"]) == (200, "abe")

    package = ana.post(f"{BASE}packages/", {"filing_ids": [fid]}, format="json")
    assert package.status_code == 201, package.json()
    pid, manifest = package.json()["id"], package.json()["manifest"]
    assert (package.json()["kind"], manifest["format"], manifest["schema_sha256"]) == (
        "sar",
        "SARX",
        schema_sha256("sar"),
    )
    xml = ana.get(f"{BASE}packages/{pid}/xml/").content
    assert hashlib.sha256(xml).hexdigest() == manifest["xml_sha256"]
    assert b"<fc2:FormTypeCode>SARX<" in xml
    assert ada.post(f"{BASE}packages/{pid}/submit/").status_code == 200

    (seq,) = activity_seqnums(Package.objects.get(pk=pid))
    ack = SimpleUploadedFile("ack.xml", ack_xml({seq: ("31000000000021", [])}), "application/xml")
    got = ada.post(f"{BASE}packages/{pid}/acknowledgements/", data={"file": ack}, format="multipart")
    assert (got.status_code, got.json()["summary"]["accepted"]) == (201, 1)
    assert ana.get(f"{BASE}{fid}/").json()["bsa_id"] == "31000000000021"

    amended = ana.post(f"{BASE}{fid}/amend/")
    assert amended.status_code == 200
    child = ana.get(f"{BASE}{amended.json()['id']}/").json()
    assert (child["kind"], child["prior_bsa_id"], child["version"], child["parent"]) == (
        "sar",
        "31000000000021",
        2,
        fid,
    )
    # The draft is carried into the correction, and the correction's XML says what it corrects.
    assert (child["narrative"], child["activity_subtypes"], child["activity_other_texts"]) == (
        NARRATIVE,
        ["114", "1999"],
        {"1999": "Cash split across two branches"},
    )
    assert [s["party_key"] for s in child["subjects"]] == ["C-2", "C-3"]
    assert ana.post(f"{BASE}{child['id']}/validate/").json()["status"] == "validated"
    child_xml = services.batch_xml(
        tenant=configured, filings=[Filing.objects.get(pk=child["id"])], filing_date=NOW.date()
    )[0]
    assert b"<fc2:EFilingPriorDocumentNumber>31000000000021<" in child_xml
    assert b"<fc2:CorrectsAmendsPriorReportIndicator>Y<" in child_xml
    assert b"<fc2:InitialReportIndicator></fc2:InitialReportIndicator>" in child_xml
    assert b"<fc2:OtherSuspiciousActivityTypeText>Cash split across two branches<" in child_xml
    assert [v["id"] for v in child["versions"]] == [fid, child["id"]]


def test_sar_package_is_write_once_and_regenerates_byte_identical(configured, people):
    filing = prepare_sar(configured, people.analyst)
    services.filing_validate(tenant=configured, actor=people.analyst, filing_id=filing.pk, now=NOW)
    services.filing_request_approval(tenant=configured, actor=people.analyst, filing_id=filing.pk)
    # No readiness gate on a SAR: its accounts' open breaks are what was referred (docs/filings.md).
    services.filing_approve(tenant=configured, actor=people.approver, filing_id=filing.pk, now=NOW)
    package = services.package_create(
        tenant=configured, actor=people.analyst, filing_ids=[filing.pk], now=LATER
    )
    assert (package.kind, package.manifest["generator_version"]) == ("sar", "filings.sar_xml/1")
    assert services.package_regenerate(tenant=configured, package=package) == bytes(package.xml)
    with pytest.raises(DatabaseError), transaction.atomic():
        Package.objects.filter(pk=package.pk).update(manifest={})


def test_ctrs_and_sars_are_packaged_separately(configured, people):
    ctr = prepare_ctr(configured, people.analyst)[0]
    filing = prepare_sar(configured, people.analyst)
    for f in (ctr, filing):
        services.filing_validate(tenant=configured, actor=people.analyst, filing_id=f.pk, now=NOW)
        services.filing_request_approval(tenant=configured, actor=people.analyst, filing_id=f.pk)
        Filing.objects.filter(pk=f.pk).update(status=S.APPROVED)
    with pytest.raises(ApplicationError) as exc:
        services.package_create(
            tenant=configured, actor=people.analyst, filing_ids=[ctr.pk, filing.pk], now=LATER
        )
    assert exc.value.code == "package_mixed_kinds"
