"""Platform metrics: global state computed at scrape time, by ONE process (Celery beat).

Queue depth, the age of the oldest message, runs per state, open cases per age bucket are
facts about the shared Redis and PostgreSQL, not about a process. Served by every web pod they
would be counted once per pod by any ``sum()``; so beat, which the chart runs as exactly one
replica, serves them on ``BEAT_METRICS_PORT`` (docs/observability.md, "Who serves what").

The collectors are listed in ``settings.PLATFORM_METRICS_COLLECTORS`` as dotted paths, so the
core never imports a domain app (reporting contributes the runs/cases collector). Each collector
runs isolated: one that fails (a missing table, a slow query) reports
``platform_collector_up{collector} 0`` and is logged, the others still answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jfintech.observability.logging import get_logger

log = get_logger(__name__)

# Set by the publisher (before_task_publish) on every task message: time.time() at publish.
PUBLISHED_AT_HEADER = "jf_published_at"
# Queries of a scrape must not hang it: Prometheus times out at 10s by default.
SCRAPE_STATEMENT_TIMEOUT_MS = 5000


def broker_queue_keys(queue: str, transport_options: dict) -> list[str]:
    """The Redis lists that hold ``queue``'s messages, one per priority step, prefix included.

    Mirrors kombu's redis Channel._q_for_pri (checked against real publishes in the tests):
    priority 0 is the bare name, others are ``<queue>\\x06\\x16<step>``.
    """
    from kombu.transport.redis import Channel

    prefix = transport_options.get("global_keyprefix", "")
    sep = transport_options.get("sep", Channel.sep)
    steps = transport_options.get("priority_steps", Channel.priority_steps)
    return [f"{prefix}{queue}{sep}{step}" if step else f"{prefix}{queue}" for step in steps]


def _published_at(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        value = json.loads(raw).get("headers", {}).get(PUBLISHED_AT_HEADER)
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


class QueueCollector(Collector):
    """``celery_queue_length{queue}`` and ``celery_queue_oldest_message_age_seconds{queue}``.

    Length sums every priority list of the queue (a plain LLEN of the queue's name misses
    prioritised messages). Age comes from the oldest message's publish-time header: messages
    are LPUSHed and consumed from the right, so each list's oldest is at index -1.
    """

    def __init__(self, queues: Iterable[str] | None = None, broker_url: str | None = None,
                 transport_options: dict | None = None):  # fmt: skip
        self._queues = list(queues) if queues is not None else None
        self._broker_url = broker_url
        self._transport_options = transport_options

    def _config(self):
        from celery import current_app

        queues = self._queues
        if queues is None:
            queues = [q.name for q in (current_app.conf.task_queues or [])] or [
                current_app.conf.task_default_queue
            ]
        options = self._transport_options
        if options is None:
            options = current_app.conf.broker_transport_options or {}
        return queues, self._broker_url or current_app.conf.broker_url, options

    def collect(self) -> Iterable[Metric]:
        import redis

        queues, url, options = self._config()
        length = GaugeMetricFamily(
            "celery_queue_length",
            "Messages waiting in the broker, per queue, all priorities.",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "celery_queue_oldest_message_age_seconds",
            "Age of the oldest message waiting in the queue (0 when empty).",
            labels=["queue"],
        )
        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    for key in broker_queue_keys(queue, options):
                        pipe.llen(key)
                        pipe.lindex(key, -1)
                replies = iter(pipe.execute())
            now = time.time()
            for queue in queues:
                total, oldest = 0, None
                for _ in broker_queue_keys(queue, options):
                    total += int(next(replies) or 0)
                    published = _published_at(next(replies))
                    if published is not None:
                        oldest = published if oldest is None else min(oldest, published)
                length.add_metric([queue], total)
                age.add_metric([queue], max(0.0, now - oldest) if oldest is not None else 0.0)
        finally:
            client.close()
        yield length
        yield age


class SafeCollector(Collector):
    """Runs one collector; never lets its failure break the scrape of the others."""

    def __init__(self, name: str, collector: Collector):
        self.name = name
        self.collector = collector
        self.last_ok = True
        self.last_duration = 0.0

    def collect(self) -> Iterable[Metric]:
        started = time.monotonic()
        already_open = _open_db_connections()
        try:
            metrics = list(self.collector.collect())
            self.last_ok = True
        except Exception as exc:
            metrics = []
            self.last_ok = False
            log.error("platform_collector_failed", collector=self.name, error=str(exc)[:300],
                      **{"error.type": type(exc).__name__})  # fmt: skip
        finally:
            self.last_duration = time.monotonic() - started
            _close_db_connections_opened_since(already_open)
        return metrics


class _CollectorHealth(Collector):
    def __init__(self, collectors: list[SafeCollector]):
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "platform_collector_up",
            "1 if the platform collector answered at this scrape.",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "platform_collector_duration_seconds",
            "How long the platform collector took at this scrape.",
            labels=["collector"],
        )
        for c in self.collectors:
            up.add_metric([c.name], 1.0 if c.last_ok else 0.0)
            duration.add_metric([c.name], c.last_duration)
        yield up
        yield duration


@contextmanager
def scrape_cursor(using: str = "default") -> Iterator:
    """A cursor for a collector's queries: read-only transaction with a statement timeout."""
    from django.db import connections, transaction

    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(SCRAPE_STATEMENT_TIMEOUT_MS)])
        yield cursor


def _open_db_connections() -> set[str]:
    from django.db import connections

    return {c.alias for c in connections.all(initialized_only=True) if c.connection is not None}


def _close_db_connections_opened_since(already_open: set[str]) -> None:
    # The HTTP server answers each scrape on a new thread: a connection it opened would leak.
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.alias not in already_open and not conn.in_atomic_block:
            conn.close()


def _import(path: str):
    from django.utils.module_loading import import_string

    return import_string(path)


def platform_registry(paths: Iterable[str] | None = None) -> CollectorRegistry:
    """A registry with every platform collector (settings.PLATFORM_METRICS_COLLECTORS)."""
    from django.conf import settings

    if paths is None:
        paths = getattr(
            settings, "PLATFORM_METRICS_COLLECTORS", ["jfintech.observability.platform.QueueCollector"]
        )
    registry = CollectorRegistry(auto_describe=False)
    safe = [SafeCollector(path.rsplit(".", 1)[-1], _import(path)()) for path in paths]
    for collector in safe:
        registry.register(collector)
    # Registered last: a scrape collects in order, so it reports this scrape's outcomes.
    registry.register(_CollectorHealth(safe))
    return registry


def start_platform_metrics_server(port: int) -> None:
    """Serve the platform metrics (beat calls this once at start, BEAT_METRICS_PORT)."""
    start_http_server(port, addr=os.environ.get("BEAT_METRICS_ADDR", "0.0.0.0"), registry=platform_registry())
    log.info("platform_metrics_serving", port=port)
