"""Thin tasks of the pipeline check: ids in, services do the work."""

from celery import chord, shared_task
from django.utils import timezone

from jfintech.health import services
from jfintech.health.models import PipelineCheck


@shared_task(name="health.pipeline_probe", acks_late=True)
def pipeline_probe(check_id: int, queue: str) -> None:
    services.pipeline_check_record_probe(check_id=check_id, queue=queue)


@shared_task(name="health.pipeline_complete", bind=True, acks_late=True, max_retries=None)
def pipeline_complete(self, check_id: int) -> str:
    missing = services.pipeline_check_missing_parts(check_id=check_id)
    if missing:
        deadline = PipelineCheck.objects.values_list("deadline", flat=True).get(pk=check_id)
        if timezone.now() < deadline:
            raise self.retry(countdown=1)
        services.pipeline_check_finish(check_id=check_id, error=f"probes missing: {', '.join(missing)}")
        return "failed"
    services.pipeline_check_finish(check_id=check_id)
    return "completed"


@shared_task(name="health.pipeline_failed", acks_late=True)
def pipeline_failed(check_id: int, *args) -> None:
    """link_error of the chord: a probe or the callback raised; fail the check loudly."""
    services.pipeline_check_finish(check_id=check_id, error="a task of the check raised")


def pipeline_check_chord(check_id: int):
    header = [pipeline_probe.si(check_id, q).set(queue=q) for q in services.PROBED_QUEUES]
    callback = pipeline_complete.si(check_id).set(queue="default")
    callback.link_error(pipeline_failed.si(check_id).set(queue="default"))
    return chord(header, callback)
