"""How a source's text becomes typed values: the CSV mapping and the normalisation it implies.

A CSV source's ``mapping`` (DataSource.mapping)::

    {
      "columns": {"external_id": "TradeRef", "business_date": "TradeDate", "amount": "Amount", ...},
                                          # external_id may list columns: a composite natural key
                                          # ["Account", "ISIN", "AsOf"] (see composite_key below)
      "delimiter": ",",                   # default ","
      "encoding": "utf-8",                # default "utf-8" (a BOM is skipped)
      "date_format": "%d/%m/%Y",          # strftime subset: %Y %m %d and literal separators
      "decimal_separator": ",",           # default "."
      "thousands_separator": ".",         # default none
      "sign": "as_is" | "negate" | {"column": "DC", "negative": ["D", "DR"], "positive": ["C", "CR"]},
      "signs": {"quantity": {"sign_by": "Side", "negative_when": ["SELL", "S"],
                             "positive_when": ["BUY", "B"]}},   # any numeric field (SignRule)
      "default_currency": "EUR",
      "attributes": ["Desk", "Trader"],   # extra columns kept in the record's attributes
      "last_line_break": "required",      # default; "optional" when the producer omits it (RFC 4180
                                          # allows that; parsers/csv.py says what is checked then)
      "reference_extractors": [...]       # optional: how ``reference`` is derived from the mapped
    }                                     # text fields and attributes (references.py)

A statement source's mapping takes only ``reference_extractors`` (over its parser's candidate
references; docs/config-file.md, "Reference extractors").

Parsers only pick the mapped columns (cheap, C-level); turning text into dates, amounts and signs
is done by validation.Validator from the ``Normalization`` below.

A composite key (``columns.external_id`` a list) reaches the validator as the tuple of its
components' texts in the external_id slot; per-field sign rules (``signs``) as a tuple in the sign
slot (parsers/csv.py). The record's external_id is then ``composite_key`` of the components, so
the loader's duplicate and amendment logic is the same for both kinds of key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.kinds import KindLoader, loader_for
from reconciliation.models import RecordKind

# The record fields a source can provide (the parsers' text columns, in order).
FIELDS = (
    "external_id", "version", "amend", "business_date", "account", "instrument", "reference",
    "counterparty", "currency", "amount", "quantity", "trade_date", "value_date", "description", "sign",
)  # fmt: skip
REQUIRED = {"external_id", "business_date"}
# The value each kind cannot do without (a position has a quantity; everything else an amount).
REQUIRED_VALUE = {RecordKind.POSITION: "quantity"}
DATE_FIELDS = ("business_date", "trade_date", "value_date")
NUMERIC_FIELDS = ("amount", "quantity")
# Fields a JSON record's composite key can be made of (the record's own key fields are not).
KEY_PART_FIELDS = tuple(f for f in FIELDS if f not in ("external_id", "version", "amend", "sign"))
KEY_SEPARATOR = "|"
_SIGN_RULE_KEYS = {"sign_by", "negative_when", "positive_when"}

_DIRECTIVES = {"%Y": ("y", r"([0-9]{4})"), "%m": ("m", r"([0-9]{1,2})"), "%d": ("d", r"([0-9]{1,2})")}


def required_value_field(kind: str) -> str:
    return REQUIRED_VALUE.get(kind, "amount")


@dataclass(frozen=True)
class SignRule:
    """A numeric field signed by the value of another column (a buy/sell or debit/credit side).

    Values are compared trimmed and upper-cased. With ``positive`` empty every value not listed
    negative is positive; an empty side is never read as positive (it is a rejection).
    """

    field: str  # amount | quantity
    column: str
    negative: tuple[str, ...]
    positive: tuple[str, ...] = ()


@dataclass(frozen=True)
class Normalization:
    """How the validator reads a source's text."""

    date_regex: str = r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$"
    date_groups: tuple[int, int, int] = (1, 2, 3)  # positions of year, month, day in the regex
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str = ""
    negate: bool = False
    sign_negative: tuple[str, ...] = ()
    sign_positive: tuple[str, ...] = ()
    default_currency: str = ""
    attributes: tuple[str, ...] = field(default=())
    # A composite external_id: the columns (JSON: record fields) it is made of, and which are dates
    # (a date component is keyed in ISO form, so 30/11/2026 and 2026-11-30 give the same key).
    key_columns: tuple[str, ...] = ()
    key_dates: tuple[bool, ...] = ()
    sign_rules: tuple[SignRule, ...] = ()

    @property
    def key_label(self) -> str:
        """How a rejection names the key: "external id", or "key Account|ISIN|AsOf"."""
        return f"key {KEY_SEPARATOR.join(self.key_columns)}" if self.key_columns else "external id"

    @property
    def sign_column(self) -> bool:
        return bool(self.sign_negative or self.sign_positive)


ISO = Normalization()


def composite_key(parts) -> str:
    """The external_id of a composite key: its trimmed components joined by "|". A backslash or a
    "|" inside a value is escaped, so two different component tuples never give the same key."""
    return KEY_SEPARATOR.join(p.replace("\\", "\\\\").replace("|", "\\|") for p in parts)


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_mapping")


def _key_columns(columns: dict) -> tuple[str, ...]:
    """The composite key's columns (empty for a single external_id column); checks every column."""
    for name, column in columns.items():
        if name != "external_id" and not (isinstance(column, str) and column.strip()):
            raise _invalid(f"columns.{name} must be a column name")
    key = columns.get("external_id")
    if isinstance(key, str) and key.strip():
        return ()
    if (
        not isinstance(key, list)
        or len(key) < 2
        or not all(isinstance(c, str) and c.strip() for c in key)
        or len(set(key)) != len(key)
    ):
        raise _invalid(
            "columns.external_id must be a column name, or a list of two or more distinct column"
            " names (a composite key, e.g. [Account, ISIN, AsOf])"
        )
    return tuple(key)


def _sign_rules(mapping: dict, columns: dict) -> tuple[SignRule, ...]:
    signs = mapping.get("signs", {})
    if not isinstance(signs, dict):
        raise _invalid("signs must be {field: {sign_by: column, negative_when: [...], positive_when: [...]}}")
    rules = []
    for name, rule in signs.items():
        where = f"signs.{name}"
        if name not in NUMERIC_FIELDS:
            raise _invalid(f"{where}: unknown field {name!r} (numeric fields: {', '.join(NUMERIC_FIELDS)})")
        if name not in columns:
            raise _invalid(f"{where}: the mapping has no {name} column to sign")
        if name == "amount" and mapping.get("sign", "as_is") != "as_is":
            raise _invalid(f"{where}: 'sign' already signs the amount; keep one of the two")
        if not isinstance(rule, dict) or set(rule) - _SIGN_RULE_KEYS:
            raise _invalid(f"{where} must be {{sign_by: column, negative_when: [...], positive_when: [...]}}")
        column = rule.get("sign_by")
        if not isinstance(column, str) or not column.strip():
            raise _invalid(f"{where}.sign_by: the column whose value gives the sign is required")
        values = {}
        for key in ("negative_when", "positive_when"):  # positive_when may be left out, not empty
            given = rule.get(key, [] if key == "positive_when" else None)
            if not isinstance(given, list) or (key in rule and not given):
                raise _invalid(f"{where}.{key} must be a non-empty list of values")
            values[key] = tuple(str(v).strip().upper() for v in given)
            if "" in values[key]:
                raise _invalid(f"{where}.{key}: an empty value cannot give a sign")
        both = sorted(set(values["negative_when"]) & set(values["positive_when"]))
        if both:
            raise _invalid(f"{where}: {', '.join(both)} listed both negative and positive")
        rules.append(SignRule(name, column, values["negative_when"], values["positive_when"]))
    return tuple(rules)


def date_regex(fmt: str) -> tuple[str, tuple[int, int, int]]:
    """'%d/%m/%Y' → (regex with three groups, group positions of year, month, day)."""
    parts, order, i = [], [], 0
    while i < len(fmt):
        token = fmt[i : i + 2]
        if token in _DIRECTIVES:
            name, group = _DIRECTIVES[token]
            parts.append(group)
            order.append(name)
            i += 2
        elif fmt[i] == "%":
            raise ApplicationError(
                f"date_format {fmt!r}: only %Y, %m and %d are supported", code="invalid_mapping"
            )
        else:
            parts.append(re.escape(fmt[i]))
            i += 1
    if sorted(order) != ["d", "m", "y"]:
        raise ApplicationError(
            f"date_format {fmt!r} must contain %Y, %m and %d once each", code="invalid_mapping"
        )
    groups = tuple(order.index(n) + 1 for n in ("y", "m", "d"))
    return "^" + "".join(parts) + "$", groups


def normalization_for(mapping: dict) -> Normalization:
    """Validate a CSV mapping and return the normalisation it implies (clear errors)."""
    fmt = mapping.get("date_format", "%Y-%m-%d")
    regex, groups = date_regex(fmt)
    decimal = mapping.get("decimal_separator", ".")
    thousands = mapping.get("thousands_separator", "") or ""
    if decimal not in (".", ","):
        raise ApplicationError("decimal_separator must be '.' or ','", code="invalid_mapping")
    if thousands == decimal or thousands not in ("", ".", ",", " ", "'"):
        raise ApplicationError(
            "thousands_separator must differ from the decimal separator and be one of . , ' or space",
            code="invalid_mapping",
        )
    sign = mapping.get("sign", "as_is")
    negate, negative, positive = False, (), ()
    if isinstance(sign, dict):
        negative = tuple(str(v).strip().upper() for v in sign.get("negative", ()))
        positive = tuple(str(v).strip().upper() for v in sign.get("positive", ()))
        if not sign.get("column") or not (negative and positive):
            raise ApplicationError(
                "sign as a column needs 'column', 'negative' and 'positive' values", code="invalid_mapping"
            )
    elif sign == "negate":
        negate = True
    elif sign != "as_is":
        raise ApplicationError("sign must be 'as_is', 'negate' or a column mapping", code="invalid_mapping")
    currency = (mapping.get("default_currency") or "").upper()
    if currency:
        from reconciliation.ingestion.currencies import iso_currency_codes

        if currency not in iso_currency_codes():
            raise ApplicationError(f"default_currency {currency!r} is not ISO 4217", code="invalid_mapping")
    columns = mapping.get("columns") or {}
    key = _key_columns(columns)
    dates = {columns[f] for f in DATE_FIELDS if f in columns}
    return Normalization(
        date_regex=regex, date_groups=groups, date_format=fmt, decimal_separator=decimal,
        thousands_separator=thousands, negate=negate, sign_negative=negative, sign_positive=positive,
        default_currency=currency, attributes=tuple(mapping.get("attributes", ())), key_columns=key,
        key_dates=tuple(c in dates for c in key), sign_rules=_sign_rules(mapping, columns),
    )  # fmt: skip


# What a handed-off kind's mapping may say (kinds.py): its values are typed by the kind's loader
# (ISO dates, "." decimals), so the normalisation options of records do not apply.
KIND_MAPPING_KEYS = {"columns", "delimiter", "encoding", "last_line_break"}


def validate_kind_mapping(mapping: dict, loader: KindLoader, *, csv: bool) -> Normalization:
    """A handed-off kind's mapping: ``columns`` maps the kind's fields to headers (a CSV source
    must map its required fields; a JSON record names the fields itself)."""
    extra = sorted(set(mapping) - KIND_MAPPING_KEYS)
    if extra:
        raise _invalid(
            f"a {loader.kind} mapping takes only {', '.join(sorted(KIND_MAPPING_KEYS))}"
            f" (not {', '.join(extra)})"
        )
    columns = mapping.get("columns", {})
    if not isinstance(columns, dict) or (csv and not columns):
        raise _invalid("a CSV mapping needs 'columns': {field: column name}")
    unknown = sorted(set(columns) - set(loader.fields))
    if unknown:
        raise _invalid(
            f"unknown fields in columns: {', '.join(unknown)}"
            f" (a {loader.kind} row has: {', '.join(loader.fields)})"
        )
    for name, column in columns.items():
        if not (isinstance(column, str) and column.strip()):
            raise _invalid(f"columns.{name} must be a column name")
    missing = [f for f in loader.required if f not in columns] if csv else []
    if missing:
        raise _invalid(f"columns must map {', '.join(missing)}")
    if mapping.get("last_line_break", "required") not in ("required", "optional"):
        raise _invalid("last_line_break must be 'required' or 'optional'")
    return ISO


def validate_csv_mapping(mapping: dict, kind: str) -> Normalization:
    loader = loader_for(kind)
    if loader is not None:
        return validate_kind_mapping(mapping, loader, csv=True)
    columns = mapping.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise ApplicationError("a CSV mapping needs 'columns': {field: column name}", code="invalid_mapping")
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ApplicationError(
            f"unknown fields in columns: {', '.join(unknown)} (known: {', '.join(FIELDS)})",
            code="invalid_mapping",
        )
    if mapping.get("last_line_break", "required") not in ("required", "optional"):
        raise ApplicationError("last_line_break must be 'required' or 'optional'", code="invalid_mapping")
    needed = REQUIRED | {required_value_field(kind)}
    missing = sorted(needed - set(columns))
    if missing:
        raise ApplicationError(f"columns must map {', '.join(missing)}", code="invalid_mapping")
    return normalization_for(mapping)


def json_key_fields(mapping: dict) -> tuple[str, ...]:
    """The record fields a JSON source's composite key is made of (empty: records carry external_id).

    The same declaration as a CSV source's: ``columns.external_id`` lists record fields (a JSON
    record's keys are its columns) or columns the mapping maps to fields, so a CSV source whose
    records are also pushed as JSON keys them the same way.
    """
    columns = (mapping or {}).get("columns") if isinstance(mapping, dict) else None
    if not isinstance(columns, dict) or not isinstance(columns.get("external_id"), list):
        return ()
    key = _key_columns({"external_id": columns["external_id"]})
    field_of = {column: name for name, column in columns.items() if isinstance(column, str)}
    fields = tuple(c if c in KEY_PART_FIELDS else field_of.get(c) for c in key)
    unknown = [c for c, f in zip(key, fields, strict=True) if f not in KEY_PART_FIELDS]
    if unknown:
        raise _invalid(
            f"columns.external_id: {', '.join(unknown)} is not a record field"
            f" (a JSON record's key is made of: {', '.join(KEY_PART_FIELDS)})"
        )
    return fields


def json_normalization(mapping: dict) -> Normalization:
    """JSON records are ISO-typed; the mapping adds only a composite key (validated here)."""
    fields = json_key_fields(mapping)
    if not fields:
        return ISO
    return Normalization(key_columns=fields, key_dates=tuple(f in DATE_FIELDS for f in fields))
