"""Parsers turn a file into text rows; validation.Validator types them and gives reasons.

Every parser returns a ``Parsed``: ``rows`` is a (lazy, streamed) iterator of tuples in
``STAGE_COLUMNS`` order, all text except ``line_no`` — and, from a mapping that declares them, the
external_id slot (a composite key's component texts) and the sign slot (the sign rules' side
texts), which then hold tuples (mapping.py). A parser raises ``FileRejected`` when the file
as a whole cannot be read (bad XML, XSD violation, missing CSV header column): the batch is then
rejected with that code and no row is loaded.

Every format must prove it was received to its last byte (``truncated_file`` otherwise): camt's
root element closes, a CSV ends with a line break and no quoted field open, MT940's last statement
ends with its ``-`` line, BAI2 ends with its 99 trailer after every 49 and 98, a JSON document is
complete. A streamed parser may find out only at the end, after it yielded rows: the loader's
transaction is rolled back then, so nothing read before the error remains (docs/ingestion.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from reconciliation.ingestion.mapping import FIELDS, ISO, Normalization

STAGE_COLUMNS = ("line_no", "raw", "parse_error", "parse_message", *FIELDS, "attributes")
EMPTY_FIELDS = (None,) * len(FIELDS)


class FileRejected(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class StatementInfo:
    """One bank statement in a file, with what it declares and what its entries add up to."""

    account: str
    statement_id: str
    currency: str
    opening: Decimal | None = None
    closing: Decimal | None = None
    opening_date: str = ""
    closing_date: str = ""
    sequence: str = ""
    entries_sum: Decimal = Decimal(0)
    entries_count: int = 0


@dataclass
class Parsed:
    rows: Iterator[tuple]
    format: str
    normalization: Normalization = ISO
    # Filled while ``rows`` is consumed (streamed formats learn their trailer at the end).
    declared_totals: dict = field(default_factory=dict)
    statements: list[StatementInfo] = field(default_factory=list)
    # A control that failed after the rows were read: (code, message); every row is rejected.
    file_rejection: tuple[str, str] | None = None


def truncated(message: str) -> FileRejected:
    return FileRejected("truncated_file", f"{message}: the file is incomplete (cut off?); nothing was loaded")


def malformed(line_no: int, raw: str, message: str, code: str = "malformed_row") -> tuple:
    return (line_no, raw, code, message, *EMPTY_FIELDS, None)


def balance_control(s: StatementInfo) -> tuple[str, str] | None:
    """opening + booked entries = closing, the control every bank statement must pass."""
    if s.opening is None or s.closing is None:
        return ("balance_mismatch", f"statement {s.statement_id}: no opening or closing booked balance")
    if s.opening + s.entries_sum != s.closing:
        return (
            "balance_mismatch",
            f"statement {s.statement_id}: opening {s.opening} + entries {s.entries_sum} = "
            f"{s.opening + s.entries_sum}, but the closing balance is {s.closing}",
        )
    return None


def statement_totals(statements: list[StatementInfo]) -> list[dict]:
    return [
        {
            "id": s.statement_id,
            "account": s.account,
            "currency": s.currency,
            "opening": None if s.opening is None else str(s.opening),
            "closing": None if s.closing is None else str(s.closing),
            "entries": s.entries_count,
            "entries_sum": str(s.entries_sum),
        }
        for s in statements
    ]
