"""SWIFT MT940 / MT950 statements via the ``mt-940`` package.

The package reads a whole file, so the size is capped (INGEST_MAX_WHOLE_FILE_BYTES). Its 5.0 default
gives a reversal of a credit (``RC``) a positive amount; ``reversal_sign=True`` signs it like the
debit it is (and ``RD``, a reversal of a debit, stays a credit). Control: opening (:60F:/:60M:) +
entries = closing (:62F:/:62M:) per statement. An entry's candidate references (:61: customer and
bank references, the whole :86: text) are kept in ``attributes.references`` (references.py).

Complete to the last byte: every statement ends with a line ``-`` (``-}`` in a SWIFT envelope,
whose braces must balance), so a file whose last line is anything else was cut (``truncated_file``)
— including one cut inside or before its last :62F:. A file cut exactly after a statement's ``-``
is a complete file of fewer statements: MT940 has no file trailer to tell (docs/ingestion.md).
"""

from __future__ import annotations

import json
from decimal import Decimal

import mt940

from reconciliation.ingestion.mapping import ISO
from reconciliation.ingestion.parsers import (
    FileRejected,
    Parsed,
    StatementInfo,
    balance_control,
    statement_totals,
    truncated,
)

OPTIONS = mt940.Options(
    reversal_sign=True,
    case_insensitive_marks=True,
    strip_bom=True,
    unbounded_details=True,
    merge_keeps_values=True,
)


def read_capped(stream, max_bytes: int, fmt: str) -> str:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRejected("file_too_large", f"{fmt} files are read whole; the maximum is {max_bytes} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # SWIFT's character set is a subset of both


def _entry_lines(text: str) -> list[tuple[int, str]]:
    """(line number, raw text) of every :61: statement line with its :86: details, in file order."""
    entries, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(":61:"):
            block = [line]
            for follow in lines[i + 1 :]:
                if (follow.startswith(":") and not follow.startswith(":86:")) or follow.startswith("-"):
                    break
                block.append(follow)
            entries.append((i + 1, "\n".join(block)))
    return entries


def details_text(raw: str) -> str:
    """The :86: of an entry's raw block, its lines joined as SWIFT wraps them: at 65 characters,
    often inside a word (``INV-2026-00`` / ``42``), so without a separator."""
    _, found, details = raw.partition("\n:86:")
    return "".join(line.rstrip("\r") for line in details.split("\n")) if found else ""


def _references(t: dict, raw: str) -> dict:
    """An entry's candidate references (names: references.CANDIDATES["mt940"]), as given.

    The :61: customer reference (subfield 7, often NONREF) and bank reference (after //); the
    ``EREF+`` of a structured (German GVC) :86: the package reads; the whole :86: text.
    """
    references = {
        "customer_reference": t.get("customer_reference"),
        "bank_reference": t.get("bank_reference"),
        "end_to_end_id": t.get("end_to_end_reference"),
        "remittance": details_text(raw),
    }
    return {k: str(v) for k, v in references.items() if v}


def _balance(data: dict, *keys: str):
    for key in keys:
        balance = data.get(key)
        if balance is not None:
            return balance.amount.amount, balance.date.isoformat()
    return None


def check_complete(text: str) -> None:
    """The last statement ends with its ``-`` line (SWIFT: CrLf- ends a text block)."""
    body = text.rstrip()
    last = body.rsplit("\n", 1)[-1].strip()
    if not (last == "-" or last.startswith("-}")):
        raise truncated("the last statement does not end with its closing '-' line")
    if body.count("{") != body.count("}"):  # braces are not in the SWIFT character set
        raise truncated("a block of the SWIFT envelope is not closed")


def parse_mt940(stream, *, max_bytes: int) -> Parsed:
    text = read_capped(stream, max_bytes, "MT940")
    if text.strip():  # an empty file is the loader's rule (empty_file)
        check_complete(text)
    try:
        statements = mt940.parse_statements(text, options=OPTIONS)
    except Exception as exc:  # the package raises plain exceptions for malformed tags
        raise FileRejected(
            "malformed_file", f"not a valid MT940/MT950 file: {type(exc).__name__}: {exc}"
        ) from exc
    parsed = Parsed(rows=iter(()), format="mt940", normalization=ISO)
    positions = _entry_lines(text)
    rows, k = [], 0
    for st in statements:
        data = st.data
        account = str(data.get("account_identification") or "")
        ref = str(data.get("transaction_reference") or "")
        number = f"{data.get('statement_number') or ''}/{data.get('sequence_number') or ''}".strip("/")
        info = StatementInfo(
            account=account,
            statement_id=f"{ref}:{number}" if number else ref,
            currency=str(data.get("currency") or ""),
            sequence=number,
        )
        opening = _balance(data, "final_opening_balance", "intermediate_opening_balance", "opening_balance")
        closing = _balance(data, "final_closing_balance", "intermediate_closing_balance", "closing_balance")
        if opening:
            info.opening, info.opening_date = opening
        if closing:
            info.closing, info.closing_date = closing
        for n, tx in enumerate(st, start=1):
            t = tx.data
            line_no, raw = positions[k] if k < len(positions) else (None, "")
            k += 1
            amount: Decimal = t["amount"].amount
            info.currency = info.currency or t["amount"].currency
            info.entries_count += 1
            info.entries_sum += amount
            booking = t.get("entry_date") or t.get("date")
            attributes = {
                "statement_id": info.statement_id,
                "mark": t.get("status"),
                "type": t.get("id"),
                "bank_reference": t.get("bank_reference"),
                "reversal": str(t.get("status", "")).upper().startswith("R"),
            }
            attributes["references"] = _references(t, raw)
            reference = t.get("customer_reference") or t.get("bank_reference") or ""
            rows.append(
                (
                    line_no,
                    raw,
                    None,
                    None,
                    f"{info.statement_id}/{n}"[:128],
                    None,
                    None,
                    booking.isoformat(),
                    account,
                    "",
                    str(reference)[:140],
                    "",
                    t["amount"].currency,
                    str(amount),
                    None,
                    None,
                    t["date"].isoformat(),
                    str(t.get("transaction_details") or t.get("extra_details") or ""),
                    None,
                    json.dumps(attributes, default=str),
                )
            )
        parsed.statements.append(info)
        if parsed.file_rejection is None:
            parsed.file_rejection = balance_control(info)
    parsed.rows = iter(rows)
    parsed.declared_totals["statements"] = statement_totals(parsed.statements)
    return parsed
