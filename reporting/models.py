"""Generated artifacts: immutable once written (a trigger rejects UPDATE and DELETE).

Each carries its bytes, their SHA-256 and size, the generator's version, the filters it was made
with and the inputs' as-of time; regenerating from the same inputs and clock gives the same bytes
(and so the same row: one per tenant, kind and digest).
"""

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
    content = models.BinaryField(editable=False)
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
