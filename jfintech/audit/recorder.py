import json
from decimal import Decimal

import structlog
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from jfintech.audit.actors import Actor
from jfintech.audit.chain import schedule_seal
from jfintech.audit.models import AuditEvent
from jfintech.observability.tracing import current_trace_id


class _AuditEncoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, Decimal):
            return str(o)  # never a float: 0.1 + 0.2 is not money
        return super().default(o)


def to_json(value):
    """Plain JSON (Decimals as strings, dates ISO) for before/after snapshots."""
    return None if value is None else json.loads(json.dumps(value, cls=_AuditEncoder))


def record(
    *,
    tenant,
    actor: Actor,
    action: str,
    obj=None,
    object_type: str = "",
    object_id="",
    before=None,
    after=None,
) -> AuditEvent:
    """Append an audit event; must run inside the caller's transaction (the service's).

    The event is inserted now (visible to the rest of the transaction) and linked into its
    tenant's hash chain right before COMMIT, so the chain's lock is held only for that moment.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record() must be called inside the service's transaction.atomic()")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    ctx = structlog.contextvars.get_contextvars()
    event = AuditEvent.objects.create(
        tenant=tenant,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_display=actor.display,
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        before=to_json(before),
        after=to_json(after),
        request_id=str(ctx.get("request_id") or ""),
        trace_id=current_trace_id(),
    )
    schedule_seal(event)
    return event
