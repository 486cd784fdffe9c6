"""Validate a FinCEN batch as FinCEN does: the official XSD, then every rule of ``rules.yaml``.

``validate_batch(xml, context=...)`` returns every violation at once (code, severity, path,
message), never only the first. Rules that need the source data (the multiple-transactions and
aggregated indicators) read ``context``: one ``ActivityFacts`` per Activity, in document order,
which the generator returns beside the XML.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import xmlschema
import yaml
from lxml import etree

HERE = Path(__file__).parent
SCHEMAS = {
    "ctr": HERE / "schemas" / "EFL_CTRXBatchSchema.xsd",
    "sar": HERE / "schemas" / "EFL_SARXBatchSchema.xsd",
}
RULES_PATH = HERE / "rules.yaml"
NS = "www.fincen.gov/base"
THRESHOLD = Decimal("10000")
SUBJECT_CODES = {"50", "17", "23", "58"}
# The cash types whose USD amounts make up the totals. Foreign cash in (53) and out (54) lines carry
# the amount in the foreign currency with its country (FinCEN's instruction), so they are not added
# to the USD totals, only to the batch's TotalAmount (CTR UG: "as well as foreign amounts").
CASH_IN_CODES = {"55", "46", "23", "12", "14", "49", "18", "21", "25", "997"}
CASH_OUT_CODES = {"56", "30", "32", "13", "15", "48", "28", "31", "33", "34", "998"}
FOREIGN_CODES = {"in": "53", "out": "54"}
_PRINTABLE = re.compile(r"[\x20-\x7e\u00a0-\ufffd]*")
_AMOUNT = re.compile(r"(|[1-9][0-9]*)")
_BLANK_DATES = {f"{{{NS}}}IndividualBirthDateText", f"{{{NS}}}SuspiciousActivityToDateText"}
_AMOUNT_TAGS = (
    "DetailTransactionAmountText",
    "TotalCashInReceiveAmountText",
    "TotalCashOutAmountText",
    "IndividualEntityCashInAmountText",
    "IndividualEntityCashOutAmountText",
)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    path: str
    message: str
    source: str


@dataclass(frozen=True)
class Violation:
    code: str
    severity: str
    path: str
    message: str

    def as_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class ActivityFacts:
    """What the XML cannot show: per subject (in document order) how many transactions its amounts
    aggregate, the activity's transaction count and its largest single transaction (USD)."""

    subject_transactions: tuple[int, ...] = ()
    transactions: int = 0
    max_single_usd: Decimal = Decimal(0)


@dataclass
class Catalog:
    version: int
    sha256: str
    rules: dict[str, Rule] = field(default_factory=dict)


@functools.cache
def catalog() -> Catalog:
    raw = RULES_PATH.read_bytes()
    document = yaml.safe_load(raw)
    rules = {r["code"]: Rule(**r) for r in document["rules"]}
    missing = set(rules) - set(CHECKS)
    if missing:  # a rule without a check would silently pass: refuse to start
        raise RuntimeError(f"rules.yaml has rules with no check: {sorted(missing)}")
    return Catalog(version=document["version"], sha256=hashlib.sha256(raw).hexdigest(), rules=rules)


@functools.cache
def schema(kind: str) -> xmlschema.XMLSchema11:
    # XSD 1.1: the FinCEN schemas declare vc:minVersion="1.1", which XSD 1.0 mode ignores entirely.
    return xmlschema.XMLSchema11(str(SCHEMAS[kind]))


def schema_sha256(kind: str) -> str:
    return hashlib.sha256(SCHEMAS[kind].read_bytes()).hexdigest()


def parse(xml: bytes) -> etree._ElementTree:
    """Untrusted XML: no entities, no network, no DTD."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.ElementTree(etree.fromstring(xml, parser))


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _text(el, tag: str) -> str | None:
    child = el.find(_q(tag))
    return None if child is None else (child.text or "")


def _strip(path: str) -> str:
    return re.sub(r"\{[^}]*\}|\w+:", "", path)


def _path(tree, el) -> str:
    return _strip(tree.getpath(el))


def _amount(text: str | None) -> Decimal:
    return Decimal(text) if text and _AMOUNT.fullmatch(text) else Decimal(0)


def _parties(activity, codes) -> list:
    return [p for p in activity.findall(_q("Party")) if _text(p, "ActivityPartyTypeCode") in codes]


# --- the checks, one per catalog code: (tree, facts) -> [(path element, detail)] -----------------

Found = list[tuple[object, str]]


def _each_activity(tree):
    return tree.getroot().findall(_q("Activity"))


def _details(activity, codes=None):
    cta = activity.find(_q("CurrencyTransactionActivity"))
    if cta is None:
        return []
    return [
        d
        for d in cta.findall(_q("CurrencyTransactionActivityDetail"))
        if codes is None or _text(d, "CurrencyTransactionActivityDetailTypeCode") in codes
    ]


def check_total_amount(tree, facts) -> Found:
    root = tree.getroot()
    total = sum(
        (_amount(_text(d, "DetailTransactionAmountText")) for a in _each_activity(tree) for d in _details(a)),
        Decimal(0),
    )
    declared = root.get("TotalAmount")
    try:
        ok = Decimal(declared) == total
    except Exception:
        ok = False
    return [] if ok else [(root, f"TotalAmount {declared} but the details add up to {total}")]


def check_activity_count(tree, facts) -> Found:
    root, n = tree.getroot(), len(_each_activity(tree))
    return (
        []
        if root.get("ActivityCount") == str(n)
        else [(root, f"ActivityCount {root.get('ActivityCount')}, {n} activities")]
    )


def check_party_count(tree, facts) -> Found:
    root = tree.getroot()
    n = len(root.findall(f"{_q('Activity')}/{_q('Party')}"))
    return (
        []
        if root.get("PartyCount") == str(n)
        else [(root, f"PartyCount {root.get('PartyCount')}, {n} parties")]
    )


def check_one_association(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        assoc = activity.find(_q("ActivityAssociation"))
        if assoc is not None and sum(1 for c in assoc if (c.text or "") == "Y") != 1:
            found.append((assoc, "not exactly one Y"))
    return found


def check_prior_document(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        assoc = activity.find(_q("ActivityAssociation"))
        amends = assoc is not None and _text(assoc, "CorrectsAmendsPriorReportIndicator") == "Y"
        prior = _text(activity, "EFilingPriorDocumentNumber")
        if amends and not (prior and re.fullmatch(r"[0-9]{14}", prior)):
            found.append((activity, "corrects/amends without a 14-digit prior BSA ID"))
        elif not amends and prior is not None:
            found.append((activity, "a prior BSA ID on a report that does not correct/amend"))
    return found


def _exactly_one(code: str) -> Callable:
    def check(tree, facts) -> Found:
        return [
            (a, f"{len(_parties(a, {code}))} parties of type {code}")
            for a in _each_activity(tree)
            if len(_parties(a, {code})) != 1
        ]

    return check


def _at_least_one(codes: set[str]) -> Callable:
    def check(tree, facts) -> Found:
        return [
            (a, f"no party of type {'/'.join(sorted(codes))}")
            for a in _each_activity(tree)
            if not _parties(a, codes)
        ]

    return check


def check_transmitter_ids(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        for party in _parties(activity, {"35"}):
            types = {
                _text(i, "PartyIdentificationTypeCode"): _text(i, "PartyIdentificationNumberText")
                for i in party.findall(_q("PartyIdentification"))
            }
            if not types.get("4") or not types.get("28"):
                found.append((party, "transmitter without TIN (4) and TCC (28)"))
    return found


def check_seqnum(tree, facts) -> Found:
    found, expected = [], 1
    for el in tree.getroot().iter():
        if el.get("SeqNum") is not None:
            if el.get("SeqNum") != str(expected):
                found.append((el, f"SeqNum {el.get('SeqNum')}, expected {expected}"))
            expected += 1
    return found


def _total_matches(tag: str, codes: set[str]) -> Callable:
    def check(tree, facts) -> Found:
        found = []
        for activity in _each_activity(tree):
            cta = activity.find(_q("CurrencyTransactionActivity"))
            if cta is None:
                continue
            total = sum(
                (_amount(_text(d, "DetailTransactionAmountText")) for d in _details(activity, codes)),
                Decimal(0),
            )
            if _amount(_text(cta, tag)) != total:
                found.append((cta.find(_q(tag)), f"{_text(cta, tag)!r} but the details add up to {total}"))
        return found

    return check


def check_threshold(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        cta = activity.find(_q("CurrencyTransactionActivity"))
        if (
            cta is not None
            and max(
                _amount(_text(cta, "TotalCashInReceiveAmountText")),
                _amount(_text(cta, "TotalCashOutAmountText")),
            )
            <= THRESHOLD
        ):
            found.append((cta, "neither total is more than 10,000"))
    return found


def check_multiple_indicator(tree, facts) -> Found:
    found = []
    for activity, fact in zip(_each_activity(tree), facts or (), strict=False):
        for subject, count in zip(_parties(activity, SUBJECT_CODES), fact.subject_transactions, strict=False):
            expected = "Y" if count > 1 else ""
            if (_text(subject, "MultipleTransactionsPersonsIndividualsIndicator") or "") != expected:
                found.append((subject, f"{count} transaction(s): indicator should be {expected!r}"))
    return found


def check_aggregated_indicator(tree, facts) -> Found:
    found = []
    for activity, fact in zip(_each_activity(tree), facts or (), strict=False):
        cta = activity.find(_q("CurrencyTransactionActivity"))
        expected = "Y" if fact.transactions > 1 and fact.max_single_usd <= THRESHOLD else ""
        if cta is not None and (_text(cta, "AggregateTransactionIndicator") or "") != expected:
            found.append((cta, f"indicator should be {expected!r}"))
    return found


def clean_text(value: str) -> bool:
    """A value FinCEN accepts: no leading or trailing spaces, nothing non-printable (CTR-019, SAR-020)."""
    return value == value.strip() and bool(_PRINTABLE.fullmatch(value))


def check_clean_text(tree, facts, skip: tuple[str, ...] = ()) -> Found:
    found, skipped = [], set(map(_q, skip))
    for el in tree.getroot().iter():
        values = [el.text or ""] if len(el) == 0 and el.tag not in skipped else []
        values += list(el.attrib.values())
        for value in values:
            if not clean_text(value):
                found.append((el, f"{value!r}"))
    return found


def check_dates(
    tree, facts, tags: tuple[str, ...] = ("FilingDateText", "TransactionDateText", "IndividualBirthDateText")
) -> Found:
    found = []
    for el in tree.getroot().iter(*map(_q, tags)):
        value, dob = el.text or "", el.tag == _q("IndividualBirthDateText")
        if value == "" and el.tag in _BLANK_DATES:
            continue
        try:
            if not re.fullmatch(r"[0-9]{8}", value):
                raise ValueError
            year, month, day = int(value[:4]), int(value[4:6]), int(value[6:])
            if dob and (month == 0 or day == 0):
                date(year, month or 1, day or 1)
            else:
                date(year, month, day)
        except ValueError:
            found.append((el, f"{value!r} is not a date"))
    return found


def check_amount_format(tree, facts, tags: tuple[str, ...] = _AMOUNT_TAGS) -> Found:
    return [
        (el, f"{el.text!r}")
        for el in tree.getroot().iter(*map(_q, tags))
        if not _AMOUNT.fullmatch(el.text or "")
    ]


def check_transaction_not_after_filing(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        filed = _text(activity, "FilingDateText") or ""
        cta = activity.find(_q("CurrencyTransactionActivity"))
        when = _text(cta, "TransactionDateText") if cta is not None else None
        if when and filed and when > filed:
            found.append((cta, f"transaction {when} after filing {filed}"))
    return found


def check_subject_name(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        for subject in _parties(activity, SUBJECT_CODES):
            name = subject.find(_q("PartyName"))
            if name is None or not (
                _text(name, "RawEntityIndividualLastName")
                or _text(name, "EntityLastNameUnknownIndicator") == "Y"
            ):
                found.append((subject, "subject without a last or entity name"))
    return found


def check_subject_tin(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        for subject in _parties(activity, SUBJECT_CODES):
            ids = subject.findall(_q("PartyIdentification"))
            has_tin = any(
                _text(i, "PartyIdentificationTypeCode") in {"1", "2", "9"}
                and _text(i, "PartyIdentificationNumberText")
                for i in ids
            )
            if not has_tin and not any(_text(i, "TINUnknownIndicator") == "Y" for i in ids):
                found.append((subject, "subject without a TIN"))
    return found


def check_foreign_country(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        for detail in _details(activity):
            foreign = _text(detail, "CurrencyTransactionActivityDetailTypeCode") in FOREIGN_CODES.values()
            country = _text(detail, "OtherForeignCurrencyCountryText") or ""
            if foreign and not (re.fullmatch(r"[A-Z]{2}", country) and country != "US"):
                found.append((detail, f"foreign-currency line with country {country!r}"))
            elif not foreign and country:
                found.append((detail, f"country {country!r} on a line that is not foreign currency"))
    return found


def check_foreign_beside_total(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        cta = activity.find(_q("CurrencyTransactionActivity"))
        for direction, code in FOREIGN_CODES.items():
            tag = "TotalCashInReceiveAmountText" if direction == "in" else "TotalCashOutAmountText"
            for detail in _details(activity, {code}):
                if not _amount(_text(cta, tag)):
                    found.append((detail, f"foreign cash {direction} but no {tag}"))
    return found


def check_entity_role(tree, facts) -> Found:
    return [
        (subject, f"entity as {_text(subject, 'ActivityPartyTypeCode')}")
        for activity in _each_activity(tree)
        for subject in _parties(activity, {"50", "17"})
        if _text(subject, "PartyAsEntityOrganizationIndicator") == "Y"
    ]


CHECKS: dict[str, Callable] = {
    "CTR-001": check_total_amount,
    "CTR-002": check_activity_count,
    "CTR-003": check_party_count,
    "CTR-004": check_one_association,
    "CTR-005": check_prior_document,
    "CTR-006": _exactly_one("35"),
    "CTR-007": _exactly_one("37"),
    "CTR-008": _exactly_one("30"),
    "CTR-009": _exactly_one("8"),
    "CTR-010": _at_least_one({"34"}),
    "CTR-011": _at_least_one(SUBJECT_CODES),
    "CTR-012": check_transmitter_ids,
    "CTR-013": check_seqnum,
    "CTR-014": _total_matches("TotalCashInReceiveAmountText", CASH_IN_CODES),
    "CTR-015": _total_matches("TotalCashOutAmountText", CASH_OUT_CODES),
    "CTR-016": check_threshold,
    "CTR-017": check_multiple_indicator,
    "CTR-018": check_aggregated_indicator,
    "CTR-019": check_clean_text,
    "CTR-020": check_dates,
    "CTR-021": check_amount_format,
    "CTR-022": check_transaction_not_after_filing,
    "CTR-023": check_subject_name,
    "CTR-024": check_subject_tin,
    "CTR-025": check_foreign_country,
    "CTR-026": check_foreign_beside_total,
    "CTR-027": check_entity_role,
}


# --- SAR (SARX) checks: the SAR-* codes of rules.yaml. The generic ones (SeqNum, parties, clean
# text, dates, amounts) are the CTR functions above, pointed at the SARX elements. -----------------

SAR_SUBJECT_CODE = "33"  # ActivityPartyTypeCode of a SAR subject
SAR_SUBJECT = {SAR_SUBJECT_CODE}
SAR_NARRATIVE_LIMIT = 17000  # the XSD's fifth narrative block covers characters 16001-17000
SAR_OTHER_TEXT_LIMIT = 50  # OtherSuspiciousActivityTypeText is a RestrictString50
_SAR_FILING_TYPE = (
    "ContinuingActivityReportIndicator",
    "CorrectsAmendsPriorReportIndicator",
    "InitialReportIndicator",
)
_SAR_DATE_TAGS = (
    "FilingDateText",
    "IndividualBirthDateText",
    "SuspiciousActivityFromDateText",
    "SuspiciousActivityToDateText",
)
_SAR_AMOUNT_TAGS = (
    "TotalSuspiciousAmountText",
    "CumulativeTotalViolationAmountText",
    "LossToFinancialAmountText",
)
_DATE = re.compile(r"[0-9]{8}")


@functools.cache
def _subtype_annotations() -> dict[str, str]:
    """SuspiciousActivitySubtypeID values the vendored SARX schema allows, each with its annotation."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    root = etree.parse(str(SCHEMAS["sar"])).getroot()
    node = root.find(f"{xs}simpleType[@name='ValidateSuspiciousActivitySubtypeID']")
    return {
        e.get("value"): (e.findtext(f"{xs}annotation/{xs}documentation") or "").strip()
        for e in node.iter(f"{xs}enumeration")
    }


@functools.cache
def activity_subtype_codes() -> frozenset[str]:
    return frozenset(_subtype_annotations())


@functools.cache
def other_activity_codes() -> frozenset[str]:
    """The "Other" subtypes, which FinCEN wants described (OtherSuspiciousActivityTypeText): those
    the schema annotates "Other". Today that is exactly the x999 codes (1999, 3999 ... 12999; 917,
    "Counterfeit Instrument (other)", is a subtype of its own), but the annotation is the schema's
    word for it, the numbering only our reading of it."""
    return frozenset(c for c, doc in _subtype_annotations().items() if doc.startswith("Other"))


def activity_type(subtype: str) -> str:
    """SuspiciousActivityTypeID of a subtype, by the schema's numbering: 106 → 1, 1001 → 10, and
    the "Other" codes 1999 → 1, 10999 → 10."""
    return subtype[:-3] if subtype.endswith("999") else subtype[:-2]


def _number(text: str | None) -> Decimal:
    """A value as a number, whatever its format (the format is another rule's: SAR-022)."""
    try:
        return Decimal(text or "0")
    except ArithmeticError:
        return Decimal(0)


def _header(root, attribute: str, expected: Decimal | int) -> Found:
    declared = root.get(attribute)
    if declared is not None and _number(declared) == expected:
        return []
    return [(root, f"{attribute} {declared}, expected {expected}")]


def check_sar_total_amount(tree, facts) -> Found:
    root = tree.getroot()
    total = sum((_number(el.text) for el in root.iter(_q("TotalSuspiciousAmountText"))), Decimal(0))
    return _header(root, "TotalAmount", total)


def check_sar_party_count(tree, facts) -> Found:
    return _header(
        tree.getroot(), "PartyCount", sum(len(_parties(a, SAR_SUBJECT)) for a in _each_activity(tree))
    )


def _filing_type(activity) -> dict[str, bool]:
    assoc = activity.find(_q("ActivityAssociation"))
    return {tag: assoc is not None and _text(assoc, tag) == "Y" for tag in _SAR_FILING_TYPE}


def check_sar_filing_type(tree, facts) -> Found:
    return [
        (a.find(_q("ActivityAssociation")), "not exactly one Y among initial, corrects/amends, continuing")
        for a in _each_activity(tree)
        if sum(_filing_type(a).values()) != 1
    ]


def check_sar_prior_document(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        kind = _filing_type(activity)
        needs = kind["CorrectsAmendsPriorReportIndicator"] or kind["ContinuingActivityReportIndicator"]
        prior = _text(activity, "EFilingPriorDocumentNumber")
        if needs and not (prior and re.fullmatch(r"[0-9]{14}", prior)):
            found.append((activity, "corrects/amends or continuing without a 14-digit prior BSA ID"))
        elif not needs and prior is not None:
            found.append((activity, "a prior BSA ID on an initial report"))
    return found


def check_sar_duplicate_subjects(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        seen = set()
        for subject in _parties(activity, SAR_SUBJECT):
            for name in subject.findall(_q("PartyName")):
                if _text(name, "PartyNameTypeCode") != "L":
                    continue
                key = tuple(
                    (_text(name, t) or "").casefold()
                    for t in (
                        "RawEntityIndividualLastName",
                        "RawIndividualFirstName",
                        "RawIndividualMiddleName",
                    )
                )
                if key in seen:
                    found.append((subject, f"{' '.join(k for k in key if k)!r} is already a subject"))
                seen.add(key)
    return found


def _narrative(activity) -> str:
    blocks = activity.findall(_q("ActivityNarrativeInformation"))
    blocks.sort(key=lambda b: _text(b, "ActivityNarrativeSequenceNumber") or "")
    return "".join(_text(b, "ActivityNarrativeText") or "" for b in blocks)


def check_sar_narrative_present(tree, facts) -> Found:
    return [(a, "no narrative") for a in _each_activity(tree) if not _narrative(a).strip()]


def check_sar_narrative_limit(tree, facts) -> Found:
    return [
        (a, f"{len(_narrative(a))} characters")
        for a in _each_activity(tree)
        if len(_narrative(a)) > SAR_NARRATIVE_LIMIT
    ]


def check_sar_activity_dates(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        suspicious = activity.find(_q("SuspiciousActivity"))
        if suspicious is None:
            continue
        first = _text(suspicious, "SuspiciousActivityFromDateText") or ""
        last = _text(suspicious, "SuspiciousActivityToDateText") or ""
        filed = _text(activity, "FilingDateText") or ""
        dates = [d for d in (first, last, filed) if d]
        # Compared as YYYYMMDD strings; a malformed date is SAR-021's, not this rule's.
        if all(_DATE.fullmatch(d) for d in dates) and dates != sorted(dates):
            found.append((suspicious, f"from {first} to {last!r}, filed {filed}"))
    return found


def check_sar_classification(tree, facts) -> Found:
    found = []
    for activity in _each_activity(tree):
        suspicious = activity.find(_q("SuspiciousActivity"))
        codes = [] if suspicious is None else suspicious.findall(_q("SuspiciousActivityClassification"))
        if not any(_text(c, "SuspiciousActivitySubtypeID") for c in codes):
            found.append((activity if suspicious is None else suspicious, "no suspicious activity code"))
    return found


def check_sar_classification_type(tree, facts) -> Found:
    return [
        (c, f"subtype {sub} belongs to type {activity_type(sub)}, not {_text(c, 'SuspiciousActivityTypeID')}")
        for c in tree.getroot().iter(_q("SuspiciousActivityClassification"))
        if (sub := _text(c, "SuspiciousActivitySubtypeID") or "")
        and _text(c, "SuspiciousActivityTypeID") != activity_type(sub)
    ]


def check_sar_other_text(tree, facts) -> Found:
    found = []
    for c in tree.getroot().iter(_q("SuspiciousActivityClassification")):
        sub = _text(c, "SuspiciousActivitySubtypeID") or ""
        text = _text(c, "OtherSuspiciousActivityTypeText")
        if sub in other_activity_codes() and not text:
            found.append((c, f"'Other' subtype {sub} without its description"))
        elif sub not in other_activity_codes() and text is not None:
            found.append((c, f"subtype {sub} is not an 'Other' code but carries a description"))
    return found


CHECKS.update(
    {
        "SAR-001": check_sar_total_amount,
        "SAR-002": check_activity_count,
        "SAR-003": check_sar_party_count,
        "SAR-004": check_sar_filing_type,
        "SAR-005": check_sar_prior_document,
        "SAR-006": _exactly_one("35"),
        "SAR-007": _exactly_one("37"),
        "SAR-008": _exactly_one("30"),
        "SAR-009": _exactly_one("8"),
        "SAR-010": _at_least_one({"34"}),
        "SAR-011": _at_least_one(SAR_SUBJECT),
        "SAR-012": check_transmitter_ids,
        "SAR-013": check_seqnum,
        "SAR-014": check_sar_duplicate_subjects,
        "SAR-015": check_sar_narrative_present,
        "SAR-016": check_sar_narrative_limit,
        "SAR-017": check_sar_activity_dates,
        "SAR-018": check_sar_classification,
        "SAR-019": check_sar_classification_type,
        # The narrative's blocks are cut at fixed positions (a block may begin or end with a space
        # of the sentence it cuts) and may hold line breaks: its type, RestrictString4000, is the
        # one string type the schema leaves without the no-edge-spaces pattern.
        "SAR-020": functools.partial(check_clean_text, skip=("ActivityNarrativeText",)),
        "SAR-021": functools.partial(check_dates, tags=_SAR_DATE_TAGS),
        "SAR-022": functools.partial(check_amount_format, tags=_SAR_AMOUNT_TAGS),
        "SAR-023": check_sar_other_text,
    }
)


def xsd_violations(xml: bytes, *, kind: str = "ctr", tree=None) -> list[Violation]:
    """The official XSD's verdict (XSD 1.1 mode), every error with its path.

    Over the whole tree, not xmlschema's lazy mode: lazy was 2.5x faster with flat memory, but it
    misses a SeqNum repeated in two activities (the root's Unique-SeqNum identity constraint) —
    test_libxml2_agrees_with_xmlschema11_on_this_schema[duplicate_seqnum] caught it."""
    tree = parse(xml) if tree is None else tree
    return [
        Violation("XSD", "fatal", _strip(error.path or "/"), error.reason or str(error))
        for error in schema(kind).iter_errors(tree)
    ]


def validate_batch(
    xml: bytes, *, kind: str = "ctr", facts: list[ActivityFacts] | None = None
) -> list[Violation]:
    """Every violation of the XSD (code ``XSD``) and of the catalog's rules, in one list."""
    try:
        tree = parse(xml)
    except etree.XMLSyntaxError as exc:
        return [Violation("XML", "fatal", "/", f"not well-formed XML: {exc}")]
    violations = xsd_violations(xml, kind=kind, tree=tree)
    prefix = kind.upper() + "-"
    for code, rule in catalog().rules.items():
        if code.startswith(prefix):
            for el, detail in CHECKS[code](tree, facts):
                violations.append(
                    Violation(code, rule.severity, _path(tree, el), f"{rule.message} ({detail})")
                )
    return violations


def fatal(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "fatal"]


def catalog_markdown() -> str:
    """The catalog as the table in docs/filings.md (a test keeps the two identical)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rules = catalog()
    lines = [
        f"Catalog version {rules.version}.",
        "",
        "| code | severity | element path | message | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.code} | {r.severity} | `{cell(r.path)}` | {cell(r.message)} | {cell(r.source)} |"
        for r in rules.rules.values()
    ]
    return "\n".join(lines) + "\n"
