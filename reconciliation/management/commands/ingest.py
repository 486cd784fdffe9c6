"""Ingest one file into a source as one batch.

    python manage.py ingest --tenant SLUG --source NAME PATH
        [--format auto|csv|camt053|camt054|mt940|bai2] [--json]

Exit status: 0 when the batch is loaded or a duplicate, 1 when it is rejected (or fails), 2 when
the tenant, source or file does not exist. With --json, stdout is one JSON object.
"""

import getpass
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jfintech.audit import Actor
from jfintech.tenancy.models import Tenant
from reconciliation.ingestion import selectors, services
from reconciliation.ingestion.formats import FORMATS
from reconciliation.models import IngestionBatch

FIRST_REJECTIONS = 20


def batch_summary(batch: IngestionBatch) -> dict:
    rejections = selectors.rejections_for_batch(tenant=batch.tenant, batch=batch)[:FIRST_REJECTIONS]
    return {
        "batch_id": batch.pk, "status": batch.status, "source": batch.source.name,
        "file_name": batch.file_name,
        "sha256": batch.sha256, "format": batch.detected_format, "rows_total": batch.rows_total,
        "rows_accepted": batch.rows_accepted, "rows_rejected": batch.rows_rejected,
        "rows_linked": batch.rows_linked,
        "control_totals": {"declared": batch.declared_totals, "computed": batch.computed_totals},
        "reject_code": batch.reject_code, "reject_reason": batch.reject_reason,
        "duplicate_of": batch.duplicate_of_id,
        "rejections": [{"line_no": r.line_no, "reason": r.reason, "message": r.message, "raw": r.raw[:500]}
                       for r in rejections],
    }  # fmt: skip


class Command(BaseCommand):
    help = "Ingest a file into a data source (exit 0 loaded/duplicate, 1 rejected, 2 not found)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--source", required=True, help="source name")
        parser.add_argument("--format", default="auto", choices=["auto", *FORMATS])
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("path")

    def handle(self, *args, tenant, source, format, json: bool, path, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"no tenant {tenant!r}", returncode=2)
        source_obj = selectors.source_get(tenant=tenant_obj, name=source)
        if source_obj is None:
            raise CommandError(f"no source {source!r} in tenant {tenant!r}", returncode=2)
        if not Path(path).is_file():
            raise CommandError(f"{path}: no such file", returncode=2)
        batch = services.batch_ingest_file(tenant=tenant_obj, source=source_obj, path=path, format=format,
                                           actor=Actor.for_system(f"cli:{getpass.getuser()}"))  # fmt: skip
        summary = batch_summary(batch)
        if json:
            self.stdout.write(_dumps(summary))
        else:
            self._human(summary)
        if batch.status not in (IngestionBatch.Status.LOADED, IngestionBatch.Status.DUPLICATE):
            raise SystemExit(1)

    def _human(self, s: dict) -> None:
        linked = f" ({s['rows_linked']} linked to the partner source's records)" if s["rows_linked"] else ""
        self.stdout.write(f"batch {s['batch_id']}: {s['status']} — {s['rows_total']} rows, "
                          f"{s['rows_accepted']} accepted{linked}, "
                          f"{s['rows_rejected']} rejected")  # fmt: skip
        if s["reject_code"]:
            self.stdout.write(f"rejected: {s['reject_code']}: {s['reject_reason']}")
        for r in s["rejections"]:
            self.stdout.write(f"  line {r['line_no']}: {r['reason']}: {r['message']}")


def _dumps(value) -> str:
    return json.dumps(value, default=str)
