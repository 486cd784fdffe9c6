from django.db.models import QuerySet

from jfintech.audit.models import AuditEvent


def audit_event_list(*, tenant, filters: dict | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.filter(tenant=tenant)
    filters = filters or {}
    for field in ("action", "object_type", "object_id", "actor_kind", "actor_id"):
        if filters.get(field):
            qs = qs.filter(**{field: filters[field]})
    return qs.order_by("-id")
