from django.db.models import QuerySet

from jfintech.audit.models import AuditEvent


def audit_event_list(*, tenant, filters: dict | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.filter(tenant=tenant)
    filters = filters or {}
    for field in ("action", "object_type", "object_id", "actor_kind", "actor_id"):
        if filters.get(field):
            qs = qs.filter(**{field: filters[field]})
    return qs.order_by("-id")


def chain_position_at(*, tenant, at) -> tuple[int, str]:
    """(seq, hash) of the last sealed event of the tenant's chain that occurred at or before ``at``:
    the chain head as it stood then ((0, GENESIS) before the first event). What a generated artifact
    is signed with, so regenerating it for the same moment signs the same position."""
    from jfintech.audit.chain import GENESIS

    row = (
        AuditEvent.objects.filter(tenant=tenant, occurred_at__lte=at, seq__isnull=False)
        .order_by("-seq")
        .values_list("seq", "hash")
        .first()
    )
    return row or (0, GENESIS)


def chain_hash_at(*, tenant, seq: int) -> str | None:
    """The stored hash of the tenant's event at ``seq`` (None: no such event)."""
    if seq == 0:
        from jfintech.audit.chain import GENESIS

        return GENESIS
    return AuditEvent.objects.filter(tenant=tenant, seq=seq).values_list("hash", flat=True).first()
