"""The SAR batch XML (FormTypeCode SARX), from plain inputs: deterministic, like the CTR batch (the
same inputs and clock give the same bytes). It shares the CTR generator's writer (SeqNum, names,
addresses, identifications) and its rounding (whole dollars, cents rounded up).
``filings.selectors.sar_activities`` builds the inputs from SAR filings.

Parties per activity (FinCEN SAR XML user guide, "Party"): transmitter (35) and its contact (37),
the filing institution (30), its contact office (8), the financial institution where the activity
occurred (34, with the branches involved as 46 under a PartyAssociation), and the subjects (33,
or one subject with AllCriticalSubjectInformationUnavailableIndicator when none is identified).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from lxml import etree

from filings.ctr_xml import (
    Institution,
    Location,
    Person,
    _Writer,
    dollars,
    institution_address,
    institution_parties,
)
from filings.validation import NS, activity_type
from filings.validation import SAR_SUBJECT_CODE as SUBJECT

GENERATOR_VERSION = "filings.sar_xml/1"
NARRATIVE_BLOCK = 4000  # RestrictString4000; five blocks cover SAR_NARRATIVE_LIMIT (17,000)


@dataclass(frozen=True)
class SarSubject:
    person: Person | None
    accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SarActivity:
    first: date
    last: date
    amount: Decimal | None  # USD; None: amount unknown, 0: no amount involved
    subtypes: tuple[str, ...]
    narrative: str
    subjects: tuple[SarSubject, ...]
    branches: tuple[Location, ...] = ()
    prior_bsa_id: str = ""
    amends: bool = False  # corrects/amends the prior report; a prior BSA ID without it: continuing
    other_texts: dict[str, str] = field(default_factory=dict)  # "Other" subtype → its description


def narrative_blocks(text: str) -> list[str]:
    """Cut at fixed positions: FinCEN joins the blocks back in ActivityNarrativeSequenceNumber order."""
    text = text.strip()
    return [text[i : i + NARRATIVE_BLOCK] for i in range(0, len(text), NARRATIVE_BLOCK)] or [""]


def _activity(w: _Writer, root, a: SarActivity, inst: Institution, filing_date: date) -> int:
    """Write one activity; return its whole-dollar suspicious amount (0 when none)."""
    activity = w.node(root, "Activity", seq=True)
    if a.prior_bsa_id:
        w.leaf(activity, "EFilingPriorDocumentNumber", a.prior_bsa_id)
    w.leaf(activity, "FilingDateText", filing_date.strftime("%Y%m%d"))
    continuing = bool(a.prior_bsa_id) and not a.amends
    assoc = w.node(activity, "ActivityAssociation", seq=True)
    w.leaf(assoc, "ContinuingActivityReportIndicator", "Y" if continuing else "")
    w.leaf(assoc, "CorrectsAmendsPriorReportIndicator", "Y" if a.amends else "")
    w.leaf(assoc, "InitialReportIndicator", "" if a.prior_bsa_id else "Y")
    w.leaf(assoc, "JointReportIndicator", "")

    institution_parties(w, activity, inst)

    head = [] if a.branches else [("NoBranchActivityInvolvedIndicator", "Y")]
    where = w.party(activity, "34", head=[*head, ("PrimaryRegulatorTypeCode", inst.regulator_code)])
    w.name(where, full=inst.name)
    w.address(where, **institution_address(inst))
    w.ident(where, "2", inst.ein)
    if inst.rssd:
        w.ident(where, "14", inst.rssd)
    w.organization(where, inst.organization_type)
    for branch in a.branches:
        link = w.node(where, "PartyAssociation", seq=True)
        party = w.node(link, "Party", seq=True)
        w.leaf(party, "ActivityPartyTypeCode", "46")
        w.address(
            party,
            street=branch.street,
            city=branch.city,
            state=branch.state,
            zip_code=branch.zip_code,
            country=branch.country,
        )
        if branch.rssd:
            w.ident(party, "14", branch.rssd)

    for s in a.subjects or (SarSubject(person=None),):
        _subject(w, activity, s, inst)

    amount = dollars(a.amount) if a.amount else 0
    suspicious = w.node(activity, "SuspiciousActivity", seq=True)
    if a.amount is None:
        w.leaf(suspicious, "AmountUnknownIndicator", "Y")
    elif not amount:
        w.leaf(suspicious, "NoAmountInvolvedIndicator", "Y")
    w.leaf(suspicious, "SuspiciousActivityFromDateText", a.first.strftime("%Y%m%d"))
    w.leaf(suspicious, "SuspiciousActivityToDateText", a.last.strftime("%Y%m%d"))
    if amount:
        w.leaf(suspicious, "TotalSuspiciousAmountText", str(amount))
    for code in a.subtypes:
        classification = w.node(suspicious, "SuspiciousActivityClassification", seq=True)
        # Written as the draft holds it (the service gives every "Other" code, and only those, a
        # description); SAR-023 is the check. The schema puts it before the subtype.
        if code in a.other_texts:
            w.leaf(classification, "OtherSuspiciousActivityTypeText", a.other_texts[code])
        w.leaf(classification, "SuspiciousActivitySubtypeID", code)
        w.leaf(classification, "SuspiciousActivityTypeID", activity_type(code))

    for number, block in enumerate(narrative_blocks(a.narrative), start=1):
        narrative = w.node(activity, "ActivityNarrativeInformation", seq=True)
        w.leaf(narrative, "ActivityNarrativeSequenceNumber", str(number))
        w.leaf(narrative, "ActivityNarrativeText", block)
    return amount


def _subject(w: _Writer, activity, s: SarSubject, inst: Institution) -> None:
    p = s.person
    if p is None:
        w.party(activity, SUBJECT, head=[("AllCriticalSubjectInformationUnavailableIndicator", "Y")])
        return
    subject = w.person(activity, SUBJECT, p, tin_unknown=True)
    # The subjects are the account holders and transactors of the referred accounts: customers.
    relation = w.node(subject, "PartyAssociation", seq=True)
    w.leaf(relation, "CustomerIndicator", "Y")
    w.leaf(relation, "SubjectRelationshipFinancialInstitutionTINText", inst.ein)
    if s.accounts:
        held = w.node(subject, "PartyAccountAssociation", seq=True)
        w.leaf(held, "PartyAccountAssociationTypeCode", "5")
        institution = w.node(held, "Party", seq=True)
        w.leaf(institution, "ActivityPartyTypeCode", "41")
        w.ident(institution, "2", inst.ein)
        for number in s.accounts:
            account = w.node(institution, "Account", seq=True)
            w.leaf(account, "AccountNumberText", number)
            w.leaf(
                w.node(account, "PartyAccountAssociation", seq=True), "PartyAccountAssociationTypeCode", "7"
            )


def sar_batch_xml(activities: list[SarActivity], *, institution: Institution, filing_date: date) -> bytes:
    """The SARX batch for ``activities`` (in order): header totals computed from what was written.
    PartyCount counts the subjects (33), TotalAmount adds the TotalSuspiciousAmountText values."""
    w = _Writer()
    root = etree.Element(f"{{{NS}}}EFilingBatchXML", nsmap={"fc2": NS})
    w.leaf(root, "FormTypeCode", "SARX")
    total = sum(_activity(w, root, a, institution, filing_date) for a in activities)
    root.set("TotalAmount", str(total))
    parties = root.iterfind(f"{{{NS}}}Activity/{{{NS}}}Party/{{{NS}}}ActivityPartyTypeCode")
    root.set("PartyCount", str(sum(1 for code in parties if code.text == SUBJECT)))
    root.set("ActivityCount", str(len(activities)))
    root.set("ActivityAttachmentCount", "0")
    root.set("AttachmentCount", "0")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
