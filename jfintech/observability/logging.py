"""JSON logs with the same field names in web, workers and beat.

The field names (see docs/observability.md): timestamp level event logger service.name trace_id
span_id request_id tenant user_id task task_id recon.run_id txn.type duration_ms error.type.
Every stdlib logger (Django, Celery, psycopg) goes through the same structlog processors, so a line
from a library looks like a line of ours.
"""

import logging
import os
import sys

import structlog
from opentelemetry import trace

from jfintech.observability.masking import mask_sensitive

SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "jfintech")

# django-structlog and Celery name some fields their own way; one name per field, everywhere.
_RENAMES = {"task_name": "task", "level_name": "level", "tenant_slug": "tenant"}


def add_service_name(_, __, event_dict):
    event_dict.setdefault("service.name", SERVICE_NAME)
    return event_dict


def add_trace_context(_, __, event_dict):
    """trace_id/span_id of the current span, so a log line leads to its trace."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def rename_fields(_, __, event_dict):
    for old, new in _RENAMES.items():
        if old in event_dict:
            event_dict.setdefault(new, event_dict.pop(old))
    return event_dict


def add_error_type(_, __, event_dict):
    """error.type = the exception's class name, however the exception reached the logger."""
    if "error.type" in event_dict:
        return event_dict
    exc = event_dict.get("exc_info")
    if exc is True:
        exc = sys.exc_info()[1]
    elif isinstance(exc, tuple):
        exc = exc[1]
    if not isinstance(exc, BaseException):
        exc = event_dict.get("exception")  # django-structlog's task_failed passes it this way
    if isinstance(exc, BaseException):
        event_dict["error.type"] = type(exc).__name__
    return event_dict


SHARED_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    add_service_name,
    add_trace_context,
    rename_fields,
    add_error_type,
]


def build_logging_config(level: str, fmt: str) -> dict:
    """The Django LOGGING dict; also configures structlog itself (once per process)."""
    renderer = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    # After the traceback is text, before rendering: one place masks every line.
                    mask_sensitive,
                    renderer,
                ],
                "foreign_pre_chain": SHARED_PROCESSORS,
            },
        },
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "structured"},
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "django.server": {"level": "WARNING"},
            "celery": {"level": level},
        },
    }


def get_logger(name: str):
    return structlog.get_logger(name)


def reset_stdlib_logging_from_settings() -> None:
    """Re-apply Django's LOGGING (Celery's worker and beat would otherwise install their own)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    logging.captureWarnings(True)
