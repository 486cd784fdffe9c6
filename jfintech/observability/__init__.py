"""Observability: JSON logs, traces and metrics with the same field names everywhere.

The API domain code calls (docs/observability.md):
``bind_run_context``, ``bind_tenant``, ``business_span`` (from .context) and
``get_logger`` (from .logging); metrics are defined in each app's ``metrics.py``.
"""

from jfintech.observability.context import bind_run_context, bind_tenant, business_span

__all__ = ["bind_run_context", "bind_tenant", "business_span"]
