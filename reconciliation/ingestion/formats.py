"""Which parser reads a file, and the statement controls of the bank-statement formats."""

from __future__ import annotations

from django.conf import settings

from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.parsers import FileRejected, Parsed, StatementInfo
from reconciliation.models import DataSource, HandedOffKind, StatementBalance

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
    elif text.startswith((b"{1:", b":20:")):
        return "mt940"
    elif text.startswith(b"01,"):
        return "bai2"
    elif text.startswith((b"[", b"{")):
        return "json"
    return source.format or "csv"


def parse(fmt: str, stream, *, source: DataSource) -> Parsed:
    whole_file_limit = settings.INGEST_MAX_WHOLE_FILE_BYTES
    if fmt not in ("csv", "json") and source.kind in HandedOffKind.values:
        raise FileRejected("malformed_file", f"a {source.kind} source reads CSV or JSON, not {fmt}")
    if fmt == "csv":
        from reconciliation.ingestion.parsers.csv import parse_csv

        return parse_csv(stream, mapping=source.mapping or {}, kind=source.kind)
    if fmt == "json":
        from reconciliation.ingestion.parsers.json_records import load_json_document, parse_json_records
        from reconciliation.ingestion.parsers.mt940 import read_capped

        document = load_json_document(read_capped(stream, whole_file_limit, "JSON").encode())
        return parse_json_records(document, mapping=source.mapping, kind=source.kind)
    if fmt in ("camt053", "camt054"):
        from reconciliation.ingestion.parsers.camt import parse_camt

        return parse_camt(stream, expected=fmt)
    if fmt == "mt940":
        from reconciliation.ingestion.parsers.mt940 import parse_mt940

        return parse_mt940(stream, max_bytes=whole_file_limit)
    from reconciliation.ingestion.parsers.bai2 import parse_bai2

    return parse_bai2(stream, max_bytes=whole_file_limit)


def statement_controls(*, tenant, source: DataSource, parsed: Parsed) -> tuple[str, str] | None:
    """Bank statements: duplicates and continuity with the account's previous statement.

    Runs inside the load's transaction, under the source's advisory lock (so two statements of one
    account never pass it concurrently). opening + entries = closing is checked by the parsers.
    Returns (reason code, message) for the first violation, or None.
    """
    last_closing: dict[str, StatementInfo] = {}
    seen: set[tuple[str, str]] = set()
    for s in parsed.statements:
        if (s.account, s.statement_id) in seen:  # else the statement table's unique index fails
            return (
                "duplicate_statement",
                f"statement {s.statement_id} of account {s.account} appears twice in this file",
            )
        seen.add((s.account, s.statement_id))
        loaded = (
            StatementBalance.objects.filter(
                source=source,
                account=s.account,
                statement_id=s.statement_id,
                status=StatementBalance.Status.ACTIVE,
            )
            .values_list("batch_id", flat=True)
            .first()
        )
        if loaded is not None:
            return (
                "duplicate_statement",
                f"statement {s.statement_id} of account {s.account} was already loaded (batch {loaded})",
            )
        if s.opening is None:
            continue
        previous = last_closing.get(s.account)
        if previous is not None:
            prev_id, prev_closing, where = previous.statement_id, previous.closing, "earlier in this file"
        else:
            row = (
                StatementBalance.objects.filter(
                    source=source,
                    account=s.account,
                    closing__isnull=False,
                    status=StatementBalance.Status.ACTIVE,
                )
                .order_by("-closing_date", "-id")
                .first()
            )
            if row is None:
                prev_id = None
            else:
                prev_id, prev_closing, where = row.statement_id, row.closing, f"batch {row.batch_id}"
        if prev_id is not None and prev_closing != s.opening:
            return (
                "continuity_break",
                f"account {s.account}: statement {s.statement_id} opens at {s.opening}, but the previous "
                f"statement {prev_id} ({where}) closed at {prev_closing}",
            )
        if s.closing is not None:
            last_closing[s.account] = s
    return None


def statements_record(*, tenant, source: DataSource, batch, parsed: Parsed) -> None:
    """Remember a loaded file's statements (for the next one's continuity and duplicate checks)."""
    StatementBalance.objects.bulk_create(
        StatementBalance(
            tenant=tenant,
            source=source,
            batch=batch,
            account=s.account[:64],
            statement_id=s.statement_id[:140],
            currency=s.currency[:3],
            sequence=s.sequence[:35],
            opening=s.opening,
            closing=s.closing,
            opening_date=s.opening_date or None,
            closing_date=s.closing_date or None,
            entries_count=s.entries_count,
            entries_sum=s.entries_sum,
        )
        for s in parsed.statements
    )
