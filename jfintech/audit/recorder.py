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
    (event,) = record_many(
        tenant=tenant,
        actor=actor,
        events=[
            {
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "before": before,
                "after": after,
            }
        ],
    )
    return event


def record_many(*, tenant, actor: Actor, events: list[dict]) -> list[AuditEvent]:
    """Append many events of one tenant and actor in one INSERT (a run opening 10,000 cases).

    ``events``: dicts with ``action`` and optionally ``object_type``, ``object_id``, ``before``,
    ``after``. Same rules as ``record``: inside the caller's transaction, sealed before COMMIT.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record_many() must be called inside the service's transaction.atomic()")
    ctx = structlog.contextvars.get_contextvars()
    request_id, trace_id = str(ctx.get("request_id") or ""), current_trace_id()
    rows = [
        AuditEvent(
            tenant=tenant,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_display=actor.display,
            action=e["action"],
            object_type=e.get("object_type", ""),
            object_id=str(e.get("object_id") or ""),
            before=to_json(e.get("before")),
            after=to_json(e.get("after")),
            request_id=request_id,
            trace_id=trace_id,
        )
        for e in events
    ]
    created = AuditEvent.objects.bulk_create(rows, batch_size=2000)
    for event in created:
        schedule_seal(event)
    return created
