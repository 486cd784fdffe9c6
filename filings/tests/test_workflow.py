"""The filing workflow through the services: four eyes, the readiness gate and its override, the
write-once package, acknowledgements, amendments, deadlines."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from exceptions import services as exception_services
from exceptions.tests.factories import break_input
from filings import services
from filings.metrics import FILINGS_OVERDUE
from filings.models import Filing, Package
from filings.tests.ctr_data import NOW
from filings.tests.workflow import LATER, People, ack_xml, activity_seqnums, to_pending, to_submitted
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError

S = Filing.Status


@pytest.fixture
def people(configured):
    return People(configured)


def test_validate_stores_every_violation_and_moves_only_a_valid_filing(configured, people):
    filings = to_pending(configured, people)
    assert [f.status for f in filings] == [S.PENDING_APPROVAL] * 2
    assert all(f.errors == [] for f in filings)


def test_four_eyes_the_preparer_cannot_approve(configured, people):
    from jfintech.tenancy.models import Membership, Role

    filing = to_pending(configured, people)[0]  # prepared (validated) by ana, an analyst
    # ana becomes an approver: she still may not approve what she prepared.
    Membership.objects.filter(user=people.analyst_user, tenant=configured).update(role=Role.APPROVER)
    with pytest.raises(ApplicationError) as exc:
        services.filing_approve(tenant=configured, actor=people.analyst, filing_id=filing.pk)
    assert exc.value.code == "four_eyes"
    with pytest.raises(ApplicationError) as exc:  # an admin is not an approver
        services.filing_approve(tenant=configured, actor=people.admin, filing_id=filing.pk)
    assert exc.value.code == "permission_denied"
    assert Filing.objects.get(pk=filing.pk).status == S.PENDING_APPROVAL


def test_approval_is_audited_with_the_approver(configured, people):
    filing = to_pending(configured, people)[0]
    services.filing_approve(tenant=configured, actor=people.approver, filing_id=filing.pk, now=NOW)
    filing.refresh_from_db()
    assert (filing.status, filing.approver) == (S.APPROVED, "abe")
    event = AuditEvent.objects.get(action="filing.approve", object_id=str(filing.pk))
    assert event.actor_display == "abe"


def _open_break(tenant, account, amount):
    exception_services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="0" * 32,
        breaks=[break_input(account=account, amount=amount, currency="USD")],
        actor=Actor.for_system("reconciliation"),
    )


def test_readiness_gate_blocks_until_an_override_names_every_break(configured, people):
    c1 = to_pending(configured, people)[0]  # C-1's filing: account ACC-1
    _open_break(configured, "ACC-1", "500.00")  # above the threshold (100)
    _open_break(configured, "ACC-1", "50.00")  # below: does not block
    _open_break(configured, "ACC-9", "9000.00")  # another account: does not block
    with pytest.raises(ApplicationError) as exc:
        services.filing_approve(tenant=configured, actor=people.approver, filing_id=c1.pk)
    assert exc.value.code == "readiness_gate"
    (blocking,) = exc.value.extra["breaks"]
    assert (blocking["account"], Decimal(blocking["amount_at_stake"])) == ("ACC-1", Decimal("500"))
    with pytest.raises(ApplicationError):  # named, but no reason
        services.filing_approve(
            tenant=configured, actor=people.approver, filing_id=c1.pk, override_case_ids=[blocking["case_id"]]
        )
    services.filing_approve(
        tenant=configured,
        actor=people.approver,
        filing_id=c1.pk,
        override_case_ids=[blocking["case_id"]],
        override_reason="timing, cleared T+1",
    )
    c1.refresh_from_db()
    assert c1.status == S.APPROVED
    assert c1.gate_override["breaks"][0]["case_id"] == blocking["case_id"]
    assert AuditEvent.objects.filter(action="filing.gate_override", object_id=str(c1.pk)).count() == 1


def test_package_is_write_once_and_regenerates_byte_identical(configured, people):
    _filings, package = to_submitted(configured, people)
    assert package.manifest["xml_sha256"] == package.sha256
    assert package.manifest["rule_catalog_version"] == 3
    assert [f["approver"] for f in package.manifest["filings"]] == ["abe", "abe"]
    assert services.package_regenerate(tenant=configured, package=package) == bytes(package.xml)
    with pytest.raises(IntegrityError.__mro__[1]), transaction.atomic():  # DatabaseError from the trigger
        Package.objects.filter(pk=package.pk).update(manifest={})
    with pytest.raises(IntegrityError.__mro__[1]), transaction.atomic():
        Package.objects.filter(pk=package.pk).delete()


def test_acknowledgement_accepted_warning_and_rejected(configured, people):
    filings, package = to_submitted(configured, people)
    first, second = activity_seqnums(package)
    ack = ack_xml(
        {
            first: ("31000000000001", [("WARN", "C9", "RawZIPCode")]),
            second: ("31000000000002", [("FATAL", "C2", "RawEntityIndividualLastName")]),
        }
    )
    services.acknowledgement_receive(tenant=configured, actor=people.admin, package_id=package.pk, xml=ack)
    a, b = (Filing.objects.get(pk=f.pk) for f in filings)
    assert (a.status, a.bsa_id, a.errors[0]["code"]) == (S.ACCEPTED_WITH_WARNINGS, "31000000000001", "C9")
    assert (b.status, b.package_id, b.errors[0]["level"]) == (S.DRAFT, None, "FATAL")
    with pytest.raises(ApplicationError) as exc:
        services.acknowledgement_receive(
            tenant=configured, actor=people.admin, package_id=package.pk, xml=ack
        )
    assert exc.value.code == "ack_duplicate"


def test_amendment_carries_the_prior_bsa_id_and_supersedes_on_acceptance(configured, people):
    filings, package = to_submitted(configured, people)
    seqs = activity_seqnums(package)
    services.acknowledgement_receive(
        tenant=configured,
        actor=people.admin,
        package_id=package.pk,
        xml=ack_xml({seqs[0]: ("31000000000001", []), seqs[1]: ("31000000000002", [])}),
    )
    parent = Filing.objects.get(pk=filings[0].pk)
    assert parent.status == S.ACCEPTED
    child = services.filing_amend(tenant=configured, actor=people.analyst, filing_id=parent.pk, now=LATER)
    assert (child.parent_id, child.version, child.prior_bsa_id, child.status) == (
        parent.pk,
        2,
        "31000000000001",
        S.DRAFT,
    )
    services.filing_validate(tenant=configured, actor=people.analyst, filing_id=child.pk, now=LATER)
    services.filing_request_approval(tenant=configured, actor=people.analyst, filing_id=child.pk)
    services.filing_approve(tenant=configured, actor=people.approver, filing_id=child.pk, now=LATER)
    package2 = services.package_create(
        tenant=configured, actor=people.analyst, filing_ids=[child.pk], now=LATER
    )
    xml = bytes(package2.xml)
    assert b"<fc2:EFilingPriorDocumentNumber>31000000000001<" in xml
    assert b"<fc2:CorrectsAmendsPriorReportIndicator>Y<" in xml
    services.package_submit(tenant=configured, actor=people.admin, package_id=package2.pk)
    (seq,) = activity_seqnums(package2)
    services.acknowledgement_receive(
        tenant=configured,
        actor=people.admin,
        package_id=package2.pk,
        xml=ack_xml({seq: ("31000000000003", [])}),
    )
    parent.refresh_from_db()
    child.refresh_from_db()
    assert (parent.status, child.status, child.bsa_id) == (S.SUPERSEDED, S.ACCEPTED, "31000000000003")
    from filings.selectors import filing_chain

    assert [f.pk for f in filing_chain(filing=child)] == [parent.pk, child.pk]


def test_a_filing_keeps_the_party_version_it_was_prepared_from(configured, people):
    from filings.tests.factories import PARTIES, load_parties

    filing = to_pending(configured, people)[0]
    load_parties(configured, [{**PARTIES[0], "street": "99 New Street"}])
    subject = filing.subjects.get()
    assert (subject.party_version.version, subject.party_version.street) == (1, "2 Elm Street")
    xml, _ = services.batch_xml(tenant=configured, filings=[filing], filing_date=NOW.date())
    assert b"2 Elm Street" in xml
    assert b"99 New Street" not in xml


def test_deadline_reminders_once_a_day_and_the_overdue_metric(configured, people):
    filings = to_pending(configured, people)  # due 2026-12-05
    assert services.deadlines_remind(today=date(2026, 11, 30))["reminded"] == 0
    assert services.deadlines_remind(today=date(2026, 12, 3))["reminded"] == 2
    assert services.deadlines_remind(today=date(2026, 12, 3))["reminded"] == 0
    result = services.deadlines_remind(today=date(2026, 12, 6))
    assert result == {"reminded": 2, "overdue": {"ctr": 2, "sar": 0}}
    assert FILINGS_OVERDUE.labels(kind="ctr")._value.get() == 2
    assert len(filings) == 2


def test_a_package_is_limited_in_size(configured, people, monkeypatch):
    filings = to_pending(configured, people)
    for f in filings:
        services.filing_approve(tenant=configured, actor=people.approver, filing_id=f.pk, now=NOW)
    monkeypatch.setattr(services, "MAX_PACKAGE_FILINGS", 1)
    with pytest.raises(ApplicationError) as exc:
        services.package_create(tenant=configured, actor=people.analyst, filing_ids=[f.pk for f in filings])
    assert exc.value.code == "package_too_large"
    assert not Package.objects.filter(tenant=configured).exists()
