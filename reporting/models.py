"""Generated artifacts: immutable once written (a trigger rejects UPDATE and DELETE).

Each carries its bytes, their SHA-256 and size, the generator's version, the filters it was made
with and the inputs' as-of time; regenerating from the same inputs and clock gives the same bytes
(and so the same row: one per tenant, kind and digest).
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from jfintech.tenancy.models import TenantOwned


class ArtifactFormat(models.TextChoices):
    CSV = "csv"
    XLSX = "xlsx"
    PDF = "pdf"
    HTML = "html"
    ZIP = "zip"


class ReportArtifact(TenantOwned):
    kind = models.CharField(max_length=32, help_text="run, aging, trends, inventory, cases, auditor_pack")
    format = models.CharField(max_length=8, choices=ArtifactFormat.choices)
    filename = models.CharField(max_length=200)
    # Small artifacts keep their bytes in the row; a large export is a PostgreSQL large object
    # (written and read in chunks: never whole in memory, and readable from every pod).
    content = models.BinaryField(editable=False, blank=True, default=b"")
    large_object = models.BigIntegerField(
        null=True, blank=True, editable=False, help_text="pg large object oid"
    )
    sha256 = models.CharField(max_length=64, editable=False)
    size = models.BigIntegerField(editable=False)
    generator_version = models.CharField(max_length=64)
    filters = models.JSONField(default=dict, blank=True)
    inputs_as_of = models.DateTimeField()
    generated_at = models.DateTimeField()
    generated_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "sha256"], name="uniq_artifact_digest"),
            models.CheckConstraint(condition=Q(size__gte=0), name="artifact_size_not_negative"),
        ]
        indexes = [models.Index(fields=["tenant", "kind", "-generated_at"], name="artifact_tenant_kind_idx")]

    def __str__(self):
        return f"{self.filename} ({self.sha256[:12]})"


class ReportSubscription(TenantOwned):
    """A report delivered on a schedule: which report, its filters, the format, to whom.

    The schedule is a django-celery-beat crontab entry (in the tenant's time zone) with an
    ``expire_seconds``: a tick not picked up in time is dropped, not run late (docs/reporting.md).
    """

    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=16, help_text="aging, trends or inventory")
    filters = models.JSONField(default=dict, blank=True)
    format = models.CharField(max_length=8, choices=ArtifactFormat.choices, default=ArtifactFormat.PDF)
    recipients = ArrayField(models.EmailField(), default=list, blank=True)
    webhook = models.BooleanField(default=False, help_text="also POST to the tenant's signed webhook")
    schedule = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_subscription_name")]

    def __str__(self):
        return f"{self.name} ({self.kind}, {self.format})"


class ReportDelivery(TenantOwned):
    """One delivery of one generation over one channel: the delivery log (retried with backoff)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        HANDED_OFF = "handed_off"  # given to the desk's webhook outbox (exceptions.WebhookDelivery)
        FAILED = "failed"

    subscription = models.ForeignKey(ReportSubscription, on_delete=models.PROTECT, related_name="deliveries")
    artifact = models.ForeignKey(ReportArtifact, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=[("email", "email"), ("webhook", "webhook")])
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    webhook_delivery_id = models.BigIntegerField(null=True, blank=True)
    case_id = models.BigIntegerField(null=True, blank=True, help_text="the desk case opened when it failed")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "report deliveries"
        ordering = ["-id"]
        constraints = [
            # Idempotent generation: one delivery per subscription, tick and channel.
            models.UniqueConstraint(
                fields=["subscription", "scheduled_for", "channel"], name="uniq_delivery_per_tick"
            )
        ]

    def __str__(self):
        return f"{self.subscription_id} {self.channel} {self.scheduled_for:%Y-%m-%d %H:%M} ({self.status})"


class ExportJob(TenantOwned):
    """A large export run as a task: its progress, and the artifact it produced (or its error)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=16, default="breaks")
    format = models.CharField(max_length=8, choices=ArtifactFormat.choices)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    artifact = models.ForeignKey(
        ReportArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="done") | Q(artifact__isnull=False), name="export_done_has_artifact"
            )
        ]

    def __str__(self):
        return (
            f"export {self.pk} {self.kind}.{self.format} ({self.status} {self.rows_done}/{self.rows_total})"
        )
