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
    DELIVERY_FAILED = "delivery_failed"  # a scheduled report that could not be delivered (reporting)


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
    TIMING = "timing"  # a timing difference: the counterpart is expected on a later business day


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
    # Set once by the SLA sweep when sla_due_at passes unresolved; cleared when the SLA restarts.
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    root_cause = models.ForeignKey(
        "RootCauseCategory", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # Start of the current open period (first seen, or the last reopen): the SLA clock's anchor.
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=200, blank=True, help_text="who resolved it (actor display)")
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


class RootCauseCategory(TenantOwned):
    """A tenant's taxonomy of why breaks happen (e.g. "late booking", "FX rate", "bank fee")."""

    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "root-cause categories"
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_root_cause_code")]

    def __str__(self):
        return self.name


class CaseComment(TenantOwned):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    author_display = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["case", "created_at"], name="case_comment_case_idx")]
        constraints = [models.CheckConstraint(condition=~Q(body=""), name="case_comment_not_empty")]

    def __str__(self):
        return f"comment {self.pk} on case {self.case_id}"


class ApprovalThreshold(TenantOwned):
    """Write-offs and force-matches above ``amount`` (in ``currency``) need an approver (four-eyes).

    A currency without a threshold row needs approval for any amount: the safe default.
    """

    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=24, decimal_places=6)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "currency"], name="uniq_threshold_currency"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="threshold_not_negative"),
        ]

    def __str__(self):
        return f"{self.currency} {self.amount}"


class ApprovalKind(models.TextChoices):
    WRITE_OFF = "write_off"
    FORCE_MATCH = "force_match"
    # Undoing a final decision (write-off, force-match, not a break): always four-eyes, whatever
    # the amount, because it puts records back into the open items (workflow.RecordEffect).
    UNDO_DECISION = "undo_decision"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # the records matched (auto_matched) before anyone decided


class ApprovalRequest(TenantOwned):
    """A write-off, force-match or the undoing of a final decision waiting for (or decided by) a
    second person: maker and checker."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="approvals")
    kind = models.CharField(max_length=16, choices=ApprovalKind.choices)
    amount = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    threshold = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    note = models.TextField()
    status = models.CharField(max_length=12, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    from_status = models.CharField(max_length=20, choices=CaseStatus.choices)
    # Maker and checker as audit principals ("user:12", "api_key:3"): never the same.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_principal = models.CharField(max_length=80)
    requested_by_display = models.CharField(max_length=200)
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by_principal = models.CharField(max_length=80, blank=True)
    decided_by_display = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(status="pending"), name="uniq_pending_approval_per_case"
            ),
            models.CheckConstraint(
                condition=~Q(requested_by_principal=models.F("decided_by_principal")),
                name="approval_maker_is_not_checker",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="approval_decided_has_time",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="approval_tenant_status_idx")]

    def __str__(self):
        return f"{self.kind} of case {self.case_id} ({self.status})"


class SlaWebhook(TenantOwned):
    """Where a tenant wants SLA breaches POSTed, signed with HMAC-SHA256 of the body (its secret)."""

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=128, help_text="shared secret for X-JF-Signature")
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_sla_webhook_tenant")]

    def __str__(self):
        return self.url


class WebhookDelivery(TenantOwned):
    """Outbox row of one webhook POST: written with the breach, sent after commit, retried with backoff."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    event = models.CharField(max_length=64)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "created_at"], name="webhook_status_idx")]

    def __str__(self):
        return f"{self.event} → {self.url} ({self.status})"
