"""Reference extractors (references.py): the engine, the configuration's validation, and the
candidate references every statement parser keeps (camt.053 001.02/001.08, camt.054, MT940, BAI2)."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role
from reconciliation.ingestion import references, services
from reconciliation.ingestion.references import Extractor, extract, parse_extractors
from reconciliation.ingestion.samples import Entry, Statement, camt_chunks
from reconciliation.ingestion.tests.factories import ACTOR, SourceFactory
from reconciliation.ingestion.tests.test_apis import BASE, user_client
from reconciliation.models import DataSource, Record

DAY = date.today() - timedelta(days=1)
INVOICE = r"(?P<ref>INV-\d{4}-\d{4})"
UETR = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


def engine(*spec, known=("end_to_end_id", "remittance", "account_servicer_ref")):
    return parse_extractors(list(spec), known=known)


# --- The engine ---------------------------------------------------------------------------------


def test_the_first_extractor_that_yields_wins_in_the_declared_order():
    extractors = engine(
        {"field": "end_to_end_id"},
        {"field": "remittance", "regex": INVOICE},
        {"field": "account_servicer_ref"},
    )
    both = {"end_to_end_id": "E2E-7", "remittance": "INV-2026-0042", "account_servicer_ref": "BANK-1"}
    assert extract(extractors, both) == ("E2E-7", "end_to_end_id")
    no_e2e = {"remittance": "paid INV-2026-0042 thanks", "account_servicer_ref": "BANK-1"}
    assert extract(extractors, no_e2e) == ("INV-2026-0042", rf"remittance /{INVOICE}/")
    assert extract(extractors, {"remittance": "no invoice", "account_servicer_ref": "BANK-1"}) == (
        "BANK-1",
        "account_servicer_ref",
    )
    # The order is the configuration's, not the candidates'.
    reversed_order = engine({"field": "account_servicer_ref"}, {"field": "end_to_end_id"})
    assert extract(reversed_order, both) == ("BANK-1", "account_servicer_ref")
    assert extract(extractors, {}) is None


@pytest.mark.parametrize("absent", ["NOTPROVIDED", "notprovided", "NONREF", "NonRef", "", "   ", None])
def test_notprovided_nonref_and_empty_are_absent(absent):
    extractors = engine({"field": "end_to_end_id"}, {"field": "account_servicer_ref"})
    assert extract(extractors, {"end_to_end_id": absent, "account_servicer_ref": "B1"}) == (
        "B1",
        "account_servicer_ref",
    )
    # A regex whose group captures a marker of absence yields nothing either.
    marker = engine({"field": "remittance", "regex": r"EREF\+(?P<ref>\S*)"})
    assert extract(marker, {"remittance": f"EREF+{absent or ''} SVWZ+x"}) is None


def test_the_named_group_of_the_first_match_is_the_reference():
    extractors = engine({"field": "remittance", "regex": r"Rechnung (?P<ref>\d+)/(?P<year>\d{4})"})
    found = extract(extractors, {"remittance": "Rechnung 17/2026 und Rechnung 18/2026"})
    assert found[0] == "17"  # the first match, its group "ref" only
    whitespace = engine({"field": "remittance", "regex": r"ref:(?P<ref>[^;]*);"})
    assert extract(whitespace, {"remittance": "ref: INV-9 ;"})[0] == "INV-9"


def test_a_field_extractor_takes_the_candidate_whole_and_labels_name_the_pattern():
    assert Extractor("end_to_end_id").label == "end_to_end_id"
    (regex,) = engine({"field": "remittance", "regex": r"(?P<ref>INV-\d+)"})
    assert regex.label == r"remittance /(?P<ref>INV-\d+)/"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            [{"field": "remittance", "regex": "(?P<ref>INV-[0-9+"}],
            "[0].regex: not a valid regular expression",
        ),
        ([{"field": "remittance", "regex": r"INV-\d+"}], "[0].regex: needs a named group ref"),
        ([{"field": "remittance", "regex": r"(?P<invoice>INV-\d+)"}], "[0].regex: needs a named group ref"),
        ([{"field": "end_to_end_id"}, {"field": "iban"}], "[1].field: unknown candidate field 'iban'"),
        ([{"field": "remittance", "pattern": "x"}], "[0]: must be {field} or {field, regex}"),
        ([{"regex": "(?P<ref>x)"}], "[0]: must be {field} or {field, regex}"),
        ([], "mapping.reference_extractors: a non-empty list"),
        ({"field": "remittance"}, "mapping.reference_extractors: a non-empty list"),
    ],
)
def test_invalid_extractors_are_refused_with_the_path(spec, fragment):
    with pytest.raises(ApplicationError) as error:
        references.validate({"reference_extractors": spec}, "camt053")
    assert error.value.code == "invalid_mapping"
    assert fragment in error.value.message
    assert error.value.message.startswith("mapping.reference_extractors")


def test_candidate_names_are_the_format_s():
    assert references.validate({"reference_extractors": [{"field": "customer_reference"}]}, "mt940")
    with pytest.raises(ApplicationError, match="unknown candidate field 'uetr'"):
        references.validate({"reference_extractors": [{"field": "uetr"}]}, "bai2")
    with pytest.raises(ApplicationError, match="not available for json sources"):
        references.validate({"reference_extractors": [{"field": "reference"}]}, "json")
    csv = {"columns": {"reference": "Ref", "description": "Text"}, "attributes": ["Memo"]}
    assert references.validate(csv | {"reference_extractors": [{"field": "Memo"}]}, "csv")
    with pytest.raises(ApplicationError, match="known: reference, description, Memo"):
        references.validate(csv | {"reference_extractors": [{"field": "counterparty"}]}, "csv")
    assert references.validate({}, "camt053") == ()  # none declared: the parser's reference stands


# --- The configuration: apply_config and the sources API ------------------------------------------


@pytest.mark.django_db
def test_apply_config_names_the_bad_extractor_and_writes_nothing(tmp_path):
    tenant = SourceFactory().tenant
    path = tmp_path / "config.yaml"
    path.write_text(
        f"version: 1\ntenant: {tenant.slug}\nsources:\n"
        "  - name: bank\n    kind: statement\n    format: camt053\n    mapping:\n"
        "      reference_extractors:\n        - {field: end_to_end_id}\n"
        "        - {field: remittance, regex: 'INV-\\d+'}\n"
        "  - name: bank2\n    kind: statement\n    format: mt940\n    mapping:\n"
        "      reference_extractors: [{field: creditor_reference}]\n"
        "  - name: bank3\n    kind: statement\n    format: bai2\n    mapping:\n"
        "      reference_extractors: [{field: remittance, regex: '(?P<ref>INV-(\\d+'}]\n"
    )
    with pytest.raises(CommandError) as error:
        call_command("apply_config", str(path))
    message = str(error.value)
    assert "sources[0] (bank): mapping.reference_extractors[1].regex: needs a named group ref" in message
    assert "sources[1] (bank2): mapping.reference_extractors[0].field: unknown candidate field" in message
    assert (
        "sources[2] (bank3): mapping.reference_extractors[0].regex: not a valid regular expression" in message
    )
    assert not DataSource.objects.filter(tenant=tenant, name__startswith="bank").exists()

    path.write_text(
        f"version: 1\ntenant: {tenant.slug}\nsources:\n"
        "  - name: bank\n    kind: statement\n    format: camt053\n    mapping:\n"
        "      reference_extractors:\n        - {field: end_to_end_id}\n"
        "        - {field: remittance, regex: '(?P<ref>INV-\\d{4}-\\d{4})'}\n"
    )
    call_command("apply_config", str(path))
    stored = DataSource.objects.get(tenant=tenant, name="bank").mapping["reference_extractors"]
    assert stored[1] == {"field": "remittance", "regex": r"(?P<ref>INV-\d{4}-\d{4})"}


@pytest.mark.django_db
def test_the_sources_api_refuses_a_bad_extractor_with_invalid_mapping_and_the_path():
    tenant = SourceFactory().tenant
    admin = user_client(tenant, Role.ADMIN)
    extractors = [{"field": "remittance", "regex": "(?P<ref>INV"}]
    body = {"name": "bank", "kind": "statement", "format": "camt053",
            "mapping": {"reference_extractors": extractors}}  # fmt: skip
    bad = admin.post(f"{BASE}/sources/", body, format="json")
    error = bad.json()["error"]
    assert (bad.status_code, error["code"]) == (400, "invalid_mapping")
    assert error["message"].startswith(
        "mapping.reference_extractors[0].regex: not a valid regular expression"
    )
    assert error["details"] == {"path": "mapping.reference_extractors[0].regex"}
    body["mapping"]["reference_extractors"][0]["regex"] = "(?P<ref>INV-[0-9]+)"
    assert admin.post(f"{BASE}/sources/", body, format="json").status_code == 201


# --- Candidate references kept by each parser -----------------------------------------------------


def ingest_text(source, tmp_path, text: str, name: str):
    path = tmp_path / name
    path.write_text(text)
    batch = services.batch_ingest_file(tenant=source.tenant, actor=ACTOR, source=source, path=path)
    assert batch.status == "loaded", (batch.reject_code, batch.reject_reason)
    return {r.external_id: r for r in Record.objects.filter(batch=batch)}


def referenced_entries():
    return [
        Entry(D("120.00"), DAY, ref="B-1", end_to_end="NOTPROVIDED", instruction_id="INSTR-1", uetr=UETR,
              description="Invoice INV-2026-0042 thank you", creditor_reference="RF18539007547034"),
        Entry(D("80.00"), DAY, ref="B-2", end_to_end="E2E-2", description="INV-2026-0043"),
    ]  # fmt: skip


def camt_statement():
    return Statement("S1", "DE89370400440532013000", "EUR", D("1000.00"), DAY, DAY, referenced_entries)


EXTRACTORS = [{"field": "end_to_end_id"}, {"field": "remittance", "regex": INVOICE}]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("message", "version"), [("053", "02"), ("053", "08"), ("054", "08"), ("054", "02")])
def test_camt_keeps_every_candidate_reference(tmp_path, message, version):
    source = SourceFactory(kind="statement", format=f"camt{message}", mapping={})
    text = "".join(camt_chunks([camt_statement()], message=message, version=version))
    got = ingest_text(source, tmp_path, text, "s.xml")
    first, second = got["S1/B-1"], got["S1/B-2"]
    expected = {
        "end_to_end_id": "NOTPROVIDED",  # as the bank sent it
        "instruction_id": "INSTR-1",
        "account_servicer_ref": "B-1",  # the entry's, backing the transaction's
        "creditor_reference": "RF18539007547034",
        "remittance": "Invoice INV-2026-0042 thank you",
    } | ({"uetr": UETR} if version == "08" else {})
    assert first.attributes["references"] == expected
    # No extractors declared: the reference is what the parser always gave (AcctSvcrRef here).
    assert (first.reference, second.reference) == ("B-1", "E2E-2")
    assert "reference_from" not in first.attributes

    source.mapping = {"reference_extractors": EXTRACTORS}
    source.save()
    again = [Entry(e.amount, e.booking_date, ref=f"{e.ref}x", end_to_end=e.end_to_end,
                   description=e.description) for e in referenced_entries()]  # fmt: skip
    later = Statement("S2", "DE89370400440532013000", "EUR", D("1200.00"), DAY, DAY, lambda: again)
    got = ingest_text(
        source, tmp_path, "".join(camt_chunks([later], message=message, version=version)), "2.xml"
    )
    first, second = got["S2/B-1x"], got["S2/B-2x"]
    assert (first.reference, first.attributes["reference_from"]) == (
        "INV-2026-0042",
        f"remittance /{INVOICE}/",
    )
    assert (second.reference, second.attributes["reference_from"]) == ("E2E-2", "end_to_end_id")


MT940 = """:20:STMT-2611
:25:DE89370400440532013000
:28C:7/1
:60F:C{day}EUR1000,00
:61:{day}{md}C150,00NTRFNONREF//BK-0001
:86:Zahlung Kunde ACME GmbH Rechnung INV-2026-00
42 vom 01.11.
:61:{day}{md}C75,00NTRFCUST-77//BK-0002
:86:166?00GUTSCHRIFT?20EREF+E2E-77?21SVWZ+INV-2026-0077
:62F:C{day}EUR1225,00
-
"""


@pytest.mark.django_db(transaction=True)
def test_mt940_keeps_the_61_references_and_the_whole_86_text(tmp_path):
    source = SourceFactory(kind="statement", format="mt940", mapping={})
    text = MT940.format(day=f"{DAY:%y%m%d}", md=f"{DAY:%m%d}")
    got = ingest_text(source, tmp_path, text, "s.sta")
    first, second = got["STMT-2611:7/1/1"], got["STMT-2611:7/1/2"]
    assert first.attributes["references"] == {
        "customer_reference": "NONREF",
        "bank_reference": "BK-0001",
        # Lines joined as SWIFT wrapped them (inside the invoice number): no separator.
        "remittance": "Zahlung Kunde ACME GmbH Rechnung INV-2026-0042 vom 01.11.",
    }
    assert second.attributes["references"] == {
        "customer_reference": "CUST-77",
        "bank_reference": "BK-0002",
        "end_to_end_id": "E2E-77",  # EREF+ of a structured :86:
        "remittance": "166?00GUTSCHRIFT?20EREF+E2E-77?21SVWZ+INV-2026-0077",
    }
    assert (first.reference, second.reference) == ("NONREF", "CUST-77")  # unchanged without extractors


BAI2 = """01,SENDER,RECEIVER,{day},1200,FILE1,,,2/
02,RECEIVER,BANK,1,{day},,USD,2/
03,ACC-1,USD,010,100000,,,015,125000,,/
16,195,15000,Z,BK-1,NONREF,WIRE FROM ACME CORP
88,ORIG REF INV-2026-0042 PAYMENT/
16,195,10000,Z,BK-2,CUST-9,ACH CREDIT/
49,250000,5/
98,250000,1,7/
99,250000,1,9/
"""


@pytest.mark.django_db(transaction=True)
def test_bai2_keeps_references_and_the_88_continuation_text(tmp_path):
    extract_invoice = [{"field": "customer_reference"}, {"field": "remittance", "regex": INVOICE}]
    source = SourceFactory(kind="statement", format="bai2", mapping={"reference_extractors": extract_invoice})
    got = ingest_text(source, tmp_path, BAI2.format(day=f"{DAY:%y%m%d}"), "s.bai")
    first, second = got[f"ACC-1/{DAY:%Y%m%d}/1"], got[f"ACC-1/{DAY:%Y%m%d}/2"]
    assert first.attributes["references"] == {
        "customer_reference": "NONREF",
        "bank_reference": "BK-1",
        "remittance": "WIRE FROM ACME CORP ORIG REF INV-2026-0042 PAYMENT",
    }
    assert (first.reference, first.attributes["reference_from"]) == (
        "INV-2026-0042",
        f"remittance /{INVOICE}/",
    )
    assert (second.reference, second.attributes["reference_from"]) == ("CUST-9", "customer_reference")


@pytest.mark.django_db(transaction=True)
def test_a_csv_source_draws_on_its_mapped_columns_and_attributes(tmp_path):
    mapping = {
        "columns": {"external_id": "trade_id", "business_date": "trade_date", "amount": "amount",
                    "currency": "ccy", "reference": "ref"},
        "attributes": ["memo"],
        "reference_extractors": [{"field": "reference"}, {"field": "memo", "regex": INVOICE}],
    }  # fmt: skip
    source = SourceFactory(kind="ledger", mapping=mapping)
    d = DAY.isoformat()
    text = (
        "trade_id,trade_date,amount,ccy,ref,memo\n"
        f"T1,{d},1,EUR,NOTPROVIDED,for INV-2026-0001\nT2,{d},2,EUR,R-2,x\n"
    )
    got = ingest_text(source, tmp_path, text, "l.csv")
    assert (got["T1"].reference, got["T1"].attributes) == (
        "INV-2026-0001",
        {"memo": "for INV-2026-0001", "reference_from": f"memo /{INVOICE}/"},
    )
    assert (got["T2"].reference, got["T2"].attributes["reference_from"]) == ("R-2", "reference")


def test_the_documented_examples_are_valid_configurations():
    """The YAML blocks of docs/config-file.md's "Reference extractors" section validate."""
    import re as re_module
    from pathlib import Path

    import yaml

    docs = (Path(__file__).resolve().parents[3] / "docs" / "config-file.md").read_text()
    section = docs.split("## Reference extractors", 1)[1]
    blocks = [yaml.safe_load(b) for b in re_module.findall(r"```yaml\n(.*?)```", section, re_module.DOTALL)]
    sources = [s for b in blocks if isinstance(b, dict) for s in b.get("sources", [])]
    assert {s["format"] for s in sources} == {"camt053", "mt940"}
    for source in sources:
        extractors = references.validate(source["mapping"], source["format"])
        assert any(e.regex is not None and e.regex.search("x INV-2026-0042 y") for e in extractors)
