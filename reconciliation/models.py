"""Sources, ingestion batches and records.

Records of every kind live in ONE table, range-partitioned by month on ``business_date`` (see
docs/records.md for why one table with a ``kind`` column rather than one per kind). The table is
created with SQL in migration 0002, not by Django: its primary key is (id, business_date), which the
ORM does not model; the model below keeps a single-field ``id`` for the ORM (a sequence-generated
bigint, unique in practice). Migration 0002 gives Django the model's state while the database side
is that SQL (SeparateDatabaseAndState), so test flushes and the admin know the table.
"""

from django.db import models
from django.db.models import Q

from jfintech.tenancy.models import TenantOwned


class RecordKind(models.TextChoices):
    POSITION = "position"
    TRADE = "trade"
    SETTLEMENT = "settlement"
    LEDGER = "ledger"
    STATEMENT = "statement"


# What business_date means for each kind (the partition key).
BUSINESS_DATE_OF_KIND = {
    RecordKind.POSITION: "as-of date",
    RecordKind.TRADE: "trade date",
    RecordKind.SETTLEMENT: "settlement date",
    RecordKind.LEDGER: "posting date",
    RecordKind.STATEMENT: "booking date",
}


class HandedOffKind(models.TextChoices):
    """Source kinds whose rows another app keeps: received, parsed and accounted for by ingestion,
    stored by the kind's registered loader (reconciliation/ingestion/kinds.py), never records."""

    PARTIES = "parties"  # filings: customers, versioned
    CASH_TRANSACTIONS = "cash_transactions"  # filings: cash in and out, for CTRs


SOURCE_KINDS = [*RecordKind.choices, *HandedOffKind.choices]


class DataSource(TenantOwned):
    class Format(models.TextChoices):
        CSV = "csv"
        JSON = "json"
        CAMT053 = "camt053"
        CAMT054 = "camt054"
        MT940 = "mt940"
        BAI2 = "bai2"

    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=24, choices=SOURCE_KINDS)
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.CSV)
    # CSV mapping: {"columns": {field: column}, "date_format": "%Y-%m-%d", "decimal_separator": ".",
    # "sign": {"column": "dc", "debit": "D", "credit": "C"}, "default_currency": "EUR"}
    mapping = models.JSONField(default=dict, blank=True)
    # Connector used by reconciliation fetches: "database" (records already loaded), "http", "directory".
    connector = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    # A delivery with no records (a 0-byte file, a header-only CSV, {"records": []}) is rejected as
    # `empty_file` unless the source says an empty day is normal for it (docs/ingestion.md).
    accept_empty = models.BooleanField(default=False)
    # This source re-reports the entries of another statement source of the same accounts (an
    # end-of-day camt.053 repeating the intraday camt.054 notifications): an entry both carry, by
    # (account, account servicer reference), is loaded once as active; whichever copy arrives
    # later is stored `linked` to the earlier (docs/ingestion.md, "Notifications and statements").
    # One-to-one: a pair of sources, never a chain (services.source_validate_re_reports).
    re_reports = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="re_reported_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_source_tenant_name")]
        ordering = ["tenant", "name"]

    def __str__(self):
        return f"{self.tenant_id}:{self.name}"


class IngestionBatch(TenantOwned):
    class Status(models.TextChoices):
        RECEIVED = "received"
        VALIDATED = "validated"
        LOADED = "loaded"
        REJECTED = "rejected"
        DUPLICATE = "duplicate"
        REVERSED = "reversed"
        FAILED = "failed"  # an unexpected error (not the file's fault): loud, nothing loaded

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="batches")
    file_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    detected_format = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    declared_totals = models.JSONField(default=dict, blank=True)
    computed_totals = models.JSONField(default=dict, blank=True)
    rows_total = models.IntegerField(default=0)
    rows_accepted = models.IntegerField(default=0)
    rows_rejected = models.IntegerField(default=0)
    # Of rows_accepted, those stored `linked` to the same entry loaded earlier by the re-reporting
    # source's partner (a statement re-reporting a notification, or a late notification).
    rows_linked = models.IntegerField(default=0)
    reject_reason = models.TextField(blank=True)
    # Why the whole file was refused (bad XML, XSD, control totals, continuity): a RejectionReason
    # code or "malformed_file" / "invalid_schema"; row-level reasons are on the Rejection rows.
    reject_code = models.CharField(max_length=32, blank=True)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT)
    timings = models.JSONField(default=dict, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.CharField(max_length=200, blank=True)
    reverse_reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            # A re-sent file becomes a `duplicate` batch that loads nothing.
            models.UniqueConstraint(
                fields=["source", "sha256"], condition=Q(status="loaded"), name="uniq_loaded_batch_per_file"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "validated"])
                | Q(rows_total=models.F("rows_accepted") + models.F("rows_rejected")),
                name="batch_rows_accounted",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "source", "-received_at"], name="batch_source_recent_idx")]
        verbose_name_plural = "ingestion batches"

    def __str__(self):
        return f"batch {self.pk} {self.file_name} ({self.status})"


class Record(models.Model):
    """One trade, settlement, position, ledger entry or statement line (partitioned table)."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUPERSEDED = "superseded"  # an amendment (higher version) replaced it; kept as history
        REVERSED = "reversed"  # its batch was reversed; kept, never deleted
        # The same economic entry was loaded earlier from the partner source (DataSource.re_reports):
        # kept, out of every run's scope; attributes["linked_to"] is the earlier record's id.
        LINKED = "linked"

    id = models.BigAutoField(primary_key=True)
    # No row-level foreign keys: the loader writes its own batch's ids (migration 0011, docs/records.md).
    tenant = models.ForeignKey(
        "jfintech.Tenant", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    source = models.ForeignKey(DataSource, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    batch = models.ForeignKey(
        IngestionBatch, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    kind = models.CharField(max_length=16, choices=RecordKind.choices)
    business_date = models.DateField()
    external_id = models.CharField(max_length=128)
    version = models.IntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    account = models.CharField(max_length=64, blank=True)
    instrument = models.CharField(max_length=64, blank=True)
    reference = models.CharField(max_length=140, blank=True)
    counterparty = models.CharField(max_length=140, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    amount = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    quantity = models.DecimalField(max_digits=28, decimal_places=8, null=True, blank=True)
    trade_date = models.DateField(null=True, blank=True)
    value_date = models.DateField(null=True, blank=True)
    description = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    line_no = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "reconciliation_record"  # created by SQL in migration 0002 (partitioned)

    def __str__(self):
        return f"{self.kind} {self.external_id} v{self.version} {self.business_date}"


from reconciliation.ingestion.models import (  # noqa: E402,F401  (ingestion's tables)
    Rejection,
    RejectionReason,
    StatementBalance,
)
from reconciliation.matching.models import (  # noqa: E402,F401  (matching depth)
    MatchReview,
    RuleVersionApproval,
    RunShard,
    SimulationReport,
)
from reconciliation.runs.models import (  # noqa: E402,F401  (runs' tables: definitions, rules, runs, matches)
    Break,
    Definition,
    DefinitionSource,
    Match,
    MatchItem,
    RuleVersion,
    Run,
    RunExclusion,
    RunPart,
    RunScope,
    RunTradeFlow,
)
