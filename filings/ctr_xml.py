"""The CTR batch XML (FormTypeCode CTRX), from plain inputs: deterministic, so the same inputs and
clock give the same bytes. Amounts are whole US dollars, cents rounded up (FinCEN's instruction);
the totals and the header's TotalAmount are sums of the rounded detail amounts, so they agree
with what FinCEN adds up. ``filings.selectors.ctr_activities`` builds the inputs from filings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, Decimal

from lxml import etree

from filings.validation import CASH_IN_CODES, CASH_OUT_CODES, NS, THRESHOLD, ActivityFacts

GENERATOR_VERSION = "filings.ctr_xml/2"


@dataclass(frozen=True)
class Institution:
    name: str
    ein: str
    rssd: str
    regulator_code: str
    organization_type: str
    street: str
    city: str
    state: str
    zip_code: str
    country: str
    contact_office: str
    contact_phone: str
    transmitter_name: str
    transmitter_tin: str
    transmitter_tcc: str
    transmitter_phone: str
    transmitter_contact: str


@dataclass(frozen=True)
class Location:
    name: str
    ein: str
    rssd: str
    street: str
    city: str
    state: str
    zip_code: str
    country: str
    cash_in: Decimal = Decimal(0)
    cash_out: Decimal = Decimal(0)


@dataclass(frozen=True)
class Person:
    is_entity: bool = False
    last_name: str = ""
    first_name: str = ""
    middle_name: str = ""
    tin: str = ""
    tin_type: str = ""
    birth_date: date | None = None
    street: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""
    country: str = ""
    id_type: str = ""
    id_number: str = ""
    id_issuer_state: str = ""
    id_issuer_country: str = ""
    occupation: str = ""


@dataclass(frozen=True)
class Subject:
    role: str
    person: Person | None
    cash_in: Decimal
    cash_out: Decimal
    transactions: int
    accounts: tuple[tuple[str, str], ...] = ()  # (account, "in"|"out")


@dataclass(frozen=True)
class CtrActivity:
    transaction_date: date
    subjects: tuple[Subject, ...]
    locations: tuple[Location, ...]
    # (detail code, "in"|"out", exact amount, country): USD per cash type; foreign lines (53/54)
    # in their currency with its country
    details: tuple[tuple[str, str, Decimal, str], ...]
    transactions: int
    max_single_usd: Decimal
    prior_bsa_id: str = ""
    facts: ActivityFacts = field(init=False)

    def __post_init__(self):
        object.__setattr__(
            self,
            "facts",
            ActivityFacts(
                subject_transactions=tuple(s.transactions for s in self.subjects),
                transactions=self.transactions,
                max_single_usd=self.max_single_usd,
            ),
        )


def currency_country(currency: str) -> str:
    """The country of a currency for a foreign cash line: an ISO 4217 code begins with the ISO 3166
    code of its issuer (GBP GB, MXN MX, CAD CA; EUR EU, FinCEN's "European Union"). Supranational
    X.. currencies (XOF, XAF, XCD, XPF) name no single country: the line stays without one and rule
    CTR-025 stops the filing at validation (docs/filings.md, not built)."""
    return "" if currency.startswith("X") else currency[:2]


def dollars(amount: Decimal) -> int:
    """Whole dollars, cents rounded up (never down: an amount is never under-reported)."""
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def _amount_text(amount: int) -> str:
    return str(amount) if amount else ""


class _Writer:
    def __init__(self):
        self.seq = 0
        self.parties = 0
        self.total = 0

    def node(self, parent, tag: str, *, seq: bool = False):
        el = etree.SubElement(parent, f"{{{NS}}}{tag}")
        if seq:
            self.seq += 1
            el.set("SeqNum", str(self.seq))
        return el

    def leaf(self, parent, tag: str, value: str) -> None:
        self.node(parent, tag).text = value

    def party(self, activity, code: str, *, head: list[tuple[str, str]] = ()):
        self.parties += 1
        party = self.node(activity, "Party", seq=True)
        self.leaf(party, "ActivityPartyTypeCode", code)
        for tag, value in head:
            self.leaf(party, tag, value)
        return party

    def name(self, party, *, full: str = "", last: str = "", first: str = "", middle: str = "") -> None:
        name = self.node(party, "PartyName", seq=True)
        self.leaf(name, "PartyNameTypeCode", "L")
        if full:
            self.leaf(name, "RawPartyFullName", full)
            return
        self.leaf(name, "RawEntityIndividualLastName", last)
        if first:
            self.leaf(name, "RawIndividualFirstName", first)
        if middle:
            self.leaf(name, "RawIndividualMiddleName", middle)

    def address(self, party, *, street, city, state, zip_code, country) -> None:
        address = self.node(party, "Address", seq=True)
        for tag, value in (
            ("RawCityText", city),
            ("RawCountryCodeText", country),
            ("RawStateCodeText", state),
            ("RawStreetAddress1Text", street),
            ("RawZIPCode", zip_code),
        ):
            if value:
                self.leaf(address, tag, value)

    def phone(self, party, number: str) -> None:
        self.leaf(self.node(party, "PhoneNumber", seq=True), "PhoneNumberText", number)

    def ident(self, party, type_code: str, number: str, *, state: str = "", country: str = "") -> None:
        ident = self.node(party, "PartyIdentification", seq=True)
        if country:
            self.leaf(ident, "OtherIssuerCountryText", country)
        if state:
            self.leaf(ident, "OtherIssuerStateText", state)
        self.leaf(ident, "PartyIdentificationNumberText", number)
        self.leaf(ident, "PartyIdentificationTypeCode", type_code)

    def organization(self, party, type_id: str) -> None:
        self.leaf(
            self.node(party, "OrganizationClassificationTypeSubtype", seq=True), "OrganizationTypeID", type_id
        )

    def person(self, activity, code: str, p: Person, *, amounts=(), tin_unknown: bool = False):
        """A person or entity party (a CTR's person involved, a SAR's subject) in the schema's order:
        birth date, the form's ``amounts`` head elements, the entity flag, then name, address, TIN
        (or, with ``tin_unknown``, TINUnknownIndicator Y when there is none), ID and occupation."""
        head = []
        if p.birth_date and not p.is_entity:
            head.append(("IndividualBirthDateText", p.birth_date.strftime("%Y%m%d")))
        head.extend(amounts)
        if p.is_entity:
            head.append(("PartyAsEntityOrganizationIndicator", "Y"))
        party = self.party(activity, code, head=head)
        if p.is_entity:
            self.name(party, last=p.last_name)
        else:
            self.name(party, last=p.last_name, first=p.first_name, middle=p.middle_name)
        if p.street or p.city:
            self.address(
                party, street=p.street, city=p.city, state=p.state, zip_code=p.zip_code, country=p.country
            )
        if p.tin:
            self.ident(party, p.tin_type or "1", p.tin)
        elif tin_unknown:
            self.leaf(self.node(party, "PartyIdentification", seq=True), "TINUnknownIndicator", "Y")
        if p.id_number:
            self.ident(
                party, p.id_type or "999", p.id_number, state=p.id_issuer_state, country=p.id_issuer_country
            )
        if p.occupation:
            self.leaf(
                self.node(party, "PartyOccupationBusiness", seq=True), "OccupationBusinessText", p.occupation
            )
        return party


def institution_address(inst: Institution) -> dict[str, str]:
    return {
        "street": inst.street,
        "city": inst.city,
        "state": inst.state,
        "zip_code": inst.zip_code,
        "country": inst.country,
    }


def institution_parties(w: _Writer, activity, inst: Institution) -> None:
    """The parties every FinCEN batch activity carries for the filer, in the schema's order:
    transmitter (35), transmitter contact (37), filing institution (30), contact office (8)."""
    transmitter = w.party(activity, "35")
    w.name(transmitter, full=inst.transmitter_name)
    w.address(transmitter, **institution_address(inst))
    w.phone(transmitter, inst.transmitter_phone)
    w.ident(transmitter, "4", inst.transmitter_tin)
    w.ident(transmitter, "28", inst.transmitter_tcc)
    w.name(w.party(activity, "37"), full=inst.transmitter_contact)

    filer = w.party(activity, "30", head=[("PrimaryRegulatorTypeCode", inst.regulator_code)])
    w.name(filer, full=inst.name)
    w.address(filer, **institution_address(inst))
    w.ident(filer, "2", inst.ein)
    if inst.rssd:
        w.ident(filer, "14", inst.rssd)
    w.organization(filer, inst.organization_type)

    contact = w.party(activity, "8")
    w.name(contact, full=inst.contact_office)
    w.phone(contact, inst.contact_phone)


def _activity(w: _Writer, root, a: CtrActivity, inst: Institution, filing_date: date) -> None:
    activity = w.node(root, "Activity", seq=True)
    if a.prior_bsa_id:
        w.leaf(activity, "EFilingPriorDocumentNumber", a.prior_bsa_id)
    w.leaf(activity, "FilingDateText", filing_date.strftime("%Y%m%d"))
    assoc = w.node(activity, "ActivityAssociation", seq=True)
    w.leaf(assoc, "CorrectsAmendsPriorReportIndicator", "Y" if a.prior_bsa_id else "")
    w.leaf(assoc, "FinCENDirectBackFileIndicator", "")
    w.leaf(assoc, "InitialReportIndicator", "" if a.prior_bsa_id else "Y")

    institution_parties(w, activity, inst)

    for loc in a.locations:
        head = [
            ("IndividualEntityCashInAmountText", _amount_text(dollars(loc.cash_in))),
            ("IndividualEntityCashOutAmountText", _amount_text(dollars(loc.cash_out))),
        ]
        location = w.party(activity, "34", head=[(t, v) for t, v in head if v])
        w.name(location, full=loc.name)
        w.address(
            location,
            street=loc.street,
            city=loc.city,
            state=loc.state,
            zip_code=loc.zip_code,
            country=loc.country,
        )
        w.ident(location, "2", loc.ein)
        if loc.rssd:
            w.ident(location, "14", loc.rssd)
        w.organization(location, inst.organization_type)

    for s in a.subjects:
        amounts = [
            ("IndividualEntityCashInAmountText", str(dollars(s.cash_in))) if dollars(s.cash_in) else None,
            ("IndividualEntityCashOutAmountText", str(dollars(s.cash_out))) if dollars(s.cash_out) else None,
            ("MultipleTransactionsPersonsIndividualsIndicator", "Y") if s.transactions > 1 else None,
        ]
        subject = w.person(activity, s.role, s.person or Person(), amounts=[h for h in amounts if h])
        for number, direction in s.accounts:
            account = w.node(subject, "Account", seq=True)
            w.leaf(account, "AccountNumberText", number)
            assoc = w.node(account, "PartyAccountAssociation", seq=True)
            w.leaf(assoc, "PartyAccountAssociationTypeCode", "8" if direction == "in" else "9")

    rounded = [(code, dollars(amount), country) for code, _direction, amount, country in a.details]
    total_in = sum(n for code, n, _ in rounded if code in CASH_IN_CODES)
    total_out = sum(n for code, n, _ in rounded if code in CASH_OUT_CODES)
    cta = w.node(activity, "CurrencyTransactionActivity", seq=True)
    aggregated = a.transactions > 1 and a.max_single_usd <= THRESHOLD
    w.leaf(cta, "AggregateTransactionIndicator", "Y" if aggregated else "")
    for tag in (
        "ArmoredCarServiceIndicator",
        "ATMIndicator",
        "MailDepositShipmentIndicator",
        "NightDepositIndicator",
        "SharedBranchingIndicator",
    ):
        w.leaf(cta, tag, "")
    w.leaf(cta, "TotalCashInReceiveAmountText", _amount_text(total_in))
    w.leaf(cta, "TotalCashOutAmountText", _amount_text(total_out))
    w.leaf(cta, "TransactionDateText", a.transaction_date.strftime("%Y%m%d"))
    for code, amount, country in rounded:
        detail = w.node(cta, "CurrencyTransactionActivityDetail", seq=True)
        w.leaf(detail, "CurrencyTransactionActivityDetailTypeCode", code)
        w.leaf(detail, "DetailTransactionAmountText", str(amount))
        w.leaf(detail, "OtherCurrencyTransactionActivityDetailText", "")
        w.leaf(detail, "OtherForeignCurrencyCountryText", country)
        w.total += amount


def ctr_batch_xml(activities: list[CtrActivity], *, institution: Institution, filing_date: date) -> bytes:
    """The batch file for ``activities`` (in order): header totals computed from what was written."""
    w = _Writer()
    root = etree.Element(f"{{{NS}}}EFilingBatchXML", nsmap={"fc2": NS})
    w.leaf(root, "FormTypeCode", "CTRX")
    for a in activities:
        _activity(w, root, a, institution, filing_date)
    root.set("TotalAmount", str(w.total))
    root.set("PartyCount", str(w.parties))
    root.set("ActivityCount", str(len(activities)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
