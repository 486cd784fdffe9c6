"""Prometheus metrics, multiprocess-safe under gunicorn and prefork Celery workers.

Rules (docs/observability.md): never label by run id, pod or pid; every Gauge declares its
``multiprocess_mode``. Metric objects are defined once, here or in the app that owns them, and
imported where they are observed.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Histogram, multiprocess, start_http_server

TASK_DURATION = Histogram(
    "recon_task_duration_seconds",
    "Celery task duration, by task name and outcome (success, failure, retry).",
    ["task", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)


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
