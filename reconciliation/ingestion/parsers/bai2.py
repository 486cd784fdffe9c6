"""BAI2 cash-management files via the ``bai2`` package (read whole: the size is capped).

Controls: the package checks every account, group and file trailer (control totals and record
counts) — a mismatch rejects the file as ``control_total_mismatch``; where an account carries the
opening (010) and closing (015) ledger summaries, opening + transactions = closing is checked too.
Amounts are in cents; the type code says credit (100-399) or debit (400-699).

Complete to the last byte: the records nest 01 (02 (03 16* 49)* 98)* 99 (88 continues any record)
and the last one ends with ``/``; a missing trailer is ``truncated_file``, a record out of place
``malformed_file``. Checked before the package reads the file: it loops forever on a file that
ends inside an account (bai2 0.15), and a worker must never hang on what a sender sent.
"""

from __future__ import annotations

import json
from decimal import Decimal

from bai2 import bai2 as bai2_parser
from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException

from reconciliation.ingestion.mapping import ISO
from reconciliation.ingestion.parsers import (
    FileRejected,
    Parsed,
    StatementInfo,
    balance_control,
    malformed,
    statement_totals,
    truncated,
)
from reconciliation.ingestion.parsers.mt940 import read_capped

CENT = Decimal("0.01")


def _sign(code: str) -> int | None:
    number = int(code) if code.isdigit() else 0
    if 100 <= number < 400:
        return 1
    if 400 <= number < 700:
        return -1
    return None


# record code → {record codes that may follow it}, and the trailer each open level is missing.
_NEXT = {
    "start": {"01"}, "01": {"02", "99"}, "02": {"03", "98"}, "03": {"16", "49"}, "16": {"16", "49"},
    "49": {"03", "98"}, "98": {"02", "99"}, "99": set(),
}  # fmt: skip
_MISSING = {"01": "99", "02": "98", "03": "49", "16": "49", "49": "98", "98": "99"}
_NAMES = {"49": "49 account trailer", "98": "98 group trailer", "99": "99 file trailer"}


def check_structure(text: str) -> None:
    """The record codes nest as BAI2 says and the file ends with its trailers (see above)."""
    state, lines = "start", [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if lines and not lines[-1][1].endswith("/"):
        raise truncated(f"line {lines[-1][0]} (the last) does not end with '/'")
    for i, line in lines:
        code = line[:2]
        if code == "88" and state != "start":
            continue
        if code not in _NEXT[state]:
            expected = " or ".join(sorted(_NEXT[state])) or "nothing"
            raise FileRejected("malformed_file", f"line {i}: record {code!r} where {expected} was expected")
        state = code
    if state != "99":
        raise truncated(f"the file ends without its {_NAMES[_MISSING[state]]}")


def parse_bai2(stream, *, max_bytes: int) -> Parsed:
    text = read_capped(stream, max_bytes, "BAI2")
    if not text.strip():  # an empty file is the loader's rule (empty_file)
        return Parsed(rows=iter(()), format="bai2", normalization=ISO)
    check_structure(text)
    try:
        document = bai2_parser.parse_from_string(text, check_integrity=True)
    except IntegrityException as exc:
        raise FileRejected("control_total_mismatch", f"BAI2 control totals do not add up: {exc}") from exc
    except (ParsingException, NotSupportedYetException, ValueError, IndexError) as exc:
        raise FileRejected("malformed_file", f"not a valid BAI2 file: {type(exc).__name__}: {exc}") from exc
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    detail_lines = iter([(i, line) for i, line in lines if line.startswith("16,")])
    parsed = Parsed(rows=iter(()), format="bai2", normalization=ISO)
    parsed.declared_totals = {
        "file_id": document.header.file_id,
        "file_control_total": str(Decimal(document.trailer.file_control_total) * CENT),
        "number_of_groups": document.trailer.number_of_groups,
        "number_of_records": document.trailer.number_of_records,
    }
    rows = []
    for group in document.children:
        as_of = group.header.as_of_date
        for account in group.children:
            header = account.header
            number = header.customer_account_number
            currency = header.currency or group.header.currency or ""
            info = StatementInfo(account=number, statement_id=f"{number}/{as_of:%Y%m%d}", currency=currency)
            for item in header.summary_items:
                code = item.type_code.code if item.type_code else ""
                if code == "010":
                    info.opening, info.opening_date = Decimal(item.amount) * CENT, as_of.isoformat()
                elif code == "015":
                    info.closing, info.closing_date = Decimal(item.amount) * CENT, as_of.isoformat()
            for k, tx in enumerate(account.children, start=1):
                line_no, raw = next(detail_lines, (None, ""))
                code = tx.type_code.code if tx.type_code else ""
                sign = _sign(code)
                external_id = f"{info.statement_id}/{k}"
                if sign is None:
                    rows.append(
                        malformed(
                            line_no,
                            raw,
                            f"type code {code!r} is neither a credit nor a debit",
                            code="malformed_sign",
                        )
                    )
                    continue
                amount = Decimal(tx.amount or 0) * CENT * sign
                info.entries_count += 1
                info.entries_sum += amount
                attributes = {
                    "statement_id": info.statement_id,
                    "type_code": code,
                    "bank_reference": tx.bank_reference,
                    # Candidate references (references.CANDIDATES["bai2"]); the package joins a 16
                    # record's text and its 88 continuations with a space.
                    "references": {
                        k: str(v)
                        for k, v in (
                            ("customer_reference", tx.customer_reference),
                            ("bank_reference", tx.bank_reference),
                            ("remittance", tx.text),
                        )
                        if v
                    },
                }
                rows.append(
                    (
                        line_no,
                        raw,
                        None,
                        None,
                        external_id,
                        None,
                        None,
                        as_of.isoformat(),
                        number,
                        "",
                        str(tx.customer_reference or tx.bank_reference or "")[:140],
                        "",
                        currency,
                        str(amount),
                        None,
                        None,
                        None,
                        str(tx.text or ""),
                        None,
                        json.dumps(attributes, default=str),
                    )
                )
            parsed.statements.append(info)
            if parsed.file_rejection is None and info.opening is not None and info.closing is not None:
                parsed.file_rejection = balance_control(info)
    parsed.rows = iter(rows)
    parsed.declared_totals["statements"] = statement_totals(parsed.statements)
    return parsed
