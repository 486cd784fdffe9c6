from django.db import models

from jfintech.tenancy.models import Tenant


class IdempotencyKey(models.Model):
    """The stored outcome of a POST made with an ``Idempotency-Key`` (see jfintech.api.idempotency).

    Written in the same transaction as the request's effect, so a stored response exists exactly
    when the effect was committed. Never holds secrets: endpoints that return one (API key
    creation) are not idempotent-decorated.
    """

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    principal = models.CharField(max_length=64, help_text='"user:<id>" or "api_key:<id>"')
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body")
    response_status = models.PositiveSmallIntegerField(default=0, help_text="0 while the first request runs")
    response_body = models.TextField(blank=True, help_text="rendered JSON, replayed byte for byte")
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # NULLS NOT DISTINCT: platform-level endpoints have no tenant but still one key per scope.
            models.UniqueConstraint(
                fields=["tenant", "principal", "method", "path", "key"],
                name="uniq_idempotency_scope",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self):
        return f"{self.method} {self.path} [{self.key}] by {self.principal}"
