"""Typing and validating a parser's text rows: the one place a row gets its values or its reason.

It runs in the ingesting process, streamed, while PostgreSQL writes the previous rows (the COPY
overlaps both cores). A parser yields text tuples in ``STAGE_COLUMNS`` order; ``Validator.check``
turns one into a ``CHECKED_COLUMNS`` tuple: typed values and ``reason`` None, or a reason code and
its message. Reasons, first that applies (docs/ingestion.md):

    parser's own (malformed_row, ...), missing_field, field_too_long, malformed_date, out_of_window,
    malformed_amount, malformed_quantity, malformed_version, malformed_sign, unknown_currency

What needs the database — the same natural key twice in a file or already loaded, amendments — is
decided set-based by the loader (loader.py).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from reconciliation.ingestion.currencies import iso_currency_codes
from reconciliation.ingestion.mapping import FIELDS, Normalization, composite_key, required_value_field
from reconciliation.ingestion.parsers import STAGE_COLUMNS

CHECKED_COLUMNS = (
    "line_no", "raw", "reason", "message", "external_id", "version", "version_given", "amend",
    "business_date", "account", "instrument", "reference", "counterparty", "currency", "amount",
    "quantity", "trade_date", "value_date", "description", "attributes",
)  # fmt: skip
# Widths of the record table's columns: a longer value is a rejection, not a failed statement.
MAX_EXTERNAL_ID, MAX_ACCOUNT, MAX_INSTRUMENT, MAX_REFERENCE, MAX_COUNTERPARTY = 128, 64, 64, 140, 140
AMOUNT_RE = re.compile(r"[+-]?[0-9]{1,18}(\.[0-9]{1,6})?")  # numeric(24, 6), never rounded
QUANTITY_RE = re.compile(r"[+-]?[0-9]{1,20}(\.[0-9]{1,8})?")  # numeric(28, 8)
VERSION_RE = re.compile(r"[0-9]{1,9}")
TRUTHY = frozenset({"1", "true", "t", "yes", "y"})
assert tuple(STAGE_COLUMNS[4 : 4 + len(FIELDS)]) == FIELDS


def quoted(value: str | None) -> str:
    """A value as it appears in a message: quoted like an SQL literal, NULL when absent."""
    if value is None:
        return "NULL"
    text = value.replace("'", "''")
    return "E'" + text.replace("\\", "\\\\") + "'" if "\\" in value else "'" + text + "'"


class Validator:
    """Types rows for one source (its kind and normalisation) and one tenant window."""

    def __init__(self, *, kind: str, normalization: Normalization, window: tuple[date, date]):
        n = normalization
        self.normalization = n
        self.first, self.last = window
        self.value_field = required_value_field(kind)
        self.currencies = frozenset(iso_currency_codes())
        self._date_re = re.compile(n.date_regex.removeprefix("^").removesuffix("$"))
        self._date_groups = n.date_groups
        self._dates: dict[str, date | None] = {}  # a file repeats few distinct date texts
        # Hot path (a million rows a file): plain locals and dict lookups, no helper calls per field.
        self._signs_by_column = (
            {v: -1 for v in n.sign_negative} | {v: 1 for v in n.sign_positive} if n.sign_column else None
        )
        self._constant_sign = -1 if n.negate else 1
        # Per-field sign rules: (field, {side: ±1}, whether unlisted sides are positive, column, listing).
        self._sign_rules = tuple(
            (r.field, {v: -1 for v in r.negative} | {v: 1 for v in r.positive}, not r.positive, r.column,
             "; ".join(f"{word} {', '.join(values)}" for word, values in
                       (("negative", r.negative), ("positive", r.positive)) if values))
            for r in n.sign_rules
        )  # fmt: skip
        self._key = tuple(zip(n.key_columns, n.key_dates, strict=True))
        self._separators = [
            (s, r) for s, r in ((n.thousands_separator, ""), (n.decimal_separator, ".")) if s and s != r
        ]

    def _date(self, text: str) -> date | None:
        """Parse a date text (check() looks in the cache first, and this fills it)."""
        parsed = None
        match = self._date_re.fullmatch(text)
        if match:
            y, m, d = (int(match[g]) for g in self._date_groups)
            try:
                parsed = date(y, m, d)
            except ValueError:
                parsed = None
        if len(self._dates) < 100_000:
            self._dates[text] = parsed
        return parsed

    def _composite_key(self, parts: tuple) -> tuple[str | None, str | None]:
        """A composite key's component texts → (external_id, None), or (None, why) if one is empty."""
        values = []
        for (column, is_date), text in zip(self._key, parts, strict=True):
            text = text.strip(" ") if text else ""
            if not text:
                label = self.normalization.key_label
                return None, f"{column} is empty: it is part of the {label} that identifies the row"
            if is_date:  # the ISO form, so that 30/11/2026 and 2026-11-30 are the same key
                parsed = self._dates.get(text) or self._date(text)
                text = parsed.isoformat() if parsed is not None else text  # else malformed_date
            values.append(text)
        return composite_key(values), None

    def _signs(self, sides: tuple, present: dict) -> tuple[int, int, str | None]:
        """The sign rules' side texts → (amount sign, quantity sign, the first problem or None).

        A rule whose field has no value in the row cannot be wrong (there is nothing to sign)."""
        signs = {"amount": 1, "quantity": 1}
        for (field, by_side, others_positive, column, listing), text in zip(
            self._sign_rules, sides, strict=True
        ):
            if not present[field]:
                continue
            side = text.strip(" ").upper() if text else ""
            sign = by_side.get(side)
            if sign is None:
                if not side:
                    return 1, 1, f"{column} is empty: it gives the sign of the {field}"
                if not others_positive:
                    return 1, 1, f"{column} {quoted(side)} is not a side that signs the {field} ({listing})"
                sign = 1
            signs[field] = sign
        return signs["amount"], signs["quantity"], None

    def check(self, row: tuple) -> tuple:
        """One staged row → a CHECKED_COLUMNS tuple (typed values, reason None) or its rejection."""
        (line_no, raw, parse_error, parse_message, external_id, version_t, amend, business_date_t,
         account, instrument, reference, counterparty, currency, amount_t, quantity_t, trade_date_t,
         value_date_t, description, sign, attributes) = row  # fmt: skip
        key_problem = sign_problem = None
        if external_id.__class__ is tuple:  # a composite key's components
            external_id, key_problem = self._composite_key(external_id)
        # SQL's btrim: spaces only; an empty value is an absent one.
        external_id = external_id.strip(" ") or None if external_id else None
        version_t = version_t.strip(" ") or None if version_t else None
        business_date_t = business_date_t.strip(" ") or None if business_date_t else None
        trade_date_t = trade_date_t.strip(" ") or None if trade_date_t else None
        value_date_t = value_date_t.strip(" ") or None if value_date_t else None
        account = account.strip(" ") if account else ""
        instrument = instrument.strip(" ") if instrument else ""
        reference = reference.strip(" ") if reference else ""
        counterparty = counterparty.strip(" ") if counterparty else ""
        currency = ((currency.strip(" ") if currency else "") or self.normalization.default_currency).upper()
        amount_t = amount_t.strip(" ") or None if amount_t else None
        if amount_t is not None:
            for separator, replacement in self._separators:
                amount_t = amount_t.replace(separator, replacement)
        quantity_t = quantity_t.strip(" ") or None if quantity_t else None
        sides = None
        if sign.__class__ is tuple:  # per-field sign rules: (the legacy sign column, *their sides)
            sign, sides = sign[0], sign[1:]
        sign_t = sign.strip(" ").upper() if sign is not None else None

        dates = self._dates
        business_date = (
            (dates.get(business_date_t) or self._date(business_date_t)) if business_date_t else None
        )
        trade_date = (dates.get(trade_date_t) or self._date(trade_date_t)) if trade_date_t else None
        value_date = (dates.get(value_date_t) or self._date(value_date_t)) if value_date_t else None
        amount = Decimal(amount_t) if amount_t is not None and AMOUNT_RE.fullmatch(amount_t) else None
        quantity = (
            Decimal(quantity_t) if quantity_t is not None and QUANTITY_RE.fullmatch(quantity_t) else None
        )
        version = None
        if version_t is not None and VERSION_RE.fullmatch(version_t) and 1 <= int(version_t) <= 2147483647:
            version = int(version_t)
        sign_v = self._constant_sign if self._signs_by_column is None else self._signs_by_column.get(sign_t)
        quantity_sign = 1
        if sides is not None:
            present = {"amount": amount is not None, "quantity": quantity is not None}
            amount_sign, quantity_sign, sign_problem = self._signs(sides, present)
            if sign_v is not None:
                sign_v *= amount_sign

        reason = message = None
        value_t = amount_t if self.value_field == "amount" else quantity_t
        if parse_error is not None:
            reason, message = parse_error, parse_message
        elif external_id is None or business_date_t is None or value_t is None:
            reason = "missing_field"
            message = (
                (key_problem or "external_id is missing") if external_id is None
                else "business_date is missing" if business_date_t is None
                else f"{self.value_field} is missing"
            )  # fmt: skip
        elif (
            len(external_id) > MAX_EXTERNAL_ID
            or len(account) > MAX_ACCOUNT
            or len(instrument) > MAX_INSTRUMENT
            or len(reference) > MAX_REFERENCE
            or len(counterparty) > MAX_COUNTERPARTY
        ):
            reason, message = "field_too_long", "a field is longer than its column allows"
            if len(external_id) > MAX_EXTERNAL_ID:
                message = (
                    f"the {self.normalization.key_label} {quoted(external_id)} is {len(external_id)}"
                    f" characters long, more than {MAX_EXTERNAL_ID}"
                )
        elif (
            business_date is None
            or (trade_date_t is not None and trade_date is None)
            or (value_date_t is not None and value_date is None)
        ):
            reason = "malformed_date"
            bad = [
                f"{name} {quoted(text)}"
                for name, text, value in (
                    ("business_date", business_date_t, business_date),
                    ("trade_date", trade_date_t, trade_date),
                    ("value_date", value_date_t, value_date),
                )
                if text is not None and value is None
            ]
            message = (
                f"{' and '.join(bad)} {'is not a date' if len(bad) == 1 else 'are not dates'}"
                f" in the format {self.normalization.date_format}"
            )
        elif not self.first <= business_date <= self.last:
            reason = "out_of_window"
            message = (
                f"business date {business_date} is outside the tenant window {self.first} .. {self.last}"
            )
        elif amount_t is not None and amount is None:
            reason = "malformed_amount"
            message = (
                f"amount {quoted(amount_t)} is not a decimal with at most 18 integer and 6 fractional digits"
            )
        elif quantity_t is not None and quantity is None:
            reason = "malformed_quantity"
            message = (
                f"quantity {quoted(quantity_t)} is not a decimal with at most 20 integer"
                " and 8 fractional digits"
            )
        elif version_t is not None and version is None:
            reason, message = "malformed_version", f"version {quoted(version_t)} is not a positive integer"
        elif amount is not None and sign_v is None:
            reason = "malformed_sign"
            message = f"sign {quoted(sign_t)} is not one of the mapping's debit/credit values"
        elif sign_problem is not None:
            reason, message = "malformed_sign", sign_problem
        elif amount is not None and currency == "":
            reason, message = "missing_field", "currency is missing (and the source has no default currency)"
        elif currency != "" and currency not in self.currencies:
            reason, message = (
                "unknown_currency",
                f"currency {quoted(currency)} is not an active ISO 4217 code",
            )

        return (
            line_no, raw, reason, message, external_id, version or 1, version_t is not None,
            amend is not None and amend.strip(" ").lower() in TRUTHY, business_date, account, instrument,
            reference, counterparty, currency, amount * sign_v if amount is not None and sign_v else amount,
            quantity * quantity_sign if quantity is not None else None, trade_date, value_date,
            description or "", attributes,
        )  # fmt: skip
