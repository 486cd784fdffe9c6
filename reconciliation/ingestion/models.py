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
    NOT_BOOKED = "not_booked"  # a pending/information camt entry: not part of the booked balance
    # The partner source (DataSource.re_reports) loaded this entry (same account and account
    # servicer reference) with another amount or currency, or cannot say which record it is.
    RE_REPORT_CONFLICT = "re_report_conflict"
    # Filings' kinds (parties, cash_transactions; reconciliation/ingestion/kinds.py).
    MALFORMED_TIME = "malformed_time"
    MALFORMED_DIRECTION = "malformed_direction"
    MALFORMED_DETAIL_CODE = "malformed_detail_code"
    UNKNOWN_COUNTRY = "unknown_country"
    UNKNOWN_BRANCH = "unknown_branch"


class Rejection(TenantOwned):
    """A row that was not loaded, and why. Written in bulk (COPY, or INSERT … SELECT from staging).

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


class StatementBalance(TenantOwned):
    """A loaded bank statement's balances: the next statement of the account must continue it.

    One row per statement (camt.053 Stmt, camt.054 Ntfctn, MT940 :20:/:28C:, BAI2 account and
    as-of date) of a loaded batch; marked reversed with its batch, never deleted.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        REVERSED = "reversed"

    source = models.ForeignKey("reconciliation.DataSource", on_delete=models.PROTECT, related_name="+")
    batch = models.ForeignKey(
        "reconciliation.IngestionBatch", on_delete=models.PROTECT, related_name="statements"
    )
    account = models.CharField(max_length=64)
    statement_id = models.CharField(max_length=140)
    currency = models.CharField(max_length=3, blank=True)
    sequence = models.CharField(max_length=35, blank=True)
    opening = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    closing = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    opening_date = models.DateField(null=True, blank=True)
    closing_date = models.DateField(null=True, blank=True)
    entries_count = models.IntegerField(default=0)
    entries_sum = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "reconciliation"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "account", "statement_id"],
                condition=models.Q(status="active"),
                name="uniq_active_statement",
            )
        ]
        indexes = [models.Index(fields=["source", "account", "closing_date"], name="statement_account_idx")]

    def __str__(self):
        return f"{self.account} {self.statement_id}"
