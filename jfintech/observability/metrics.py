"""Prometheus metrics, multiprocess-safe under gunicorn and prefork Celery workers.

Rules (docs/observability.md): never label by run id, pod or pid; every Gauge declares its
``multiprocess_mode``. Metric objects are defined once, here or in the app that owns them, and
imported where they are observed; every name is listed in ``jfintech.observability.catalog``.

Two kinds of metrics, served by different processes:

- *Per process* (this module): task and query durations, the connection pool of each process.
  Written to ``PROMETHEUS_MULTIPROC_DIR``; web serves them on ``/metrics`` (django-prometheus),
  a worker on ``WORKER_METRICS_PORT``.
- *Platform* (``jfintech.observability.platform``): global state computed at scrape time (queue
  depth, runs per state, open cases), served by beat only, so no sum over pods counts it twice.
"""

from __future__ import annotations

import os
import re
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

TASK_DURATION = Histogram(
    "recon_task_duration_seconds",
    "Celery task duration, by task name and outcome (success, failure, retry).",
    ["task", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)

DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds",
    "Duration of SQL statements run through Django, by connection alias and statement kind "
    "(select, insert, update, delete, other).",
    ["alias", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Pool gauges are per process; livesum adds up the live processes of a pod (dead ones drop out).
DB_POOL_MAX = Gauge(
    "db_pool_max_connections",
    "Configured maximum size of the psycopg connection pools (summed over the live processes).",
    ["alias"],
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "db_pool_connections",
    "Connections open in the psycopg pools, in use or idle (summed over the live processes).",
    ["alias"],
    multiprocess_mode="livesum",
)
DB_POOL_AVAILABLE = Gauge(
    "db_pool_available_connections",
    "Idle connections ready in the psycopg pools (summed over the live processes).",
    ["alias"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "db_pool_waiting_requests",
    "Requests waiting for a connection from the psycopg pools (summed over the live processes).",
    ["alias"],
    multiprocess_mode="livesum",
)
DB_POOL_REQUESTS = Counter(
    "db_pool_requests",
    "Connections requested from the psycopg pools.",
    ["alias"],
)
DB_POOL_WAIT = Counter(
    "db_pool_wait_seconds",
    "Time requests spent waiting for a pooled connection (divide by db_pool_requests_total).",
    ["alias"],
)
DB_POOL_ERRORS = Counter(
    "db_pool_errors",
    "psycopg pool errors by kind: request (timed out or refused), connection (could not "
    "connect), lost (found broken), bad_return (returned in a bad state).",
    ["alias", "kind"],
)

_POOL_COUNTERS = {
    "requests_num": (DB_POOL_REQUESTS, None, 1),
    "requests_wait_ms": (DB_POOL_WAIT, None, 0.001),
    "requests_errors": (DB_POOL_ERRORS, "request", 1),
    "connections_errors": (DB_POOL_ERRORS, "connection", 1),
    "connections_lost": (DB_POOL_ERRORS, "lost", 1),
    "returns_bad": (DB_POOL_ERRORS, "bad_return", 1),
}
POOL_ERROR_KINDS = ("request", "connection", "lost", "bad_return")


def initialise_db_pool_errors(aliases) -> None:
    """Every alias's error series at 0 from the start, so JfintechDbPoolRequestErrors sees the
    first error (increase() needs a sample before it). Called from JfintechConfig.ready()."""
    for alias in aliases:
        for kind in POOL_ERROR_KINDS:
            DB_POOL_ERRORS.labels(alias, kind)


_pool_seen: dict[tuple[str, str], float] = {}
_pool_lock = threading.Lock()


def sample_db_pools() -> None:
    """Copy every open psycopg pool's stats of this process into the metrics above.

    Counters advance by the growth of the pool's cumulative stats since the last sample, so
    sampling often or seldom gives the same totals.
    """
    from django.db import connections

    with _pool_lock:
        for alias in connections:
            pools = getattr(type(connections[alias]), "_connection_pools", None) or {}
            pool = pools.get(alias)
            if pool is None:
                continue
            stats = pool.get_stats()
            DB_POOL_MAX.labels(alias).set(stats.get("pool_max", 0))
            DB_POOL_SIZE.labels(alias).set(stats.get("pool_size", 0))
            DB_POOL_AVAILABLE.labels(alias).set(stats.get("pool_available", 0))
            DB_POOL_WAITING.labels(alias).set(stats.get("requests_waiting", 0))
            for key, (metric, kind, scale) in _POOL_COUNTERS.items():
                value = stats.get(key, 0)
                growth = value - _pool_seen.get((alias, key), 0)
                _pool_seen[(alias, key)] = value
                if growth > 0:
                    child = metric.labels(alias, kind) if kind else metric.labels(alias)
                    child.inc(growth * scale)


_sampler_started = False


def start_db_pool_sampler(interval_s: float | None = None) -> None:
    """Sample the pools every few seconds from a daemon thread (once per process, after fork).

    A thread rather than a request hook: a saturated pool is exactly when requests stop
    finishing, and that must still show.
    """
    global _sampler_started
    if _sampler_started:
        return
    _sampler_started = True
    interval = interval_s or float(os.environ.get("DB_POOL_METRICS_INTERVAL_S") or 5)

    def loop():
        from jfintech.observability.logging import get_logger

        while True:
            time.sleep(interval)  # first: gunicorn loads the Django app after post_fork
            try:
                sample_db_pools()
            except Exception as exc:  # a metrics bug must never take the process down
                get_logger(__name__).warning("db_pool_sample_failed", **{"error.type": type(exc).__name__})

    threading.Thread(target=loop, name="db-pool-metrics", daemon=True).start()


_OPERATION_RE = re.compile(r"\s*(\w+)")
_OPERATIONS = {"SELECT": "select", "INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}


def _operation(sql) -> str:
    match = _OPERATION_RE.match(sql if isinstance(sql, str) else str(sql))
    return _OPERATIONS.get(match.group(1).upper(), "other") if match else "other"


def _observe_query(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        DB_QUERY_DURATION.labels(context["connection"].alias, _operation(sql)).observe(
            time.perf_counter() - started
        )


def _install_query_timer(sender, connection, **_):
    if _observe_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_observe_query)


def install_db_instrumentation() -> None:
    """Time every statement of every connection, in every process (called from AppConfig.ready)."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_install_query_timer, dispatch_uid="jfintech_query_timer")


def scrape_registry() -> CollectorRegistry:
    """The registry to serve: every process's samples in multiprocess mode, else the default."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def start_worker_metrics_server(port: int) -> None:
    """Serve a Celery worker's metrics (all its pool children's, via the multiprocess dir)."""
    start_http_server(port, addr=os.environ.get("WORKER_METRICS_ADDR", "0.0.0.0"),
                      registry=scrape_registry())  # fmt: skip
