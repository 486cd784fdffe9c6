"""How a source's text becomes typed values: the CSV mapping and the normalisation it implies.

A CSV source's ``mapping`` (DataSource.mapping)::

    {
      "columns": {"external_id": "TradeRef", "business_date": "TradeDate", "amount": "Amount", ...},
      "delimiter": ",",                   # default ","
      "encoding": "utf-8",                # default "utf-8" (a BOM is skipped)
      "date_format": "%d/%m/%Y",          # strftime subset: %Y %m %d and literal separators
      "decimal_separator": ",",           # default "."
      "thousands_separator": ".",         # default none
      "sign": "as_is" | "negate" | {"column": "DC", "negative": ["D", "DR"], "positive": ["C", "CR"]},
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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jfintech.common.errors import ApplicationError
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

_DIRECTIVES = {"%Y": ("y", r"([0-9]{4})"), "%m": ("m", r"([0-9]{1,2})"), "%d": ("d", r"([0-9]{1,2})")}


def required_value_field(kind: str) -> str:
    return REQUIRED_VALUE.get(kind, "amount")


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

    @property
    def sign_column(self) -> bool:
        return bool(self.sign_negative or self.sign_positive)


ISO = Normalization()


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
    return Normalization(
        date_regex=regex, date_groups=groups, date_format=fmt, decimal_separator=decimal,
        thousands_separator=thousands, negate=negate, sign_negative=negative, sign_positive=positive,
        default_currency=currency, attributes=tuple(mapping.get("attributes", ())),
    )  # fmt: skip


def validate_csv_mapping(mapping: dict, kind: str) -> Normalization:
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
