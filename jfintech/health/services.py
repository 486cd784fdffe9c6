"""Writes for pipeline checks. State changes are compare-and-set on the row."""

import os
import socket
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jfintech.health.models import PipelineCheck, PipelineCheckPart
from jfintech.observability.logging import get_logger
from jfintech.observability.tracing import current_trace_id

log = get_logger(__name__)

PROBED_QUEUES = ("default", "ingest", "reconciliation", "fetch")


def pipeline_check_start(*, user=None, timeout_s: int = 60) -> PipelineCheck:
    from jfintech.health import tasks  # tasks import services; keep the arrow one way at import

    with transaction.atomic():
        check = PipelineCheck.objects.create(
            requested_by=user if getattr(user, "is_authenticated", False) else None,
            deadline=timezone.now() + timedelta(seconds=timeout_s),
            trace_id=current_trace_id(),
        )
        transaction.on_commit(lambda: tasks.pipeline_check_chord(check.pk).apply_async())
    log.info("pipeline_check_started", pipeline_check_id=check.pk)
    return check


def pipeline_check_record_probe(*, check_id: int, queue: str) -> bool:
    """Idempotent: a second delivery of the same probe finds the row and changes nothing."""
    _, created = PipelineCheckPart.objects.get_or_create(
        check_run_id=check_id,
        queue=queue,
        defaults={"hostname": socket.gethostname(), "pid": os.getpid()},
    )
    return created


def pipeline_check_missing_parts(*, check_id: int) -> list[str]:
    present = set(PipelineCheckPart.objects.filter(check_run_id=check_id).values_list("queue", flat=True))
    return [q for q in PROBED_QUEUES if q not in present]


def pipeline_check_finish(*, check_id: int, error: str = "") -> bool:
    """Move pending → completed/failed exactly once; False if another delivery got there first."""
    status = PipelineCheck.Status.FAILED if error else PipelineCheck.Status.COMPLETED
    moved = PipelineCheck.objects.filter(pk=check_id, status=PipelineCheck.Status.PENDING).update(
        status=status, completed_at=timezone.now(), error=error
    )
    event = "pipeline_check_failed" if error else "pipeline_check_completed"
    (log.error if error else log.info)(event, pipeline_check_id=check_id, moved=bool(moved), error=error)
    return bool(moved)
