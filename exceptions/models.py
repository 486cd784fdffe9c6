"""Break cases: one per tenant and fingerprint, opened and moved only by ``exceptions.services``.

A case keeps a snapshot of the records and differences it was opened for (what the analyst saw,
which is also what an auditor needs) plus the record ids; exceptions never imports reconciliation.

One case per (tenant, fingerprint), for ever: a resolved case whose item breaks again is reopened
(``reopen_count`` + 1), never duplicated, so its history stays in one place (docs/exceptions.md).
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from jfintech.tenancy.models import TenantOwned


class BreakType(models.TextChoices):
    MISSING_LEFT = "missing_left"
    MISSING_RIGHT = "missing_right"
    AMOUNT_MISMATCH = "amount_mismatch"
    QUANTITY_MISMATCH = "quantity_mismatch"
    DATE_MISMATCH = "date_mismatch"
    DUPLICATE = "duplicate"
    POSITION_BREAK = "position_break"
    RUN_FAILED = "run_failed"


class CaseStatus(models.TextChoices):
    OPEN = "open"
    ASSIGNED = "assigned"
    INVESTIGATING = "investigating"
    PENDING_APPROVAL = "pending_approval"
    RESOLVED = "resolved"


class ResolutionReason(models.TextChoices):
    FIXED_AT_SOURCE = "fixed_at_source"
    AUTO_MATCHED = "auto_matched"
    WRITTEN_OFF = "written_off"
    FORCE_MATCHED = "force_matched"
    DUPLICATE_CASE = "duplicate_case"
    NOT_A_BREAK = "not_a_break"
    RUN_RERUN = "run_rerun"


class Priority(models.TextChoices):
    # Ordered by urgency; the SLA table in exceptions/sla.py gives each its business days.
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


def _trigram_upper(field: str, name: str) -> GinIndex:
    # Admin/API search is icontains, which PostgreSQL runs as UPPER(col) LIKE UPPER('%x%'):
    # a trigram index on that expression serves it without a sequential scan.
    return GinIndex(OpClass(Upper(field), name="gin_trgm_ops"), name=name)


class Case(TenantOwned):
    fingerprint = models.CharField(max_length=64, help_text="sha256 of definition + natural keys")
    break_type = models.CharField(max_length=24, choices=BreakType.choices)
    record_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    differences = models.JSONField(default=dict, blank=True)
    amount_at_stake = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    reference = models.CharField(max_length=140, blank=True)
    account = models.CharField(max_length=64, blank=True)
    instrument = models.CharField(max_length=64, blank=True)

    definition_id = models.BigIntegerField()
    definition_name = models.CharField(max_length=200)
    rule = models.CharField(max_length=200, blank=True, help_text="rule version / pass")
    first_run_id = models.BigIntegerField()
    last_run_id = models.BigIntegerField()
    run_count = models.PositiveIntegerField(default=1)
    trace_id = models.CharField(max_length=32, blank=True, help_text="trace of the last run that saw it")

    status = models.CharField(max_length=20, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    resolution_reason = models.CharField(max_length=24, choices=ResolutionReason.choices, blank=True)
    resolution_note = models.TextField(blank=True)
    reopen_count = models.PositiveIntegerField(default=0)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    priority = models.CharField(max_length=12, choices=Priority.choices, default=Priority.NORMAL)
    sla_due_at = models.DateTimeField(null=True, blank=True)

    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "fingerprint"], name="uniq_case_tenant_fingerprint"),
            models.CheckConstraint(
                condition=Q(status="resolved", resolution_reason__gt="", resolved_at__isnull=False)
                | (~Q(status="resolved") & Q(resolution_reason="", resolved_at__isnull=True)),
                name="case_resolved_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status="assigned") | Q(assignee__isnull=False), name="case_assigned_has_assignee"
            ),
            models.CheckConstraint(
                condition=Q(first_run_id__lte=models.F("last_run_id")), name="case_run_order"
            ),
        ]
        indexes = [
            # The desk's default list: a tenant's unresolved cases, oldest first.
            models.Index(fields=["tenant", "status", "first_seen_at"], name="case_tenant_status_seen_idx"),
            models.Index(fields=["tenant", "definition_id", "status"], name="case_tenant_definition_idx"),
            models.Index(fields=["tenant", "reference"], name="case_tenant_reference_idx"),
            models.Index(fields=["tenant", "account"], name="case_tenant_account_idx"),
            models.Index(fields=["tenant", "instrument"], name="case_tenant_instrument_idx"),
            models.Index(fields=["tenant", "-amount_at_stake"], name="case_tenant_amount_idx"),
            _trigram_upper("reference", "case_reference_trgm"),
            _trigram_upper("account", "case_account_trgm"),
            _trigram_upper("instrument", "case_instrument_trgm"),
        ]

    def __str__(self):
        return f"case {self.pk} {self.break_type} {self.reference or self.account or self.fingerprint[:12]}"
