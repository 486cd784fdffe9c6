"""Ingestion's own tables (imported by reconciliation/models.py, so they belong to that app)."""

from django.db import models
from django.db.models.functions import Now

from jfintech.tenancy.models import TenantOwned


class RejectionReason(models.TextChoices):
    MALFORMED_ROW = "malformed_row"  # wrong number of columns, not a JSON object, ...
    MISSING_FIELD = "missing_field"
    MALFORMED_DATE = "malformed_date"
    OUT_OF_WINDOW = "out_of_window"
    MALFORMED_AMOUNT = "malformed_amount"
    MALFORMED_QUANTITY = "malformed_quantity"
    MALFORMED_VERSION = "malformed_version"
    MALFORMED_SIGN = "malformed_sign"
    UNKNOWN_CURRENCY = "unknown_currency"
    FIELD_TOO_LONG = "field_too_long"
    DUPLICATE_KEY = "duplicate_key"
    # File-level controls: every row of the file is rejected with the batch's reason.
    BALANCE_MISMATCH = "balance_mismatch"
    CONTROL_TOTAL_MISMATCH = "control_total_mismatch"
    CONTINUITY_BREAK = "continuity_break"
    DUPLICATE_STATEMENT = "duplicate_statement"


class Rejection(TenantOwned):
    """A row that was not loaded, and why. Written set-based (INSERT … SELECT from staging).

    ``line_no`` is the physical line (CSV, MT940, BAI2) or the entry number (JSON, camt).
    """

    batch = models.ForeignKey(
        "reconciliation.IngestionBatch", on_delete=models.PROTECT, related_name="rejections"
    )
    line_no = models.IntegerField(null=True, blank=True)
    raw = models.TextField(blank=True)
    reason = models.CharField(max_length=32, choices=RejectionReason.choices)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())

    class Meta:
        app_label = "reconciliation"
        indexes = [models.Index(fields=["batch", "reason", "line_no"], name="rejection_batch_reason_idx")]
        ordering = ["batch", "line_no", "id"]

    def __str__(self):
        return f"batch {self.batch_id} line {self.line_no}: {self.reason}"
