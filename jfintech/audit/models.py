from django.db import models
from django.db.models import Q

from jfintech.tenancy.models import Tenant


class AuditEvent(models.Model):
    """One change, append-only. Written only by jfintech.audit.record().

    Each tenant's events form a hash chain (platform events, without a tenant, form chain 0).
    ``seq``, ``prev_hash``, ``hash`` and ``signature`` are filled in right before COMMIT, under
    the chain's advisory lock (docs/audit.md); a trigger rejects every other UPDATE and every
    DELETE, and the runtime database role has no TRUNCATE.
    """

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField(auto_now_add=True)
    actor_kind = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64)
    actor_display = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    # The chain: position in the tenant's chain, the previous event's hash, SHA-256 of this
    # event's canonical JSON (which includes prev_hash), and an HMAC of it (settings.AUDIT_HMAC_KEY).
    seq = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, null=True, blank=True, editable=False)
    signature = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["tenant", "occurred_at"], name="audit_tenant_time_idx"),
            # Finds events committed without being chained (verification); empty in practice.
            models.Index(fields=["tenant"], condition=Q(hash__isnull=True), name="audit_unsealed_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(action=""), name="audit_action_not_empty"),
            models.UniqueConstraint(
                fields=["tenant", "seq"],
                condition=Q(seq__isnull=False),
                nulls_distinct=False,
                name="uniq_audit_chain_position",
            ),
            models.CheckConstraint(
                condition=Q(seq__isnull=True, hash__isnull=True) | Q(seq__isnull=False, hash__isnull=False),
                name="audit_sealed_together",
            ),
        ]

    def __str__(self):
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_display} {self.action}"


class AuditChainHead(models.Model):
    """The last link of one chain, signed with the HMAC key (which is never in the database).

    Rewriting events and recomputing their hashes cannot produce a valid signature, and because
    the head is overwritten on every append (a trigger only lets ``seq`` grow), an old head cannot
    be restored to hide removed events.
    """

    chain = models.PositiveBigIntegerField(
        primary_key=True, help_text="the tenant's id; 0 for platform events"
    )
    tenant = models.OneToOneField(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    signature = models.CharField(max_length=64)
    updated_at = models.DateTimeField()

    def __str__(self):
        return f"audit chain {self.chain} at {self.seq}"
