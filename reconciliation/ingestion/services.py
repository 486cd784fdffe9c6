"""Ingestion's writes: receive a file or records, load them as one batch, reverse a batch.

Every row ends up either in ``reconciliation_record`` or in ``reconciliation_rejection`` with a
reason (accepted + rejected = total is a check constraint on the batch). A batch's accepted rows
are committed together or not at all. Callers outside a transaction get the fast path (partitions
created in their own short transactions before the load); inside one (an idempotent API request),
missing partitions are created on a separate connection first, never under the load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import errors as psycopg_errors

from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.observability.logging import get_logger
from jfintech.observability.tracing import current_trace_id
from jfintech.tenancy import permissions
from jfintech.tenancy.calendar import tenant_today
from reconciliation import partitions
from reconciliation.ingestion import formats, kinds, metrics, references
from reconciliation.ingestion.loader import LINK_WINDOW_DAYS, DirectLoad, LoadResult, Staging, StagingNeeded
from reconciliation.ingestion.parsers import FileRejected, Parsed
from reconciliation.ingestion.parsers.json_records import parse_json_records
from reconciliation.ingestion.validation import Validator
from reconciliation.models import (
    DataSource,
    HandedOffKind,
    IngestionBatch,
    Record,
    Rejection,
    StatementBalance,
)

log = get_logger(__name__)

Status = IngestionBatch.Status
_LOCK_NAMESPACE = 74_201  # pg_advisory_xact_lock(namespace, source id): one load per source at a time
# pg_advisory_lock(namespace, batch id), held by the session loading the batch until it closes it:
# the server drops it with the session, so a batch whose lock is free and that is still open was
# abandoned (its process killed, its connection lost) and batches_fail_abandoned closes it.
_LOADING_NAMESPACE = 74_202
# Between _receive's commit and the loading lock there is a moment without the lock: a batch this
# young is never taken for abandoned.
ABANDONED_AFTER_SECONDS = 60
_CHUNK = 1 << 20


def tenant_window(tenant, today: date | None = None) -> tuple[date, date]:
    """The dates a tenant accepts: whole months, window_months_back before to _ahead after today."""
    today = today or tenant_today(tenant)
    month = partitions.month_start(today)
    first = partitions.add_months(month, -tenant.window_months_back)
    last = date.fromordinal(partitions.add_months(month, tenant.window_months_ahead + 1).toordinal() - 1)
    return first, last


def ensure_partitions_for(first: date, last: date) -> None:
    """Partitions for [first, last] before the load, each in its own short transaction."""
    if not connection.in_atomic_block:
        partitions.ensure_partitions(first, last)
        return
    # Inside the caller's transaction: a separate connection creates them and commits. That only
    # works before this transaction writes to a table the partition's foreign keys reference
    # (tenant, source, batch: a new partition locks them), hence _run's call before _receive.
    have = partitions.existing_partitions()
    missing = [m for m in partitions.months_between(first, last) if partitions.partition_name(m) not in have]
    if not missing:
        return
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            for month in missing:
                cursor.execute("BEGIN")
                partitions.create_partition(cursor, month)
                cursor.execute("COMMIT")
    finally:
        other.close()


def _snapshot(batch: IngestionBatch) -> dict:
    return {
        "source": batch.source_id, "file_name": batch.file_name, "sha256": batch.sha256,
        "status": batch.status, "rows_total": batch.rows_total, "rows_accepted": batch.rows_accepted,
        "rows_rejected": batch.rows_rejected, "rows_linked": batch.rows_linked,
        "reject_code": batch.reject_code,
    }  # fmt: skip


def _check_source(tenant, source: DataSource) -> None:
    if source.tenant_id != tenant.pk:
        raise ApplicationError("No such source for this tenant.", code="not_found", status=404)
    if not source.is_active:
        raise ApplicationError(f"Source {source.name} is not active.", code="source_inactive", status=409)


@dataclass
class _Received:
    batch: IngestionBatch
    duplicate: bool


def _receive(*, tenant, actor, source, sha256, size, file_name, fmt) -> _Received:
    with transaction.atomic():
        loaded = IngestionBatch.objects.filter(source=source, sha256=sha256, status=Status.LOADED).first()
        batch = IngestionBatch.objects.create(
            tenant=tenant, source=source, file_name=file_name[:255], sha256=sha256, size_bytes=size,
            detected_format=fmt, status=Status.DUPLICATE if loaded else Status.RECEIVED, duplicate_of=loaded,
            trace_id=current_trace_id(), created_by=actor.display[:200],
            completed_at=timezone.now() if loaded else None,
        )  # fmt: skip
        audit.record(tenant=tenant, actor=actor, action="batch.duplicate" if loaded else "batch.receive",
                     obj=batch, after=_snapshot(batch))  # fmt: skip
    return _Received(batch, duplicate=loaded is not None)


def _finish(batch, *, actor, status, started, result: LoadResult | None = None, total=0, parsed=None,
            code="", message="", timings=None) -> IngestionBatch:  # fmt: skip
    """Close the batch (compare-and-set from received/validated) with its counts; audited."""
    result = result or LoadResult()
    fields = {
        "status": status,
        "rows_total": total if status in (Status.LOADED, Status.REJECTED) else 0,
        "rows_accepted": result.accepted,
        "rows_rejected": result.rejected,
        "rows_linked": result.linked,
        "computed_totals": {
            "rows": total,
            "accepted": result.accepted,
            "rejected": result.rejected,
            "superseded": result.superseded,
            "linked": result.linked,
            "by_currency": result.totals,
            "rejections_by_reason": result.reasons,
        },
        "declared_totals": parsed.declared_totals if parsed else {},
        "reject_code": code,
        "reject_reason": message,
        "timings": {**(timings or {}), "total_s": round(time.monotonic() - started, 3)},
        "completed_at": timezone.now(),
    }
    if status == Status.DUPLICATE:
        fields["duplicate_of"] = IngestionBatch.objects.filter(
            source_id=batch.source_id, sha256=batch.sha256, status=Status.LOADED
        ).first()
    moved = IngestionBatch.objects.filter(pk=batch.pk, status__in=[Status.RECEIVED, Status.VALIDATED]).update(
        **fields
    )
    if not moved:
        raise RuntimeError(f"batch {batch.pk} was closed by someone else")
    batch.refresh_from_db()
    audit.record(
        tenant=batch.tenant, actor=actor, action=f"batch.{status}", obj=batch, after=_snapshot(batch)
    )
    return batch


def _observe(batch: IngestionBatch, kind: str, started: float) -> None:
    fmt = batch.detected_format or "unknown"
    metrics.BATCH_DURATION.labels(format=fmt, outcome=batch.status).observe(time.monotonic() - started)
    metrics.BYTES.labels(format=fmt).inc(batch.size_bytes)
    if batch.rows_accepted:
        metrics.ROWS.labels(kind=kind, outcome="accepted").inc(batch.rows_accepted)
    if batch.rows_rejected:
        metrics.ROWS.labels(kind=kind, outcome="rejected").inc(batch.rows_rejected)
    for reason, count in (batch.computed_totals or {}).get("rejections_by_reason", {}).items():
        metrics.REJECTIONS.labels(kind=kind, reason=reason).inc(count)
    event = {"loaded": "batch_loaded", "duplicate": "batch_duplicate"}.get(
        batch.status, "batch_" + batch.status
    )
    level = log.info if batch.status in (Status.LOADED, Status.DUPLICATE) else log.warning
    level(event, batch_id=batch.pk, source_id=batch.source_id, tenant=batch.tenant.slug, format=fmt,
          **{"txn.type": kind}, rows_total=batch.rows_total, rows_accepted=batch.rows_accepted,
          rows_rejected=batch.rows_rejected, reject_code=batch.reject_code,
          duration_ms=round((time.monotonic() - started) * 1000, 1))  # fmt: skip


def _load(
    *, tenant, actor, source: DataSource, batch: IngestionBatch, parse, started: float
) -> IngestionBatch:
    """Load the batch by the direct path, or by the staged path when the direct one cannot decide.

    Both validate every row the same way (validation.Validator) and load in ONE transaction under the
    source's advisory lock; the direct path leaves nothing behind when it hands over (its transaction
    or savepoint is rolled back) and the staged path parses the file again. Returns the closed batch.
    """
    timings: dict = {}
    t0 = time.monotonic()
    try:
        loader = kinds.loader_for(source.kind)
        if loader is not None:
            return _load_kind(tenant=tenant, actor=actor, source=source, batch=batch, parse=parse,
                              started=started, timings=timings, loader=loader)  # fmt: skip
        closed = _load_direct(tenant=tenant, actor=actor, source=source, batch=batch, parse=parse,
                              started=started, timings=timings)  # fmt: skip
        if closed is None:
            timings["direct_attempt_s"] = round(time.monotonic() - t0, 3)
            closed = _load_staged(tenant=tenant, actor=actor, source=source, batch=batch, parse=parse,
                                  started=started, timings=timings)  # fmt: skip
        return closed
    except FileRejected as exc:
        # The file as a whole cannot be read (cut off, empty, not the format): whatever either path
        # wrote is rolled back with its transaction; the batch keeps the reason and no rows.
        with transaction.atomic():
            return _finish(batch, actor=actor, status=Status.REJECTED, started=started, code=exc.code,
                           message=exc.message)  # fmt: skip


def _validated(parsed: Parsed, source: DataSource, tenant):
    validator = Validator(kind=source.kind, normalization=parsed.normalization, window=tenant_window(tenant))
    return map(validator.check, references.apply(parsed.rows, source.mapping))


def _check_not_empty(parsed: Parsed, total: int, source: DataSource) -> None:
    """No rows and no statements is an empty delivery: refused unless the source accepts them.

    A statement without entries is not empty (its balances carry the account's continuity).
    """
    if total == 0 and not parsed.statements and not source.accept_empty:
        raise FileRejected(
            "empty_file",
            f"the delivery has no records; source {source.name} does not accept empty deliveries "
            "(its accept_empty setting)",
        )


def re_report_partner(source: DataSource) -> DataSource | None:
    """The source this one re-reports, or the one re-reporting it (DataSource.re_reports: pairs)."""
    return DataSource.objects.filter(Q(pk=source.re_reports_id) | Q(re_reports=source.pk)).first()


def _lock_sources(cursor, *source_ids) -> None:
    """The sources' advisory locks, in id order (a source and its partner: loads of either, and
    reversals, see the other's records settled; one order, so two of them never deadlock)."""
    for source_id in sorted(set(source_ids)):
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, source_id])


def _lock_and_check_duplicate(cursor, *, source, batch, partner=None) -> bool:
    """Under the source's lock (one load per source at a time), and its partner's: was this file
    loaded meanwhile?"""
    _lock_sources(cursor, source.pk, *([partner.pk] if partner else []))
    return IngestionBatch.objects.filter(source=source, sha256=batch.sha256, status=Status.LOADED).exists()


def _close_loaded(*, tenant, actor, source, batch, parsed, result: LoadResult, file_rejection, total, started,
                  timings) -> IngestionBatch:  # fmt: skip
    status = Status.REJECTED if result.rejected and not result.accepted else Status.LOADED
    if status == Status.LOADED and parsed.statements:
        formats.statements_record(tenant=tenant, source=source, batch=batch, parsed=parsed)
    code, message = file_rejection or ("", "")
    if status == Status.REJECTED and not code:
        code, message = "all_rows_rejected", "every row of the file was rejected"
    return _finish(batch, actor=actor, status=status, started=started, result=result, total=total,
                   parsed=parsed, code=code, message=message, timings=timings)  # fmt: skip


def _load_direct(*, tenant, actor, source, batch, parse, started, timings) -> IngestionBatch | None:
    """Rows COPYed straight into the record table (loader.DirectLoad). None: take the staged path —
    a natural key repeated in the file or already loaded (the unique index refused it), a month
    without its partition, too many rejections, or a file-level control that failed."""
    t0 = time.monotonic()
    try:
        if re_report_partner(source) is not None:
            raise StagingNeeded("re_reports", "the source has a re-reporting partner: linking is staged")
        with transaction.atomic(), connection.cursor() as cursor:
            if _lock_and_check_duplicate(cursor, source=source, batch=batch):
                return _finish(batch, actor=actor, status=Status.DUPLICATE, started=started, timings=timings)
            parsed: Parsed = parse()
            direct = DirectLoad(cursor, tenant_id=tenant.pk, source_id=source.pk, batch_id=batch.pk,
                                kind=source.kind)  # fmt: skip
            total = direct.copy(_validated(parsed, source, tenant))
            _check_not_empty(parsed, total, source)
            if parsed.file_rejection or formats.statement_controls(
                tenant=tenant, source=source, parsed=parsed
            ):
                raise StagingNeeded("file_control", "a file-level control failed")
            result = direct.finish()
            timings["direct_s"] = round(time.monotonic() - t0, 3)
            return _close_loaded(tenant=tenant, actor=actor, source=source, batch=batch, parsed=parsed,
                                 result=result, file_rejection=None, total=total, started=started,
                                 timings=timings)  # fmt: skip
    except StagingNeeded as exc:
        why, detail = exc.why, str(exc)
    except (IntegrityError, psycopg_errors.IntegrityError) as exc:
        # COPY reaches psycopg's cursor directly: its errors arrive unwrapped by Django.
        cause = exc if isinstance(exc, psycopg_errors.Error) else exc.__cause__
        # CheckViolation: "no partition of relation ... found for row" (the staged path creates it).
        why = {
            psycopg_errors.UniqueViolation: "duplicate_key",
            psycopg_errors.CheckViolation: "no_partition",
        }.get(type(cause))
        if why is None:
            raise
        detail = str(cause).splitlines()[0]
    metrics.STAGED.labels(kind=source.kind, why=why).inc()
    log.info("batch_staged", batch_id=batch.pk, source_id=source.pk, tenant=tenant.slug, why=why,
             detail=detail, **{"txn.type": source.kind})  # fmt: skip
    return None


def _load_staged(*, tenant, actor, source, batch, parse, started, timings) -> IngestionBatch:
    """Validated rows into a temp table; repeated keys, keys already loaded and amendments decided
    set-based; partitions created; then the load in ONE transaction (loader.Staging)."""
    with connection.cursor() as cursor:
        staging = Staging(cursor, batch.pk)
        try:
            t0 = time.monotonic()
            # A savepoint (or a transaction): a file that fails halfway leaves no staged rows.
            with transaction.atomic():
                staging.create()
                parsed: Parsed = parse()
                total = staging.copy_rows(_validated(parsed, source, tenant))
                _check_not_empty(parsed, total, source)
            staging.reject_repeated_keys(parsed.normalization.key_label)
            IngestionBatch.objects.filter(pk=batch.pk, status=Status.RECEIVED).update(
                status=Status.VALIDATED, rows_total=total
            )
            date_range = staging.date_range()
            if date_range:
                ensure_partitions_for(*date_range)
            timings["stage_s"] = round(time.monotonic() - t0, 3)
            t0 = time.monotonic()
            with transaction.atomic():
                partner = re_report_partner(source)
                if _lock_and_check_duplicate(cursor, source=source, batch=batch, partner=partner):
                    return _finish(
                        batch, actor=actor, status=Status.DUPLICATE, started=started, timings=timings
                    )
                # File-level controls (statement balances, duplicates, continuity) under the lock:
                # a violation rejects every row of the file with the reason.
                file_rejection = parsed.file_rejection or formats.statement_controls(
                    tenant=tenant, source=source, parsed=parsed
                )
                if file_rejection:
                    staging.reject_all(*file_rejection)
                result = staging.load(
                    tenant_id=tenant.pk,
                    source_id=source.pk,
                    batch_id=batch.pk,
                    kind=source.kind,
                    date_range=date_range,
                    partner=partner,
                    key_label=parsed.normalization.key_label,
                )
                timings["load_s"] = round(time.monotonic() - t0, 3)
                return _close_loaded(tenant=tenant, actor=actor, source=source, batch=batch, parsed=parsed,
                                     result=result, file_rejection=file_rejection, total=total,
                                     started=started, timings=timings)  # fmt: skip
        finally:
            if not (connection.in_atomic_block and connection.needs_rollback):
                staging.drop()


def _load_kind(*, tenant, actor, source, batch, parse, started, timings, loader) -> IngestionBatch:
    """A handed-off kind (kinds.py): in one transaction under the source's lock, as the record
    paths, each row typed by the kind's ``clean`` (or rejected with its reason), a repeated
    identity rejected (the first occurrence stands), the accepted rows handed to the kind's
    ``load``, and every rejection — ours and the loader's — written to the rejection table."""
    t0 = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        if _lock_and_check_duplicate(cursor, source=source, batch=batch):
            return _finish(batch, actor=actor, status=Status.DUPLICATE, started=started, timings=timings)
        parsed: Parsed = parse()
        width = len(loader.fields)
        accepted, rejections, first_line, total = [], [], {}, 0
        for line_no, raw, reason, message, *values in parsed.rows:
            total += 1
            row = (line_no, raw or "", {})
            if reason is None:
                try:
                    typed = loader.clean(dict(zip(loader.fields, values[:width], strict=True)))
                    row = (line_no, raw or "", typed)
                except kinds.RowRejected as exc:
                    reason, message = exc.reason, exc.message
            if reason is None:
                key = loader.key(row[2])
                first = first_line.setdefault(key, line_no)
                if first != line_no:
                    reason, message = "duplicate_key", f"{key} already appears at line {first} of this file"
            if reason is None:
                accepted.append(row)
            else:
                rejections.append((row, reason, message or ""))
        _check_not_empty(parsed, total, source)  # a truncated file raised FileRejected while read
        rejections += loader.load(tenant=tenant, batch=batch, rows=accepted)
        Rejection.objects.bulk_create(
            Rejection(tenant=tenant, batch=batch, line_no=line_no, raw=raw, reason=reason, message=message)
            for (line_no, raw, _values), reason, message in rejections
        )
        reasons = Counter(reason for _row, reason, _message in rejections)
        result = LoadResult(accepted=total - len(rejections), rejected=len(rejections), reasons=dict(reasons))
        timings["load_s"] = round(time.monotonic() - t0, 3)
        return _close_loaded(tenant=tenant, actor=actor, source=source, batch=batch, parsed=parsed,
                             result=result, file_rejection=None, total=total, started=started,
                             timings=timings)  # fmt: skip


@contextmanager
def _loading(batch_id: int):
    """The batch's loading lock (session level, so it spans the load's own transactions)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_LOADING_NAMESPACE, batch_id])
    try:
        yield
    finally:
        # A lost connection took the lock with it; the load's own error is the one to raise.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOADING_NAMESPACE, batch_id])


_ABANDONED = (
    "the process loading this batch ended before closing it (killed, or its database connection lost);"
    " nothing of it was loaded: send the file again"
)


def batches_fail_abandoned(*, older_than_s: float = ABANDONED_AFTER_SECONDS) -> list[int]:
    """Close every batch still received or validated that nobody is loading (its loading lock is
    free: the process that received it was killed or lost its connection before closing it) as
    ``failed``, code ``abandoned``, loudly. Nothing of such a batch is in the record table: its load
    transaction rolled back with the session. Beat calls this every five minutes."""
    from jfintech.audit import Actor

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    open_batches = IngestionBatch.objects.filter(
        status__in=[Status.RECEIVED, Status.VALIDATED], received_at__lt=cutoff
    ).values_list("pk", flat=True)
    failed = []
    for batch_id in list(open_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOADING_NAMESPACE, batch_id])
            if not cursor.fetchone()[0]:
                continue  # a live load holds it
            batch = IngestionBatch.objects.select_related("tenant", "source").get(pk=batch_id)
            if batch.status not in (Status.RECEIVED, Status.VALIDATED):
                continue  # closed meanwhile
            _finish(batch, actor=Actor.for_system("ingestion"), status=Status.FAILED,
                    started=time.monotonic(), code="abandoned", message=_ABANDONED)  # fmt: skip
        metrics.BATCH_DURATION.labels(format=batch.detected_format or "unknown", outcome="failed").observe(
            (timezone.now() - batch.received_at).total_seconds()
        )
        log.error("batch_abandoned", batch_id=batch_id, source_id=batch.source_id, tenant=batch.tenant.slug,
                  **{"txn.type": batch.source.kind})  # fmt: skip
        failed.append(batch_id)
    return failed


def _run(*, tenant, actor, source, sha256, size, file_name, fmt, parse) -> IngestionBatch:
    _check_source(tenant, source)
    started = time.monotonic()
    if connection.in_atomic_block and source.kind not in HandedOffKind.values:
        # The caller's transaction (an idempotent API request) is open: partitions must exist
        # before its first write (see ensure_partitions_for), so cover the whole tenant window.
        ensure_partitions_for(*tenant_window(tenant))
    received = _receive(tenant=tenant, actor=actor, source=source, sha256=sha256, size=size,
                        file_name=file_name, fmt=fmt)  # fmt: skip
    batch = received.batch
    if not received.duplicate:
        with _loading(batch.pk):
            try:
                batch = _load(
                    tenant=tenant, actor=actor, source=source, batch=batch, parse=parse, started=started
                )
            except Exception as exc:
                log.exception("batch_failed", batch_id=batch.pk, source_id=source.pk, tenant=tenant.slug,
                              **{"txn.type": source.kind})  # fmt: skip
                metrics.BATCH_DURATION.labels(format=fmt, outcome="failed").observe(
                    time.monotonic() - started
                )
                if not connection.in_atomic_block:  # else the caller's transaction is rolled back whole
                    message = f"{type(exc).__name__}: {exc}"[:2000]
                    with transaction.atomic():
                        _finish(batch, actor=actor, status=Status.FAILED, started=started,
                                code="internal_error", message=message)  # fmt: skip
                raise
    _observe(batch, source.kind, started)
    return batch


_BLANK = b"\xef\xbb\xbf \t\r\n"  # a byte-order mark and white space: no content


def _hash_stream(stream) -> tuple[str, int, bool]:
    """sha256, size, and whether the file is blank (nothing but white space and a BOM)."""
    digest, size, blank = hashlib.sha256(), 0, True
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        blank = blank and not chunk.strip(_BLANK)
    return digest.hexdigest(), size, blank


def batch_ingest_file(*, tenant, actor, source: DataSource, path: str | Path | None = None, fileobj=None,
                      file_name: str = "", format: str = "auto") -> IngestionBatch:  # fmt: skip
    """Ingest one file (a path, or a binary file object that can seek) as one batch.

    A file whose sha256 was already loaded for this source becomes a ``duplicate`` batch that loads
    nothing. Returns the closed batch (loaded, rejected, duplicate); raises on unexpected errors
    after marking the batch failed.
    """
    permissions.require(tenant=tenant, actor=actor, area="source", verb="upload")
    if (path is None) == (fileobj is None):
        raise ValueError("give exactly one of path or fileobj")
    stream = open(path, "rb") if path is not None else fileobj  # noqa: SIM115 (closed below)
    try:
        file_name = file_name or (Path(path).name if path is not None else getattr(fileobj, "name", "") or "")
        stream.seek(0)
        sha256, size, blank = _hash_stream(stream)
        stream.seek(0)
        head = stream.read(4096)
        stream.seek(0)
        fmt = formats.detect(head, declared=format, source=source)

        def parse() -> Parsed:  # called again when the staged path takes over
            if blank:  # no format can read nothing: the loader's empty-delivery rule decides
                return Parsed(rows=iter(()), format=fmt)
            stream.seek(0)
            return formats.parse(fmt, stream, source=source)

        return _run(tenant=tenant, actor=actor, source=source, sha256=sha256, size=size,
                    file_name=file_name, fmt=fmt, parse=parse)  # fmt: skip
    finally:
        if path is not None:
            stream.close()


def batch_ingest_records(
    *, tenant, actor, source: DataSource, records: list, file_name: str = ""
) -> IngestionBatch:
    """Ingest JSON records (pushed through the API or pulled by a connector) as one batch.

    The batch's sha256 is over the canonical JSON of the records, so the same push twice is a
    duplicate batch.
    """
    permissions.require(tenant=tenant, actor=actor, area="source", verb="upload")
    if not isinstance(records, list):
        raise ApplicationError("expected a list of records", code="invalid")
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":"), default=str).encode()
    return _run(tenant=tenant, actor=actor, source=source, sha256=hashlib.sha256(canonical).hexdigest(),
                size=len(canonical), file_name=file_name or "records.json", fmt="json",
                parse=lambda: parse_json_records(records, mapping=source.mapping,
                                                 kind=source.kind))  # fmt: skip


def batch_reverse(*, tenant, actor, batch: IngestionBatch, reason: str) -> IngestionBatch:
    """Mark a loaded batch's rows reversed (kept, never deleted) so a corrected file can be loaded.

    Versions the batch had superseded become active again when no other active version is left.
    The partner source's records linked to this batch's records (re-reports of its entries) become
    active again: with the earlier copy gone, they are the entry's only record.
    """
    permissions.require(tenant=tenant, actor=actor, area="batch", verb="reverse")
    if batch.tenant_id != tenant.pk:
        raise ApplicationError("No such batch for this tenant.", code="not_found", status=404)
    if not reason.strip():
        raise ApplicationError("Say why the batch is reversed.", code="reason_required")
    if batch.source.kind in HandedOffKind.values:
        # Its rows are another app's (versions a filing may already have been prepared from).
        raise ApplicationError(
            f"A {batch.source.kind} batch cannot be reversed: load a correction (a new version).",
            code="invalid_state", status=409,
        )  # fmt: skip
    partner = re_report_partner(batch.source)
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_sources(cursor, batch.source_id, *([partner.pk] if partner else []))
        before = _snapshot(batch)
        moved = IngestionBatch.objects.filter(pk=batch.pk, status=Status.LOADED).update(
            status=Status.REVERSED, reversed_at=timezone.now(), reversed_by=actor.display[:200],
            reverse_reason=reason,
        )  # fmt: skip
        if not moved:
            batch.refresh_from_db()
            raise ApplicationError(f"Only a loaded batch can be reversed (this one is {batch.status}).",
                                   code="invalid_state", status=409)  # fmt: skip
        StatementBalance.objects.filter(batch_id=batch.pk).update(status=StatementBalance.Status.REVERSED)
        reversed_rows = (
            Record.objects.filter(batch_id=batch.pk).exclude(status="reversed").update(status="reversed")
        )
        cursor.execute(
            """
            UPDATE reconciliation_record r SET status = 'active'
            FROM (
              SELECT DISTINCT ON (p.external_id, p.business_date) p.id, p.business_date
              FROM reconciliation_record p
              JOIN (SELECT DISTINCT external_id, business_date FROM reconciliation_record
                    WHERE batch_id = %(batch)s) k
                ON p.external_id = k.external_id AND p.business_date = k.business_date
              WHERE p.tenant_id = %(tenant)s AND p.source_id = %(source)s AND p.status = 'superseded'
                AND NOT EXISTS (SELECT 1 FROM reconciliation_record a WHERE a.tenant_id = p.tenant_id
                  AND a.source_id = p.source_id AND a.external_id = p.external_id
                  AND a.business_date = p.business_date AND a.status = 'active')
              ORDER BY p.external_id, p.business_date, p.version DESC
            ) back
            WHERE r.id = back.id AND r.business_date = back.business_date
            """,
            {"batch": batch.pk, "tenant": tenant.pk, "source": batch.source_id},
        )
        reactivated = cursor.rowcount
        unlinked = _unlink_re_reports(cursor, batch=batch, partner=partner) if partner else 0
        batch.refresh_from_db()
        audit.record(tenant=tenant, actor=actor, action="batch.reverse", obj=batch, before=before,
                     after={**_snapshot(batch), "reason": reason, "rows_reversed": reversed_rows,
                            "versions_reactivated": reactivated, "links_released": unlinked})  # fmt: skip
    log.info("batch_reversed", batch_id=batch.pk, tenant=tenant.slug, rows_reversed=reversed_rows,
             versions_reactivated=reactivated, links_released=unlinked)  # fmt: skip
    return batch


def _unlink_re_reports(cursor, *, batch, partner) -> int:
    """The partner's records linked to the reversed batch's records become active (their
    attributes keep ``unlinked_from``), unless their own source has an active one of the key. A
    linked record's booking date is within LINK_WINDOW_DAYS of its earlier copy's, which bounds
    the partitions read."""
    cursor.execute(
        "SELECT min(business_date), max(business_date) FROM reconciliation_record WHERE batch_id = %s",
        [batch.pk],
    )
    first, last = cursor.fetchone()
    if first is None:
        return 0
    window = timedelta(days=LINK_WINDOW_DAYS)
    cursor.execute(
        """
        UPDATE reconciliation_record l SET status = 'active',
          attributes = (l.attributes - 'linked_to' - 'linked_batch')
            || jsonb_build_object('unlinked_from', l.attributes->'linked_to')
        WHERE l.tenant_id = %(tenant)s AND l.source_id = %(partner)s AND l.status = 'linked'
          AND l.business_date BETWEEN %(first)s AND %(last)s
          AND l.attributes->>'linked_batch' = %(batch)s
          AND NOT EXISTS (SELECT 1 FROM reconciliation_record a WHERE a.tenant_id = l.tenant_id
            AND a.source_id = l.source_id AND a.external_id = l.external_id
            AND a.business_date = l.business_date AND a.status = 'active')
        """,
        {"tenant": batch.tenant_id, "partner": partner.pk, "batch": str(batch.pk), "first": first - window,
         "last": last + window},
    )  # fmt: skip
    return cursor.rowcount


# --- Sources -----------------------------------------------------------------------------------

SOURCE_FIELDS = ("kind", "format", "mapping", "connector", "is_active", "accept_empty", "re_reports")
CONNECTOR_TYPES = ("database", "http", "directory")


def source_validate(*, kind: str, format: str, mapping: dict, connector: dict) -> None:
    """Raise ApplicationError (code invalid_source / invalid_mapping) with a message a person can act on."""
    from reconciliation.ingestion.mapping import json_key_fields, validate_csv_mapping, validate_kind_mapping
    from reconciliation.models import SOURCE_KINDS

    kinds_known = [value for value, _label in SOURCE_KINDS]
    if kind not in kinds_known:
        raise ApplicationError(f"kind must be one of {', '.join(kinds_known)}", code="invalid_source")
    if format not in DataSource.Format.values:
        raise ApplicationError(
            f"format must be one of {', '.join(DataSource.Format.values)}", code="invalid_source"
        )
    if not isinstance(mapping, dict) or not isinstance(connector, dict):
        raise ApplicationError("mapping and connector must be objects", code="invalid_source")
    loader = kinds.loader_for(kind)
    if loader is not None:
        if format not in (DataSource.Format.CSV, DataSource.Format.JSON):
            raise ApplicationError(f"a {kind} source reads csv or json, not {format}", code="invalid_source")
        validate_kind_mapping(mapping, loader, csv=format == DataSource.Format.CSV)
    elif format == DataSource.Format.CSV:
        validate_csv_mapping(mapping, kind)
    if loader is None:
        references.validate(mapping, format)
    connector_type = connector.get("type", "database")
    if connector_type not in CONNECTOR_TYPES:
        raise ApplicationError(
            f"connector type must be one of {', '.join(CONNECTOR_TYPES)}", code="invalid_source"
        )
    if connector_type == "http" and not str(connector.get("url", "")).startswith(("http://", "https://")):
        raise ApplicationError("an http connector needs an http(s) url", code="invalid_source")
    if connector_type == "directory" and not connector.get("path"):
        raise ApplicationError("a directory connector needs a path", code="invalid_source")
    if loader is None and (format == DataSource.Format.JSON or connector_type == "http"):
        json_key_fields(mapping)  # JSON records (pushed or pulled) must be able to make the key


def re_report_problems(sources: dict[str, tuple[str, str | None]], name: str) -> list[str]:
    """What is wrong with source ``name``'s re-reporting pair, given the tenant's sources as they
    are to be: ``{name: (kind, name of the source it re-reports or None)}``.

    A pair is two statement sources, the one re-reporting the other (a camt.053 statement source
    re-reports its camt.054 notification source); a source is in one pair at most, so an entry has
    at most two copies and a reversal knows which copy comes back (docs/ingestion.md).
    """
    from reconciliation.models import RecordKind

    kind, target = sources[name]
    reported_by = sorted(other for other, (_, t) in sources.items() if t == name and other != name)
    if not target:
        if reported_by and kind != RecordKind.STATEMENT:
            return [
                f"kind: source {reported_by[0]} re-reports this source, which must stay a statement source"
            ]
        return []
    if target == name:
        return ["re_reports: a source cannot re-report itself"]
    if target not in sources:
        return [f"re_reports: no source named {target!r} in this tenant"]
    target_kind, target_target = sources[target]
    problems = []
    if kind != RecordKind.STATEMENT:
        problems.append(f"re_reports: only a statement source re-reports another (this one is {kind})")
    if target_kind != RecordKind.STATEMENT:
        problems.append(f"re_reports: {target} is a {target_kind} source, not a statement source")
    if target_target:
        problems.append(
            f"re_reports: {target} itself re-reports {target_target} (two sources pair, no chains)"
        )
    others = sorted(other for other, (_, t) in sources.items() if t == target and other != name)
    if others:
        problems.append(f"re_reports: {target} is already re-reported by {others[0]}")
    if reported_by:
        problems.append(
            f"re_reports: {reported_by[0]} re-reports this source (a source is in one pair at most)"
        )
    return problems


def tenant_source_pairs(tenant) -> dict[str, tuple[str, str | None]]:
    """The tenant's sources as re_report_problems reads them."""
    if tenant is None:
        return {}
    return {
        name: (kind, target)
        for name, kind, target in DataSource.objects.filter(tenant=tenant).values_list(
            "name", "kind", "re_reports__name"
        )
    }


def source_validate_re_reports(*, tenant, name: str, kind: str, re_reports: str | None) -> None:
    """Raise ApplicationError (invalid_source) when the pair this source would be in is not valid."""
    problems = re_report_problems({**tenant_source_pairs(tenant), name: (kind, re_reports or None)}, name)
    if problems:
        raise ApplicationError("; ".join(problems), code="invalid_source")


def _source_snapshot(source: DataSource) -> dict:
    snapshot = {"name": source.name, **{f: getattr(source, f) for f in SOURCE_FIELDS}}
    snapshot["re_reports"] = source.re_reports.name if source.re_reports_id else None
    return snapshot


def source_upsert(
    *, tenant, actor, name: str, kind: str, format: str = "csv", mapping: dict | None = None,
    connector: dict | None = None, is_active: bool = True, accept_empty: bool = False,
    re_reports: str | None = None,
) -> tuple[DataSource, str]:  # fmt: skip
    """Create or update a source by (tenant, name). Returns (source, "created" | "updated" | "unchanged").

    ``re_reports``: the name of the statement source whose entries this one re-reports, or None.
    """
    values = {"kind": kind, "format": format, "mapping": mapping or {}, "connector": connector or {},
              "is_active": is_active, "accept_empty": accept_empty,
              "re_reports": re_reports or None}  # fmt: skip
    source_validate(kind=kind, format=format, mapping=values["mapping"], connector=values["connector"])
    with transaction.atomic():
        source = DataSource.objects.select_for_update().filter(tenant=tenant, name=name).first()
        permissions.require(tenant=tenant, actor=actor, area="source", verb="change" if source else "add")
        source_validate_re_reports(tenant=tenant, name=name, kind=kind, re_reports=values["re_reports"])
        target = DataSource.objects.get(tenant=tenant, name=re_reports) if re_reports else None
        if source is None:
            source = DataSource(tenant=tenant, name=name, **{**values, "re_reports": target})
            source.full_clean()
            source.save()
            audit.record(
                tenant=tenant, actor=actor, action="source.create", obj=source, after=_source_snapshot(source)
            )
            return source, "created"
        before = _source_snapshot(source)
        if all(before[f] == values[f] for f in SOURCE_FIELDS):
            return source, "unchanged"
        for field_name, value in {**values, "re_reports": target}.items():
            setattr(source, field_name, value)
        source.full_clean()
        source.save()
        audit.record(tenant=tenant, actor=actor, action="source.update", obj=source, before=before,
                     after=_source_snapshot(source))  # fmt: skip
        return source, "updated"


def partitions_ensure_ahead(*, today: date | None = None) -> list[str]:
    """Create every month any tenant's window covers (beat, daily), so loads rarely create one."""
    from jfintech.tenancy.models import Tenant

    windows = [tenant_window(t, today) for t in Tenant.objects.all()]
    if not windows:
        return []
    created = partitions.ensure_partitions(min(w[0] for w in windows), max(w[1] for w in windows))
    if created:
        log.info("partitions_created", partitions=created)
    return created
