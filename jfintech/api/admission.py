"""Admission control on queue depth: an endpoint that enqueues work on a Celery queue answers 503
``queue_full`` with ``Retry-After`` while that queue holds ``API_QUEUE_DEPTH_LIMIT`` messages or
more (``API_QUEUE_DEPTH_LIMITS`` overrides it per queue; 0 turns it off), before it creates anything.

Beyond that depth the workers are not keeping up: accepting more only makes every run later and
the backlog deeper. Refusing at the door keeps the rate of accepted work at what the workers
drain, and tells the client when to come back. ``api_queue_full_refusals_total{queue}`` counts the
refusals (alert JfintechApiQueueFull).

The depth is the broker's (every priority list of the queue, with the broker's key prefix: the
same reading as the ``celery_queue_length`` metric), read at most once per
``API_QUEUE_DEPTH_CACHE_SECONDS`` in each process so a busy endpoint does not LLEN per request.
With Redis unreachable the check admits with an error log, as the rate limit does: a run's row is
its own outbox (the reaper sends its chord once Redis is back), and the outage is loud elsewhere.

Only API endpoints are gated: the admin's people and beat's scheduled runs are not where a flood
comes from, and a scheduled slot refused would be a slot lost.
"""

from __future__ import annotations

import functools
import time

import redis
from django.conf import settings

from jfintech.api.metrics import QUEUE_FULL_REFUSALS
from jfintech.common.errors import ApplicationError
from jfintech.common.redis_client import shared_client
from jfintech.observability.logging import get_logger
from jfintech.observability.platform import broker_queue_keys

log = get_logger(__name__)
_depths: dict[str, tuple[float, int | None]] = {}  # queue -> (monotonic time read, depth or None)


def _broker():
    return shared_client(settings.CELERY_BROKER_URL, timeout_s=1)


def queue_of(task_name: str) -> str:
    """The queue a task is routed to (settings.CELERY_TASK_ROUTES, else the default queue)."""
    route = settings.CELERY_TASK_ROUTES.get(task_name) or {}
    return route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE)


def depth_limit(queue: str) -> int:
    return settings.API_QUEUE_DEPTH_LIMITS.get(queue, settings.API_QUEUE_DEPTH_LIMIT)


def queue_depth(queue: str) -> int | None:
    """Messages waiting in ``queue`` (all priorities), at most API_QUEUE_DEPTH_CACHE_SECONDS old;
    None when the broker cannot be read (remembered as long, so an outage costs one timeout)."""
    now = time.monotonic()
    cached = _depths.get(queue)
    if cached is not None and now - cached[0] < settings.API_QUEUE_DEPTH_CACHE_SECONDS:
        return cached[1]
    try:
        with _broker().pipeline(transaction=False) as pipe:
            for key in broker_queue_keys(queue, settings.CELERY_BROKER_TRANSPORT_OPTIONS):
                pipe.llen(key)
            depth = sum(int(n or 0) for n in pipe.execute())
    except redis.RedisError as exc:
        log.error("queue_depth_unavailable", queue=queue, error=str(exc)[:300])
        depth = None
    _depths[queue] = (now, depth)
    return depth


def admit(*queues: str) -> None:
    """Raise 503 ``queue_full`` if any of ``queues`` is at its depth limit."""
    for queue in queues:
        limit = depth_limit(queue)
        depth = queue_depth(queue) if limit else None
        if depth is None or depth < limit:
            continue
        QUEUE_FULL_REFUSALS.labels(queue=queue).inc()
        log.warning("queue_full", queue=queue, depth=depth, limit=limit)
        retry_after = settings.API_QUEUE_FULL_RETRY_AFTER
        raise ApplicationError(
            f"The {queue} queue is full ({depth} messages waiting, limit {limit}); nothing was "
            f"created: retry after {retry_after} seconds.",
            code="queue_full",
            status=503,
            extra={"queue": queue, "depth": depth, "limit": limit},
            headers={"Retry-After": str(retry_after)},
        )


def admits(*queues: str):
    """Decorate a DRF handler that enqueues on ``queues``: admission first, then the handler.
    Put it under ``@idempotent``, so a retry of an accepted request still gets its stored answer
    and a refused one leaves no key behind (the refusal rolls the claim back)."""

    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(view, request, *args, **kwargs):
            admit(*queues)
            return handler(view, request, *args, **kwargs)

        return wrapper

    return decorate
