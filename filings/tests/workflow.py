"""Helpers the workflow, API and admin tests share: a configured tenant with people in each role,
CTR filings taken to a given state through the services, and FinCEN acknowledgements."""

from datetime import UTC, datetime

from filings import services
from filings.models import Filing
from filings.tests.ctr_data import NOW, prepare_ctr
from filings.tests.factories import member
from jfintech.audit import Actor
from jfintech.tenancy.models import Role

LATER = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class People:
    def __init__(self, tenant):
        self.analyst_user = member(tenant, Role.ANALYST, username="ana")
        self.approver_user = member(tenant, Role.APPROVER, username="abe")
        self.admin_user = member(tenant, Role.ADMIN, username="ada")
        self.analyst = Actor.for_user(self.analyst_user)
        self.approver = Actor.for_user(self.approver_user)
        self.admin = Actor.for_user(self.admin_user)


def to_pending(tenant, people) -> list[Filing]:
    filings = prepare_ctr(tenant, people.analyst)
    for f in filings:
        services.filing_validate(tenant=tenant, actor=people.analyst, filing_id=f.pk, now=NOW)
        services.filing_request_approval(tenant=tenant, actor=people.analyst, filing_id=f.pk)
    return [Filing.objects.get(pk=f.pk) for f in filings]


def to_submitted(tenant, people):
    filings = to_pending(tenant, people)
    for f in filings:
        services.filing_approve(tenant=tenant, actor=people.approver, filing_id=f.pk, now=NOW)
    package = services.package_create(
        tenant=tenant, actor=people.analyst, filing_ids=[f.pk for f in filings], now=LATER
    )
    services.package_submit(tenant=tenant, actor=people.admin, package_id=package.pk, now=LATER)
    return filings, package


def ack_xml(entries: dict[int, tuple[str, list[tuple[str, str, str]]]]) -> bytes:
    """FinCEN's acknowledgement: {activity SeqNum: (BSA ID, [(level, code, element)])}."""
    parts = []
    for seq, (bsa_id, errors) in entries.items():
        errs = "".join(
            f"<fc2:EFilingActivityErrorXML><fc2:ErrorContextText>Activity/{el}</fc2:ErrorContextText>"
            f"<fc2:ErrorElementNameText>{el}</fc2:ErrorElementNameText><fc2:ErrorLevelText>{level}</fc2:ErrorLevelText>"
            f"<fc2:ErrorText>problem with {el}</fc2:ErrorText><fc2:ErrorTypeCode>{code}</fc2:ErrorTypeCode>"
            "</fc2:EFilingActivityErrorXML>"
            for level, code, el in errors
        )
        parts.append(
            f'<fc2:EFilingActivityXML SeqNum="{seq}"><fc2:BSAID>{bsa_id}</fc2:BSAID>'
            f"{errs}</fc2:EFilingActivityXML>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><fc2:EFilingSubmissionXML xmlns:fc2="www.fincen.gov/base">'
        + "".join(parts)
        + "</fc2:EFilingSubmissionXML>"
    ).encode()


def activity_seqnums(package) -> list[int]:
    return services._activity_seqnums(bytes(package.xml))
