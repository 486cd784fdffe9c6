"""OpenTelemetry: instrument libraries early, install the tracer provider after any fork.

The exporter comes from ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP/HTTP to
``OTEL_EXPORTER_OTLP_ENDPOINT``), ``console``, ``file`` (one JSON line per span into
``OTEL_EXPORTER_FILE_DIR/spans-<pid>.jsonl``; the tests read spans from every process this way),
or ``none`` (the default). A provider created before a fork would hand its exporter thread to
a child that cannot use it, hence :func:`setup_after_fork` from gunicorn's ``post_fork`` and
Celery's ``worker_process_init``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

# Every statement sent while a span is recording ends with ``/*traceparent='00-<trace>-<span>-01'*/``
# (sqlcommenter), so a plan that auto_explain writes to the PostgreSQL server log names the trace
# of the request, task or run that issued it (docs/observability.md, "Slow queries"). Only the
# traceparent: the driver/libpq tags say nothing an operator needs. pg_stat_statements ignores
# comments when it identifies a statement (queryid), so it does not multiply its entries.
PSYCOPG_INSTRUMENT_OPTIONS = {
    "skip_dep_check": True,
    "enable_commenter": True,
    "commenter_options": {
        "db_driver": False,
        "dbapi_threadsafety": False,
        "dbapi_level": False,
        "driver_paramstyle": False,
        "libpq_version": False,
    },
}

_instrumented = False
_provider_pid: int | None = None
_lock = threading.Lock()


def instrument() -> None:
    """Patch Django, Celery, psycopg and redis (idempotent, safe before a fork)."""
    global _instrumented
    with _lock:
        if _instrumented:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        DjangoInstrumentor().instrument(excluded_urls="livez,readyz,metrics")
        CeleryInstrumentor().instrument()
        PsycopgInstrumentor().instrument(**PSYCOPG_INSTRUMENT_OPTIONS)
        RedisInstrumentor().instrument()
        _instrumented = True


class JsonLinesFileExporter(SpanExporter):
    """Appends each finished span as one JSON line to a per-process file."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"spans-{os.getpid()}.jsonl")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as fh:
            for span in spans:
                ctx = span.get_span_context()
                fh.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "kind": span.kind.name,
                            "trace_id": format(ctx.trace_id, "032x"),
                            "span_id": format(ctx.span_id, "016x"),
                            "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                            "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
                            "status": span.status.status_code.name,
                            "pid": os.getpid(),
                            "service.name": span.resource.attributes.get("service.name"),
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


def _processor(kind: str):
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter())
    if kind == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if kind == "file":
        directory = os.environ.get("OTEL_EXPORTER_FILE_DIR")
        if not directory:
            raise RuntimeError("OTEL_TRACES_EXPORTER=file needs OTEL_EXPORTER_FILE_DIR")
        return SimpleSpanProcessor(JsonLinesFileExporter(directory))
    return None


def setup_after_fork(role: str | None = None) -> None:
    """Install this process's tracer provider (once per process)."""
    global _provider_pid
    with _lock:
        if _provider_pid == os.getpid():
            return
        _provider_pid = os.getpid()
        kind = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
        attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME", "jfintech")}
        if role:
            attributes["jfintech.process.role"] = role
        provider = TracerProvider(resource=Resource.create(attributes))
        processor = _processor(kind)
        if processor is not None:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)


def get_tracer(name: str):
    return trace.get_tracer(name)


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" outside a trace (stored on runs, batches)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
