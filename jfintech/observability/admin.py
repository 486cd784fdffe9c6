"""The trace id of a run, batch or case, shown in the admin as links to its trace and its logs.

Second of the three clicks from an alert to the root cause (docs/runbook.md). Domain admins add
``"trace_links"`` to ``readonly_fields`` (and ``list_display`` if useful) via the mixin::

    class RunAdmin(TraceLinksAdminMixin, admin.ModelAdmin):
        readonly_fields = [..., "trace_links"]

The URL templates come from settings (env ``TRACE_URL_TEMPLATE`` / ``LOGS_URL_TEMPLATE``) with a
``{trace_id}`` placeholder; without them the id is shown alone, to paste into a log search.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.contrib import admin
from django.utils.html import format_html


def _url(template: str, trace_id: str) -> str:
    return template.replace("{trace_id}", quote(trace_id, safe="")) if template else ""


def trace_url(trace_id: str) -> str:
    return _url(getattr(settings, "TRACE_URL_TEMPLATE", ""), trace_id) if trace_id else ""


def logs_url(trace_id: str) -> str:
    return _url(getattr(settings, "LOGS_URL_TEMPLATE", ""), trace_id) if trace_id else ""


def trace_links(trace_id: str) -> str:
    """HTML: the trace id in monospace, then "trace" and "logs" links where configured."""
    if not trace_id:
        return "-"
    html = format_html('<code class="jf-trace-id">{}</code>', trace_id)
    for label, url in (("trace", trace_url(trace_id)), ("logs", logs_url(trace_id))):
        if url:
            html += format_html(' · <a href="{}" target="_blank" rel="noopener">{}</a>', url, label)
    return html


class TraceLinksAdminMixin:
    """Adds the ``trace_links`` column/field for models with a ``trace_id`` field."""

    @admin.display(description="Trace")
    def trace_links(self, obj) -> str:
        return trace_links(getattr(obj, "trace_id", "") or "")
