"""SAR batch XML (SARX): the golden file, the vendored XSD, and one test per SAR rule of the catalog
that breaks exactly that rule in a valid batch and expects exactly that code."""

import copy
import os
from pathlib import Path

import pytest
from lxml import etree

from exceptions.models import Case
from filings import sar, services
from filings.models import Filing
from filings.sar_xml import narrative_blocks
from filings.tests.sar_data import NOW, prepare_sar
from filings.tests.test_workflow import _open_break
from filings.tests.test_xml import _activity, _ident, _party, _set, q
from filings.tests.workflow import People
from filings.validation import SAR_NARRATIVE_LIMIT, SCHEMAS, catalog, validate_batch, xsd_violations

GOLDEN = Path(__file__).parent / "golden" / "sar_batch.xml"


@pytest.fixture
def people(configured):
    return People(configured)


@pytest.fixture
def draft(configured, people) -> Filing:
    return prepare_sar(configured, people.analyst)


def _xml(tenant, filing) -> bytes:
    return services.batch_xml(tenant=tenant, filings=[filing], filing_date=NOW.date())[0]


@pytest.fixture
def batch(configured, draft) -> bytes:
    return _xml(configured, draft)


def test_golden_sar_batch_is_valid_and_byte_identical(batch):
    assert validate_batch(batch, kind="sar") == []
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_bytes(batch)
    assert batch == GOLDEN.read_bytes()
    root = etree.fromstring(batch)
    # Two subjects (Acme Hardware, Mary Roe); 18,500.50 rounded up to whole dollars.
    assert (root.get("ActivityCount"), root.get("PartyCount"), root.get("TotalAmount")) == ("1", "2", "18501")
    assert [p.findtext(q("ActivityPartyTypeCode")) for p in _activity(root).findall(q("Party"))] == [
        "35",
        "37",
        "30",
        "8",
        "34",
        "33",
        "33",
    ]


def test_the_sarx_schema_is_enforced(batch):
    root = etree.fromstring(batch)
    root.find(q("FormTypeCode")).text = "CTRX"
    violations = validate_batch(etree.tostring(root), kind="sar")
    assert {(v.code, v.path) for v in violations} == {("XSD", "/EFilingBatchXML/FormTypeCode")}
    # The same SAR is no CTR: the CTR schema refuses it.
    assert xsd_violations(batch, kind="ctr")


def _repair(root):
    """Keep what the mutated rule does not concern consistent: SeqNums and the header counts."""
    seq = 0
    for el in root.iter():
        if el.get("SeqNum") is not None:
            seq += 1
            el.set("SeqNum", str(seq))
    subjects = [p for p in root.iter(q("Party")) if p.findtext(q("ActivityPartyTypeCode")) == "33"]
    root.set("PartyCount", str(len(subjects)))


def _drop(path_fn):
    def mutate(root):
        el = path_fn(root)
        el.getparent().remove(el)
        _repair(root)

    return mutate


def _dup_party(code):
    def mutate(root):
        party = _party(_activity(root), code)
        party.addnext(copy.deepcopy(party))
        _repair(root)

    return mutate


def _subjects_become_locations(root):
    activity = _activity(root)
    location = _party(activity, "34")
    for subject in [
        p for p in activity.findall(q("Party")) if p.findtext(q("ActivityPartyTypeCode")) == "33"
    ]:
        subject.addprevious(copy.deepcopy(location))
        activity.remove(subject)
    _repair(root)


def _same_name(root):
    first, second = _party(_activity(root), "33", 0), _party(_activity(root), "33", 1)
    second.replace(second.find(q("PartyName")), copy.deepcopy(first.find(q("PartyName"))))
    _repair(root)


def _prior_on_initial(root):
    prior = etree.Element(q("EFilingPriorDocumentNumber"))
    prior.text = "31000000000001"
    _activity(root).insert(0, prior)


def _narrative_too_long(root):
    block = _activity(root).find(q("ActivityNarrativeInformation"))
    block.find(q("ActivityNarrativeText")).text = "x" * 4000
    for number in range(2, 6):  # five full blocks: 20,000 characters, the XSD's most
        extra = copy.deepcopy(block)
        extra.find(q("ActivityNarrativeSequenceNumber")).text = str(number)
        _activity(root).append(extra)
    _repair(root)


def _no_classification(root):
    suspicious = _activity(root).find(q("SuspiciousActivity"))
    for c in suspicious.findall(q("SuspiciousActivityClassification")):
        suspicious.remove(c)
    _repair(root)


def _suspicious(root):
    return _activity(root).find(q("SuspiciousActivity"))


def _classification(root, i):
    return _suspicious(root).findall(q("SuspiciousActivityClassification"))[i]


def _describe_a_plain_code(root):
    """A description on 114, no "Other" code: the schema allows it on any subtype, FinCEN does not."""
    text = etree.Element(q("OtherSuspiciousActivityTypeText"))
    text.text = "Cash left in night deposit bags"
    _classification(root, 0).insert(0, text)


MUTATIONS = {
    "SAR-001": lambda root: root.set("TotalAmount", str(int(root.get("TotalAmount")) + 1)),
    "SAR-002": lambda root: root.set("ActivityCount", "2"),
    "SAR-003": lambda root: root.set("PartyCount", "3"),
    "SAR-004": _set(
        lambda r: _activity(r).find(q("ActivityAssociation")).find(q("InitialReportIndicator")), ""
    ),
    "SAR-005": _prior_on_initial,
    "SAR-006": _dup_party("35"),
    "SAR-007": _dup_party("37"),
    "SAR-008": _dup_party("30"),
    "SAR-009": _dup_party("8"),
    "SAR-010": _drop(lambda r: _party(_activity(r), "34")),
    "SAR-011": _subjects_become_locations,
    "SAR-012": _drop(lambda r: _ident(_party(_activity(r), "35"), "28")),
    "SAR-013": lambda root: list(root.iter(q("ActivityNarrativeInformation")))[-1].set("SeqNum", "99999"),
    "SAR-014": _same_name,
    "SAR-015": _set(lambda r: next(r.iter(q("ActivityNarrativeText"))), ""),
    "SAR-016": _narrative_too_long,
    "SAR-017": _set(lambda r: _suspicious(r).find(q("SuspiciousActivityToDateText")), "20261117"),
    "SAR-018": _no_classification,
    "SAR-019": _set(lambda r: _classification(r, 1).find(q("SuspiciousActivityTypeID")), "3"),
    "SAR-020": _set(lambda r: next(r.iter(q("RawCityText"))), "Springfield\x7f"),
    "SAR-021": _set(lambda r: _suspicious(r).find(q("SuspiciousActivityFromDateText")), "20260231"),
    "SAR-022": _set(lambda r: _suspicious(r).find(q("TotalSuspiciousAmountText")), "018501"),
    "SAR-023": _describe_a_plain_code,
}
# The schema requires a classification too (SuspiciousActivityClassification minOccurs 1): the rule
# stays in the catalog so the report names FinCEN's item, and the XSD error comes with it.
ALSO_XSD = {"SAR-018"}


def test_every_sar_rule_has_a_mutation():
    assert set(MUTATIONS) == {c for c in catalog().rules if c.startswith("SAR-")}


@pytest.mark.parametrize("code", sorted(MUTATIONS))
def test_sar_rule_broken_alone_is_reported_alone(code, batch):
    root = etree.fromstring(batch)
    MUTATIONS[code](root)
    violations = validate_batch(etree.tostring(root), kind="sar")
    assert {v.code for v in violations} == {code} | ({"XSD"} if code in ALSO_XSD else set()), violations
    rule = catalog().rules[code]
    assert all(v.severity == rule.severity and v.path.startswith("/EFilingBatchXML") for v in violations)


def test_every_sar_violation_is_reported_at_once(batch):
    root = etree.fromstring(batch)
    for code in ("SAR-004", "SAR-019", "SAR-017", "SAR-002"):
        MUTATIONS[code](root)
    root.find(q("FormTypeCode")).text = "CTRX"
    codes = {v.code for v in validate_batch(etree.tostring(root), kind="sar")}
    assert codes == {"XSD", "SAR-004", "SAR-019", "SAR-017", "SAR-002"}


def test_a_full_narrative_is_five_blocks_and_valid(configured, people, draft):
    # Paragraphs (line breaks) and a block cut next to a space are the narrative's own text.
    text = ("Paragraph one.\n" + "y" * 3984 + " " + "z" * 13000)[:SAR_NARRATIVE_LIMIT]
    assert len(text) == SAR_NARRATIVE_LIMIT
    sar.sar_update(tenant=configured, actor=people.analyst, filing_id=draft.pk, narrative=text)
    xml = _xml(configured, Filing.objects.get(pk=draft.pk))
    assert validate_batch(xml, kind="sar") == []
    blocks = [b.text for b in etree.fromstring(xml).iter(q("ActivityNarrativeText"))]
    assert [len(b) for b in blocks] == [4000, 4000, 4000, 4000, 1000]
    assert "".join(blocks) == text == "".join(narrative_blocks(text))
    assert blocks[0].endswith(" ")


def test_no_subject_identified_is_an_unknown_subject(configured, people):
    _open_break(configured, "ACC-NOBODY", "700.00")
    case_id = Case.objects.get(tenant=configured, account="ACC-NOBODY").pk
    filing = sar.sar_refer(tenant=configured, actor=people.analyst, case_ids=[case_id], now=NOW)
    filing = sar.sar_update(
        tenant=configured,
        actor=people.analyst,
        filing_id=filing.pk,
        narrative="Unexplained shortfall.",
        activity_subtypes=["903"],
        period_start=NOW.date(),
        period_end=NOW.date(),
    )
    xml = _xml(configured, filing)
    assert validate_batch(xml, kind="sar") == []
    subject = _party(_activity(etree.fromstring(xml)), "33")
    assert subject.findtext(q("AllCriticalSubjectInformationUnavailableIndicator")) == "Y"
    # No branch involved: no cash on the account.
    assert (
        _party(_activity(etree.fromstring(xml)), "34").findtext(q("NoBranchActivityInvolvedIndicator")) == "Y"
    )


def test_continuing_activity_carries_the_prior_bsa_id(configured, people, draft):
    filing = sar.sar_update(
        tenant=configured, actor=people.analyst, filing_id=draft.pk, prior_bsa_id="31000000000099"
    )
    xml = _xml(configured, filing)
    assert validate_batch(xml, kind="sar") == []
    activity = _activity(etree.fromstring(xml))
    assert activity.findtext(q("EFilingPriorDocumentNumber")) == "31000000000099"
    assoc = activity.find(q("ActivityAssociation"))
    assert [
        assoc.findtext(q(t)) for t in ("ContinuingActivityReportIndicator", "InitialReportIndicator")
    ] == [
        "Y",
        "",
    ]


def test_libxml2_agrees_on_the_sarx_schema(batch):
    """As for the CTR schema (docs/filings.md, Performance): no XSD 1.1-only construct, and the C
    validator's verdicts match the XSD 1.1 one's on the golden batch and a broken one."""
    libxml2 = etree.XMLSchema(etree.parse(str(SCHEMAS["sar"])))
    broken = etree.fromstring(batch)
    _party(_activity(broken), "35").find(q("PartyName")).find(q("PartyNameTypeCode")).text = "X"
    for xml, valid in ((batch, True), (etree.tostring(broken), False)):
        assert libxml2.validate(etree.fromstring(xml)) == (not xsd_violations(xml, kind="sar")) == valid
    text = SCHEMAS["sar"].read_text()
    assert not any(f"<xsd:{c}" in text for c in ("assert", "alternative", "openContent", "override"))


def test_an_other_code_is_written_with_its_description_first(configured, people, draft):
    text = "Cash in night deposit bags, " + "x" * 22  # RestrictString50's most
    filing = sar.sar_update(
        tenant=configured,
        actor=people.analyst,
        filing_id=draft.pk,
        activity_subtypes=["114", "807", "1999"],
        activity_other_texts={"1999": text},
    )
    xml = _xml(configured, filing)
    assert validate_batch(xml, kind="sar") == []  # the XSD (1.1) and every rule
    classifications = {
        c.findtext(q("SuspiciousActivitySubtypeID")): [etree.QName(el).localname for el in c]
        for c in _suspicious(etree.fromstring(xml)).findall(q("SuspiciousActivityClassification"))
    }
    plain = ["SuspiciousActivitySubtypeID", "SuspiciousActivityTypeID"]
    assert classifications == {
        "114": plain,
        "807": plain,
        "1999": ["OtherSuspiciousActivityTypeText", *plain],
    }
    assert etree.fromstring(xml).findtext(f".//{q('OtherSuspiciousActivityTypeText')}") == text
    # Without its description the "Other" code breaks SAR-023 alone (the schema does not mind).
    for mutate in ("remove", "empty"):
        root = etree.fromstring(xml)
        description = next(root.iter(q("OtherSuspiciousActivityTypeText")))
        if mutate == "remove":
            description.getparent().remove(description)
        else:
            description.text = ""
        assert {v.code for v in validate_batch(etree.tostring(root), kind="sar")} == {"SAR-023"}
