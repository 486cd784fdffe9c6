"""Business context for logs and traces: one call binds both.

Domain code says *what* it is working on once, and every log line and the current span carry it::

    from jfintech.observability import bind_run_context, business_span

    bind_run_context(run_id=run.pk, definition=run.definition.name, txn_type="trade", tenant=run.tenant)
    with business_span("recon.match", run_id=run.pk, txn_type="trade", **{"recon.pass": "exact_ref"}):
        ...

Log field names and span attribute names are the same (docs/observability.md): ``recon.run_id``,
``recon.definition``, ``txn.type``, ``tenant``. Inside a Celery task the log context is cleared at
the next task's start (django-structlog's ``task_prerun``), and it travels to tasks published
from here (django-structlog copies the bound context into the task headers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

_tracer = trace.get_tracer("jfintech.business")

# keyword -> the one name used in log lines and as span attribute
_FIELDS = {
    "run_id": "recon.run_id",
    "definition": "recon.definition",
    "txn_type": "txn.type",
    "tenant": "tenant",
}


def _attribute_value(value):
    """Span attributes take str/bool/int/float only; a model instance becomes its natural name."""
    if isinstance(value, str | bool | int | float):
        return value
    for attr in ("slug", "name"):
        if isinstance(getattr(value, attr, None), str):
            return getattr(value, attr)
    return str(value)


def _fields(kwargs: dict) -> dict:
    return {_FIELDS.get(k, k): _attribute_value(v) for k, v in kwargs.items() if v is not None}


def _set_span_attributes(span: Span, fields: dict) -> None:
    if span.is_recording():
        span.set_attributes(fields)


def bind_run_context(*, run_id=None, definition=None, txn_type=None, tenant=None, **extra) -> dict:
    """Bind the run's identity to every following log line of this context and to the current span.

    ``run_id`` -> ``recon.run_id``, ``definition`` -> ``recon.definition`` (name or id),
    ``txn_type`` -> ``txn.type`` (the record kind), ``tenant`` -> ``tenant`` (a Tenant or its slug).
    Extra keywords are bound under their own name (use dotted names: ``**{"recon.pass": "x"}``).
    None values are skipped. Returns the fields bound.
    """
    fields = _fields({"run_id": run_id, "definition": definition, "txn_type": txn_type,
                      "tenant": tenant, **extra})  # fmt: skip
    structlog.contextvars.bind_contextvars(**fields)
    _set_span_attributes(trace.get_current_span(), fields)
    return fields


def bind_tenant(tenant) -> None:
    """The request's or task's tenant on every log line and the current span (field ``tenant``)."""
    bind_run_context(tenant=tenant)


@contextmanager
def business_span(name: str, **attrs) -> Iterator[Span]:
    """A span for a unit of business work, current for the block, with the same fields in the logs.

    Keywords as :func:`bind_run_context` (``run_id``, ``definition``, ``txn_type``, ``tenant``,
    or any dotted attribute). The fields are bound to log lines only inside the block. An
    exception leaves the span in ERROR status with ``error.type`` and is re-raised.
    """
    fields = _fields(attrs)
    started = time.monotonic()
    with (
        _tracer.start_as_current_span(
            name, attributes=fields, record_exception=True, set_status_on_exception=False
        ) as span,  # fmt: skip
        structlog.contextvars.bound_contextvars(**fields),
    ):
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
            raise
        finally:
            span.set_attribute("duration_ms", round((time.monotonic() - started) * 1000, 3))
