"""Worker and beat wiring: JSON logging, tracing after fork, the worker and platform metrics
endpoints, the publish-time header the queue-age metric reads, and a span per beat tick."""

import functools
import os
import time

import structlog
from celery import platforms, signals
from celery.apps.beat import Beat as BeatCommand
from django_structlog.celery.signals import bind_extra_task_metadata
from django_structlog.celery.steps import DjangoStructLogInitStep

from config.celery import app
from jfintech.observability import tracing

# Instrument Celery before django-structlog connects its task_prerun receiver (the step below):
# receivers run in connection order, so the task span exists when "task_started" is logged and
# that line carries the task's trace_id.
tracing.instrument()
app.steps["worker"].add(DjangoStructLogInitStep)


def _bind_task_name(sender=None, task=None, **_):
    # Every line a task logs carries the task's name, not only "task_started".
    if task is not None:
        structlog.contextvars.bind_contextvars(task=task.name)


bind_extra_task_metadata.connect(_bind_task_name, weak=False)


@signals.setup_logging.connect(weak=False)
def _setup_logging(**_):
    # Connecting here stops Celery from installing its own plain-text handlers.
    from jfintech.observability.logging import reset_stdlib_logging_from_settings

    reset_stdlib_logging_from_settings()


@signals.worker_process_init.connect(weak=False)
def _tracing_in_pool_child(**_):
    tracing.setup_after_fork(role="worker")


@signals.worker_init.connect(weak=False)
def _worker_init(sender=None, **_):
    pool = getattr(sender, "pool_cls", None)
    pool_name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    if "prefork" not in str(pool_name):
        # threads/solo pools run tasks in this very process: no fork is coming.
        tracing.setup_after_fork(role="worker")


@signals.worker_ready.connect(weak=False)
def _worker_ready(**_):
    # Sent once the consumer has connected to the broker: the metrics port answering is the
    # worker's readiness signal (the chart's startup/readiness probes), so it opens only now.
    port = int(os.environ.get("WORKER_METRICS_PORT") or 0)
    if port:
        from jfintech.observability.metrics import start_worker_metrics_server

        start_worker_metrics_server(port)


@signals.worker_process_shutdown.connect(weak=False)
def _metrics_process_dead(**_):
    # A pool child that exits must drop out of the livesum gauges (gunicorn: child_exit).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


@signals.before_task_publish.connect(weak=False)
def _stamp_published_at(headers=None, **_):
    # kombu's Redis messages carry no timestamp; the oldest-message-age metric reads this one.
    if headers is not None:
        from jfintech.observability.platform import PUBLISHED_AT_HEADER

        headers.setdefault(PUBLISHED_AT_HEADER, time.time())


def _traced_apply_entry(apply_entry):
    """A root span around each beat tick, so a scheduled run's trace starts at beat."""

    @functools.wraps(apply_entry)
    def traced(self, entry, producer=None):
        with (
            tracing.get_tracer("jfintech.beat").start_as_current_span(
                f"beat/{entry.task}",
                attributes={"celery.beat.entry": entry.name, "celery.task_name": entry.task},
            ),
            structlog.contextvars.bound_contextvars(task=entry.task),
        ):
            return apply_entry(self, entry, producer=producer)

    traced._jf_traced = True
    return traced


def _heartbeat_after_tick(tick, path):
    """Touch ``path`` after every scheduler tick: beat's liveness signal (observability.heartbeat)."""
    from jfintech.observability.heartbeat import touch

    @functools.wraps(tick)
    def ticked(self, *args, **kwargs):
        interval = tick(self, *args, **kwargs)
        touch(path)
        return interval

    ticked._jf_heartbeat = True
    return ticked


def _exit_on_signal(signum, frame):
    raise SystemExit()


def _install_exit_handler(self, service) -> None:
    """Celery's own handler saves the schedule from inside the signal handler. A SIGTERM landing
    while the DatabaseScheduler is in a query (its setup right after "beat: Starting", a tick)
    re-enters the scheduler and the psycopg connection that query holds: the handler waits for a
    lock its own interrupted frame holds, and beat never exits (caught in the fault suite with
    gdb: _sync -> Service.sync -> Service.scheduler -> a query, under setup_schedule's query).
    Raising SystemExit is enough: Service.start saves the schedule in its `finally`, outside the
    handler; before the scheduler exists there is nothing to save."""
    platforms.signals.update(SIGTERM=_exit_on_signal, SIGINT=_exit_on_signal)


BeatCommand.install_sync_handler = _install_exit_handler


@signals.beat_init.connect(weak=False)
def _beat_init(**_):
    from celery.beat import Scheduler

    tracing.setup_after_fork(role="beat")
    if not getattr(Scheduler.apply_entry, "_jf_traced", False):
        Scheduler.apply_entry = _traced_apply_entry(Scheduler.apply_entry)
    heartbeat_file = os.environ.get("BEAT_HEARTBEAT_FILE")
    if heartbeat_file and not getattr(Scheduler.tick, "_jf_heartbeat", False):
        Scheduler.tick = _heartbeat_after_tick(Scheduler.tick, heartbeat_file)
    port = int(os.environ.get("BEAT_METRICS_PORT") or 0)
    if port:
        # Beat is the one process that serves the platform (global) metrics: docs/observability.md.
        from jfintech.observability.platform import start_platform_metrics_server

        start_platform_metrics_server(port)


@signals.task_prerun.connect(weak=False)
def _task_clock_start(task=None, **_):
    if task is not None:
        task.request._jf_started = time.monotonic()


@signals.task_postrun.connect(weak=False)
def _task_clock_stop(task=None, state=None, **_):
    from jfintech.observability.metrics import TASK_DURATION

    started = getattr(getattr(task, "request", None), "_jf_started", None)
    if started is not None:
        outcome = {"SUCCESS": "success", "RETRY": "retry"}.get(state or "", "failure")
        TASK_DURATION.labels(task=task.name, outcome=outcome).observe(time.monotonic() - started)
