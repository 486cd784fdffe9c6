"""CTR batch XML: the golden file, the vendored XSD, and one test per rule of the catalog that
breaks exactly that rule in a valid batch and expects exactly that code."""

import copy
import hashlib
import os
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from filings import services
from filings.tests.ctr_data import CASH, MULTI_PERSON, NOW, prepare_ctr
from filings.tests.factories import member
from filings.validation import NS, SCHEMAS, catalog, validate_batch
from jfintech.audit import Actor
from jfintech.tenancy.models import Role

GOLDEN = Path(__file__).parent / "golden" / "ctr_batch.xml"


def q(tag):
    return f"{{{NS}}}{tag}"


@pytest.fixture
def batch(configured):
    actor = Actor.for_user(member(configured, Role.ANALYST, username="preparer"))
    filings = prepare_ctr(configured, actor, rows=CASH + MULTI_PERSON)
    xml, facts = services.batch_xml(tenant=configured, filings=filings, filing_date=NOW.date())
    return xml, facts


def test_schemas_are_the_official_files():
    sums = dict(
        line.split()[::-1] for line in (SCHEMAS["ctr"].parent / "SHA256SUMS").read_text().splitlines() if line
    )
    assert sums == {
        "EFL_CTRXBatchSchema.xsd": "b7726248e4b3dae5f3664eaa44318219998374c8d6b7eacc19702f348063c915",
        "EFL_SARXBatchSchema.xsd": "59a48d9cad821197f1ddee5f8dcb10cf230ff99a924f197e64044346d2678943",
    }
    for name, digest in sums.items():
        assert hashlib.sha256((SCHEMAS["ctr"].parent / name).read_bytes()).hexdigest() == digest


def test_golden_batch_is_valid_and_byte_identical(batch, configured):
    xml, facts = batch
    assert validate_batch(xml, facts=facts) == []
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_bytes(xml)
    assert xml == GOLDEN.read_bytes()
    # Three CTRs (C-1, C-2, C-3's group). TotalAmount adds every detail line: the USD lines and the
    # foreign line, whose amount is in euros (C-2's 10,000 EUR out, 11,000 USD under withdrawals).
    root = etree.fromstring(xml)
    assert (root.get("ActivityCount"), root.get("TotalAmount")) == (
        "3",
        str(10001 + 25000 + 11000 + 10000 + 16000),
    )


def _lines(activity):
    return [
        (
            d.findtext(q("CurrencyTransactionActivityDetailTypeCode")),
            d.findtext(q("DetailTransactionAmountText")),
            d.findtext(q("OtherForeignCurrencyCountryText")),
        )
        for d in activity.iter(q("CurrencyTransactionActivityDetail"))
    ]


def _subjects(activity):
    return [
        (
            p.findtext(q("ActivityPartyTypeCode")),
            p.find(q("PartyName")).findtext(q("RawEntityIndividualLastName")),
            p.findtext(q("IndividualEntityCashInAmountText")),
            p.findtext(q("MultipleTransactionsPersonsIndividualsIndicator")),
            [a.findtext(q("AccountNumberText")) for a in p.findall(q("Account"))],
        )
        for p in activity.findall(q("Party"))
        if p.findtext(q("ActivityPartyTypeCode")) in {"50", "17", "23"}
    ]


def test_foreign_cash_is_under_its_type_in_usd_and_on_a_foreign_line_in_euros(batch):
    root = etree.fromstring(batch[0])
    cta = _cta(root, 1)  # C-2: 25,000 USD in; 10,000 EUR out at 1.10
    assert _lines(_activity(root, 1)) == [("55", "25000", ""), ("56", "11000", ""), ("54", "10000", "EU")]
    assert (cta.findtext(q("TotalCashInReceiveAmountText")), cta.findtext(q("TotalCashOutAmountText"))) == (
        "25000",
        "11000",
    )


def test_multi_person_ctr_lists_each_person_once_per_role(batch):
    root = etree.fromstring(batch[0])
    activity = _activity(root, 2)  # C-3's group: own deposit 9,999.99 and 6,000 for C-4
    assert _subjects(activity) == [
        ("17", "Roe", "6000", None, ["ACC-4"]),
        ("50", "Roe", "10000", None, ["ACC-3"]),
        ("23", "Main Street Diner Inc", "6000", None, ["ACC-4"]),
    ]
    assert _lines(activity) == [("55", "16000", "")]
    cta = activity.find(q("CurrencyTransactionActivity"))
    # Two transactions, none over 10,000: an aggregated report.
    assert cta.findtext(q("AggregateTransactionIndicator")) == "Y"


def test_xsd_is_enforced_in_xsd11_mode(batch):
    xml, facts = batch
    root = etree.fromstring(xml)
    root.find(q("FormTypeCode")).text = "CTRY"
    _party(_activity(root), "35").find(q("PartyName")).find(q("PartyNameTypeCode")).text = "X"
    violations = validate_batch(etree.tostring(root), facts=facts)
    assert {v.code for v in violations} == {"XSD"}
    assert {v.path for v in violations} == {
        "/EFilingBatchXML/FormTypeCode",
        "/EFilingBatchXML/Activity[1]/Party[1]/PartyName/PartyNameTypeCode",
    }
    # Why XMLSchema11: in XSD 1.0 mode the vc:minVersion="1.1" schema declares nothing at all.
    assert xmlschema.XMLSchema(str(SCHEMAS["ctr"])).elements == {}


def _activity(root, i=0):
    return root.findall(q("Activity"))[i]


def _party(activity, code, n=0):
    return [p for p in activity.findall(q("Party")) if p.findtext(q("ActivityPartyTypeCode")) == code][n]


def _repair(root):
    """Keep what the mutated rule does not concern consistent: SeqNums, counts, TotalAmount."""
    seq = 0
    for el in root.iter():
        if el.get("SeqNum") is not None:
            seq += 1
            el.set("SeqNum", str(seq))
    root.set("PartyCount", str(len(root.findall(f"{q('Activity')}/{q('Party')}"))))
    total = sum(int(d.text) for d in root.iter(q("DetailTransactionAmountText")))
    root.set("TotalAmount", str(total))


def _dup_party(code):
    def mutate(root):
        activity = _activity(root)
        party = _party(activity, code)
        party.addnext(copy.deepcopy(party))
        _repair(root)

    return mutate


def _replace_parties(code, with_code):
    def mutate(root):
        activity = _activity(root)
        template = _party(activity, with_code)
        for party in [
            p for p in activity.findall(q("Party")) if p.findtext(q("ActivityPartyTypeCode")) == code
        ]:
            party.addprevious(copy.deepcopy(template))
            activity.remove(party)
        _repair(root)

    return mutate


def _set(path_fn, value):
    def mutate(root):
        path_fn(root).text = value

    return mutate


def _remove(path_fn, repair=True):
    def mutate(root):
        el = path_fn(root)
        el.getparent().remove(el)
        if repair:
            _repair(root)

    return mutate


def _cta(root, i=0):
    return _activity(root, i).find(q("CurrencyTransactionActivity"))


def _subject(root, i=0):
    return _party(_activity(root, i), "50")


def _ident(party, type_code):
    return next(
        i
        for i in party.findall(q("PartyIdentification"))
        if i.findtext(q("PartyIdentificationTypeCode")) == type_code
    )


def _foreign_line(root):
    """C-2's 10,000 EUR out (54, EU)."""
    return next(
        d
        for d in _cta(root, 1).iter(q("CurrencyTransactionActivityDetail"))
        if d.findtext(q("CurrencyTransactionActivityDetailTypeCode")) == "54"
    )


def _foreign_out_beside_no_cash_out(root):
    _cta(root, 0).append(copy.deepcopy(_foreign_line(root)))  # C-1 has cash in only
    _repair(root)


def _under_threshold(root):
    cta = _cta(root, 0)  # C-1: cash in only
    cta.find(q("CurrencyTransactionActivityDetail")).find(q("DetailTransactionAmountText")).text = "9000"
    for detail in cta.findall(q("CurrencyTransactionActivityDetail"))[1:]:
        cta.remove(detail)
    cta.find(q("TotalCashInReceiveAmountText")).text = "9000"
    _repair(root)


def _prior_without_flag(root):
    activity = _activity(root)
    prior = etree.Element(q("EFilingPriorDocumentNumber"))
    prior.text = "31000000000001"
    activity.insert(0, prior)


MUTATIONS = {
    "CTR-001": lambda root: root.set("TotalAmount", str(int(root.get("TotalAmount")) + 1)),
    "CTR-002": lambda root: root.set("ActivityCount", str(int(root.get("ActivityCount")) + 1)),
    "CTR-003": lambda root: root.set("PartyCount", str(int(root.get("PartyCount")) + 1)),
    "CTR-004": _set(
        lambda r: _activity(r).find(q("ActivityAssociation")).find(q("FinCENDirectBackFileIndicator")), "Y"
    ),
    "CTR-005": _prior_without_flag,
    "CTR-006": _dup_party("35"),
    "CTR-007": _dup_party("37"),
    "CTR-008": _dup_party("30"),
    "CTR-009": _dup_party("8"),
    "CTR-010": _replace_parties("34", "50"),
    "CTR-011": _replace_parties("50", "34"),
    "CTR-012": _remove(lambda r: _ident(_party(_activity(r), "35"), "28")),
    "CTR-013": lambda root: list(root.iter(q("CurrencyTransactionActivityDetail")))[-1].set(
        "SeqNum", "99999"
    ),
    "CTR-014": _set(lambda r: _cta(r, 0).find(q("TotalCashInReceiveAmountText")), "10002"),
    "CTR-015": _set(lambda r: _cta(r, 1).find(q("TotalCashOutAmountText")), "11001"),
    "CTR-016": _under_threshold,
    "CTR-017": _remove(lambda r: _subject(r, 0).find(q("MultipleTransactionsPersonsIndividualsIndicator"))),
    "CTR-018": _set(lambda r: _cta(r, 0).find(q("AggregateTransactionIndicator")), ""),
    "CTR-019": lambda root: root.set("TotalAmount", " " + root.get("TotalAmount")),
    "CTR-020": _set(lambda r: _cta(r, 0).find(q("TransactionDateText")), "20260231"),
    "CTR-021": _set(lambda r: _subject(r, 0).find(q("IndividualEntityCashInAmountText")), "010001"),
    "CTR-022": _set(lambda r: _cta(r, 0).find(q("TransactionDateText")), "20261126"),
    "CTR-023": _remove(lambda r: _subject(r, 0).find(q("PartyName")).find(q("RawEntityIndividualLastName"))),
    "CTR-024": _remove(lambda r: _ident(_subject(r, 0), "1")),
    "CTR-025": _set(lambda r: _foreign_line(r).find(q("OtherForeignCurrencyCountryText")), ""),
    "CTR-026": _foreign_out_beside_no_cash_out,
    "CTR-027": _set(lambda r: _party(_activity(r, 1), "23").find(q("ActivityPartyTypeCode")), "50"),
}


def test_a_country_on_a_usd_line_breaks_ctr_025(batch):
    root = etree.fromstring(batch[0])
    next(root.iter(q("OtherForeignCurrencyCountryText"))).text = "MX"
    assert {v.code for v in validate_batch(etree.tostring(root), facts=batch[1])} == {"CTR-025"}


def test_every_catalog_rule_has_a_mutation():
    assert set(MUTATIONS) == {c for c in catalog().rules if c.startswith("CTR-")}


@pytest.mark.parametrize("code", sorted(MUTATIONS))
def test_rule_broken_alone_is_reported_alone(code, batch):
    xml, facts = batch
    root = etree.fromstring(xml)
    MUTATIONS[code](root)
    violations = validate_batch(etree.tostring(root), facts=facts)
    assert {v.code for v in violations} == {code}, violations
    rule = catalog().rules[code]
    assert all(v.severity == rule.severity and v.path.startswith("/EFilingBatchXML") for v in violations)


def test_non_printable_character_is_caught_by_the_rule(batch):
    xml, facts = batch
    root = etree.fromstring(xml)
    next(root.iter(q("RawCityText"))).text = "Springfield\x7f"
    assert {v.code for v in validate_batch(etree.tostring(root), facts=facts)} == {"CTR-019"}


def test_every_violation_is_reported_at_once(batch):
    xml, facts = batch
    root = etree.fromstring(xml)
    for code in ("CTR-004", "CTR-017", "CTR-023", "CTR-002"):
        MUTATIONS[code](root)
    root.find(q("FormTypeCode")).text = "CTRY"
    codes = [v.code for v in validate_batch(etree.tostring(root), facts=facts)]
    assert set(codes) == {"XSD", "CTR-004", "CTR-017", "CTR-023", "CTR-002"}


def test_amounts_are_whole_dollars_rounded_up():
    from filings.ctr_xml import dollars

    assert [dollars(Decimal(x)) for x in ("10000.00", "10000.01", "10000.5", "0.01")] == [
        10000,
        10001,
        10001,
        1,
    ]


def test_docs_render_the_catalog():
    from filings.validation import catalog_markdown

    docs = (Path(__file__).resolve().parents[2] / "docs" / "filings.md").read_text()
    assert catalog_markdown() in docs


def _xsd_breaks():
    def form_type(root):
        root.find(q("FormTypeCode")).text = "CTRY"

    def enumeration(root):
        _party(_activity(root), "35").find(q("PartyName")).find(q("PartyNameTypeCode")).text = "X"

    def pattern(root):  # a trailing space in a restricted string
        next(root.iter(q("RawCityText"))).text = "Springfield "

    def missing_required(root):
        cta = _cta(root)
        cta.remove(cta.find(q("ATMIndicator")))

    def duplicate_seqnum(root):
        details = list(root.iter(q("CurrencyTransactionActivityDetail")))
        details[-1].set("SeqNum", details[0].get("SeqNum"))

    def too_long(root):
        next(root.iter(q("RawCityText"))).text = "S" * 51

    def bad_date_pattern(root):
        _cta(root).find(q("TransactionDateText")).text = "2026-11-20"

    return [form_type, enumeration, pattern, missing_required, duplicate_seqnum, too_long, bad_date_pattern]


@pytest.mark.parametrize("mutate", [None, *_xsd_breaks()], ids=lambda m: m.__name__ if m else "valid")
def test_libxml2_agrees_with_xmlschema11_on_this_schema(mutate, batch):
    """Evidence for docs/filings.md (Performance): the schema has no XSD 1.1-only construct, so the
    C validator gives the same verdict as the XSD 1.1 one the validator uses."""
    from filings.validation import xsd_violations

    xml, _ = batch
    root = etree.fromstring(xml)
    if mutate:
        mutate(root)
    data = etree.tostring(root)
    libxml2 = etree.XMLSchema(etree.parse(str(SCHEMAS["ctr"])))
    assert libxml2.validate(etree.fromstring(data)) == (not xsd_violations(data)) == (mutate is None)
    schema_text = SCHEMAS["ctr"].read_text()
    assert not any(f"<xsd:{c}" in schema_text for c in ("assert", "alternative", "openContent", "override"))
