"""Which parser reads a file, and the statement controls of the bank-statement formats."""

from __future__ import annotations

from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.parsers import FileRejected, Parsed
from reconciliation.models import DataSource

FORMATS = ("csv", "json", "camt053", "camt054", "mt940", "bai2")


def detect(head: bytes, *, declared: str, source: DataSource) -> str:
    """The format to parse with: the declared one, else sniffed from the file's first bytes.

    ``auto`` trusts the content over the source's configured format (a bank that switches from
    MT940 to camt.053 should not need a config change to be read), falling back to the source's.
    """
    if declared and declared != "auto":
        if declared not in FORMATS:
            raise ApplicationError(
                f"unknown format {declared!r} (one of {', '.join(FORMATS)})", code="invalid"
            )
        return declared
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        if b"camt.054" in head:
            return "camt054"
        if b"camt.053" in head:
            return "camt053"
    elif text.startswith((b"{1:", b":20:")) or b"\n:20:" in head[:200]:
        return "mt940"
    elif text.startswith(b"01,"):
        return "bai2"
    elif text.startswith((b"[", b"{")):
        return "json"
    return source.format or "csv"


def parse(fmt: str, stream, *, source: DataSource) -> Parsed:
    if fmt == "csv":
        from reconciliation.ingestion.parsers.csv import parse_csv

        return parse_csv(stream, mapping=source.mapping or {}, kind=source.kind)
    if fmt == "json":
        from reconciliation.ingestion.parsers.json_records import load_json_document, parse_json_records

        return parse_json_records(load_json_document(stream.read()))
    raise FileRejected("unsupported_format", f"format {fmt} is not supported yet")


def statement_controls(*, tenant, source, parsed: Parsed) -> tuple[str, str] | None:
    """Bank statements: opening + entries = closing, continuity, duplicates. None when all hold."""
    return None


def statements_record(*, tenant, source, batch, parsed: Parsed) -> None:
    """Remember a loaded file's statements (for the next one's continuity and duplicate checks)."""
    return None
