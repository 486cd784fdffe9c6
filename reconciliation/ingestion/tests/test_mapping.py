"""Mapping declarations: composite keys and per-field sign rules, their errors on every path
(validation function, API, apply_config, admin) and how the validator reads them."""

from datetime import date
from decimal import Decimal

import pytest

from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Role
from jfintech.tests.factories import member
from reconciliation.ingestion import references, services
from reconciliation.ingestion.config_file import config_validate
from reconciliation.ingestion.mapping import SignRule, json_key_fields, validate_csv_mapping
from reconciliation.ingestion.parsers.json_records import parse_json_records
from reconciliation.ingestion.tests.factories import ACTOR, POSITIONS_MAPPING, TRADES_MAPPING, SourceFactory
from reconciliation.ingestion.validation import Validator

COLUMNS = {"external_id": "Ref", "business_date": "Date", "quantity": "Qty", "amount": "Amt"}
SIDE = {"sign_by": "Side", "negative_when": ["SELL", "S"]}


def mapping(**changes) -> dict:
    return {"columns": dict(COLUMNS), **changes}


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (
            mapping(signs={"price": SIDE}),
            "signs.price: unknown field 'price' (numeric fields: amount, quantity)",
        ),
        (mapping(signs=[SIDE]), "signs must be {field: {sign_by: column, negative_when: [...]"),
        (
            mapping(signs={"quantity": {"negative_when": ["S"]}}),
            "signs.quantity.sign_by: the column whose value",
        ),
        (mapping(signs={"quantity": {"sign_by": "", "negative_when": ["S"]}}), "signs.quantity.sign_by:"),
        (
            mapping(signs={"quantity": {"sign_by": "Side"}}),
            "signs.quantity.negative_when must be a non-empty list of values",
        ),
        (
            mapping(signs={"quantity": {"sign_by": "Side", "negative_when": []}}),
            "signs.quantity.negative_when must be a non-empty list of values",
        ),
        (
            mapping(signs={"quantity": {"sign_by": "Side", "negative_when": "SELL"}}),
            "signs.quantity.negative_when must be a non-empty list of values",
        ),
        (
            mapping(signs={"quantity": {**SIDE, "positive_when": []}}),
            "signs.quantity.positive_when must be a non-empty list of values",
        ),
        (
            mapping(signs={"quantity": {**SIDE, "positive_when": ["buy", "sell"]}}),
            "signs.quantity: SELL listed both negative and positive",
        ),
        (mapping(signs={"quantity": {**SIDE, "negative": ["X"]}}), "signs.quantity must be {sign_by: column"),
        (
            {"columns": {**COLUMNS, "quantity": None}, "signs": {"quantity": SIDE}},
            "columns.quantity must be a column name",
        ),
        (
            {"columns": {k: v for k, v in COLUMNS.items() if k != "quantity"}, "signs": {"quantity": SIDE}},
            "signs.quantity: the mapping has no quantity column to sign",
        ),
        (
            mapping(sign={"column": "DC", "negative": ["D"], "positive": ["C"]}, signs={"amount": SIDE}),
            "signs.amount: 'sign' already signs the amount; keep one of the two",
        ),
        (mapping(sign="negate", signs={"amount": SIDE}), "signs.amount: 'sign' already signs the amount"),
        (
            {"columns": {**COLUMNS, "external_id": ["Ref"]}},
            "columns.external_id must be a column name, or a list",
        ),
        ({"columns": {**COLUMNS, "external_id": ["Ref", "Ref"]}}, "two or more distinct column names"),
        ({"columns": {**COLUMNS, "external_id": ["Ref", ""]}}, "columns.external_id must be"),
        ({"columns": {**COLUMNS, "external_id": {"a": "b"}}}, "columns.external_id must be"),
        ({"columns": {**COLUMNS, "amount": ["A", "B"]}}, "columns.amount must be a column name"),
    ],
)
def test_an_invalid_key_or_sign_declaration_is_a_clear_invalid_mapping(given, error):
    with pytest.raises(ApplicationError) as raised:
        validate_csv_mapping(given, "trade")
    assert raised.value.code == "invalid_mapping"
    assert error in raised.value.message


def test_a_valid_declaration_gives_the_key_its_dates_and_the_rules_upper_cased():
    n = validate_csv_mapping(
        {**POSITIONS_MAPPING, "signs": {"quantity": {"sign_by": "Side", "negative_when": [" sell", "s"]}}},
        "position",
    )
    assert (n.key_columns, n.key_dates, n.key_label) == (
        ("Account", "ISIN", "AsOf"), (False, False, True), "key Account|ISIN|AsOf",
    )  # fmt: skip
    assert n.sign_rules == (SignRule("quantity", "Side", ("SELL", "S"), ()),)
    assert validate_csv_mapping(mapping(), "trade").key_label == "external id"  # a single column as before


def test_json_records_name_the_key_by_record_fields_or_by_the_csv_columns_mapped_to_them():
    assert json_key_fields({}) == ()
    assert json_key_fields({"columns": {"external_id": ["account", "business_date"]}}) == (
        "account",
        "business_date",
    )
    assert json_key_fields(POSITIONS_MAPPING) == ("account", "instrument", "business_date")
    with pytest.raises(ApplicationError, match="Desk is not a record field"):
        json_key_fields({"columns": {"external_id": ["account", "Desk"]}})


def validator(mapping: dict, kind: str) -> Validator:
    n = validate_csv_mapping(mapping, kind)
    return Validator(kind=kind, normalization=n, window=(date(2026, 1, 1), date(2026, 12, 31)))


def staged(external_id, business_date="30/11/2026", quantity="10", sign=None) -> tuple:
    # STAGE_COLUMNS order: line_no raw parse_error parse_message external_id version amend business_date
    # account instrument reference counterparty currency amount quantity trade_date value_date description
    # sign attributes
    return (2, "raw", None, None, external_id, None, None, business_date, "A", "I", None, None, "EUR",
            None, quantity, None, None, None, sign, None)  # fmt: skip


def test_the_validator_derives_the_key_with_the_date_in_iso_form_and_trimmed_values():
    v = validator(POSITIONS_MAPPING, "position")
    checked = v.check(staged((" CUST-1 ", "IE00B4L5Y983", "30/11/2026")))
    assert (checked[2], checked[4]) == (None, "CUST-1|IE00B4L5Y983|2026-11-30")
    # An impossible date cannot be normalised: the key keeps the text, the row is rejected for the date.
    bad = v.check(staged(("CUST-1", "IE00B4L5Y983", "31/11/2026"), business_date="31/11/2026"))
    assert bad[2] == "malformed_date"
    missing = v.check(staged(("CUST-1", " ", "30/11/2026")))
    assert missing[2:4] == (
        "missing_field",
        "ISIN is empty: it is part of the key Account|ISIN|AsOf that identifies the row",
    )


def test_the_validator_signs_only_the_fields_with_a_value():
    rules = {"quantity": {"sign_by": "Side", "negative_when": ["S"], "positive_when": ["B"]}}
    v = validator({"columns": {**COLUMNS}, "signs": rules}, "position")
    # The sign slot: (the legacy sign column's text, then each rule's side).
    assert v.check(staged("P1", business_date="2026-11-30", sign=("", "s")))[15] == Decimal(-10)
    assert v.check(staged("P1", business_date="2026-11-30", sign=("", "b")))[15] == Decimal(10)
    unknown = v.check(staged("P1", business_date="2026-11-30", sign=("", "X")))
    assert unknown[2:4] == (
        "malformed_sign",
        "Side 'X' is not a side that signs the quantity (negative S; positive B)",
    )


def test_a_json_record_of_a_keyed_source_gets_the_derived_key():
    parsed = parse_json_records(
        [{"account": "A", "instrument": "I", "business_date": "2026-11-30", "quantity": 5}],
        mapping=POSITIONS_MAPPING,
    )
    ((row),) = list(parsed.rows)
    assert row[4] == ("A", "I", "2026-11-30")
    checked = Validator(kind="position", normalization=parsed.normalization,
                        window=(date(2026, 1, 1), date(2026, 12, 31))).check(row)  # fmt: skip
    assert (checked[2], checked[4]) == (None, "A|I|2026-11-30")


@pytest.mark.django_db
def test_the_api_and_apply_config_refuse_a_bad_declaration_with_its_reason(client):
    tenant = SourceFactory().tenant
    bad_signs = {**TRADES_MAPPING, "signs": {"quantity": {"sign_by": "Side", "negative_when": []}}}
    api = client
    api.force_login(member(tenant, Role.ADMIN))
    api.defaults["HTTP_X_TENANT"] = tenant.slug
    response = api.post(
        "/api/v1/ingestion/sources/", {"name": "fo", "kind": "trade", "mapping": bad_signs},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_mapping"
    assert "signs.quantity.negative_when must be a non-empty list" in response.json()["error"]["message"]
    keyed_json = {"columns": {"external_id": ["account", "Desk"]}}
    push = {"name": "push", "kind": "position", "format": "json", "mapping": keyed_json}
    response = api.post("/api/v1/ingestion/sources/", push, content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_mapping")

    _, errors = config_validate({
        "version": 1, "tenant": tenant.slug,
        "sources": [
            {"name": "positions", "kind": "position", "mapping": POSITIONS_MAPPING},
            {"name": "trades", "kind": "trade", "mapping": bad_signs},
            {"name": "pos2", "kind": "position", "mapping": {**POSITIONS_MAPPING, "signs": {"price": {}}}},
        ],
    })  # fmt: skip
    assert errors == [
        "sources[1] (trades): signs.quantity.negative_when must be a non-empty list of values",
        "sources[2] (pos2): signs.price: unknown field 'price' (numeric fields: amount, quantity)",
    ]


@pytest.mark.django_db
def test_the_admin_shows_the_mapping_indented(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    source = SourceFactory(kind="position", mapping=POSITIONS_MAPPING)
    page = client.get(f"/admin/reconciliation/datasource/{source.pk}/change/").content.decode()
    # One key a line (jsonb keeps its own key order), not one long JSON line.
    assert "    &quot;external_id&quot;: [\n      &quot;Account&quot;,\n      &quot;ISIN&quot;," in page


@pytest.mark.django_db(transaction=True)
def test_a_push_to_a_csv_source_whose_key_has_an_unmapped_column_is_refused_whole():
    """The key's Portfolio column is in the CSV but maps to no record field: JSON cannot make it."""
    columns = {**POSITIONS_MAPPING["columns"], "external_id": ["Account", "Portfolio"]}
    source = SourceFactory(kind="position", mapping={**POSITIONS_MAPPING, "columns": columns})
    batch = services.batch_ingest_records(
        tenant=source.tenant, actor=ACTOR, source=source,
        records=[{"account": "A", "business_date": date.today().isoformat(), "quantity": "1"}],
    )  # fmt: skip
    assert (batch.status, batch.reject_code, batch.rows_total) == ("rejected", "invalid_mapping", 0)
    assert "Portfolio is not a record field" in batch.reject_reason


def test_a_composite_key_is_no_reference_candidate_but_its_columns_fields_are():
    """Reference extractors run before the validator derives the key: they cannot read it."""
    with pytest.raises(ApplicationError, match="unknown candidate field 'external_id'"):
        references.validate({**POSITIONS_MAPPING, "reference_extractors": [{"field": "external_id"}]}, "csv")
    assert references.validate(
        {**POSITIONS_MAPPING, "reference_extractors": [{"field": "instrument"}]}, "csv"
    )
