"""Slow statements from ``pg_stat_statements``, exported by beat at scrape time.

A platform collector (``settings.PLATFORM_METRICS_COLLECTORS``): the statistics are a fact about
the PostgreSQL server, not about a process, so beat alone serves them (no multiprocess files, no
pid label, never summed over pods). Cardinality is bounded: only the top ``PG_STAT_STATEMENTS_TOP``
statements by total execution time and the top ones by mean time are exported (at most twice that
many series per metric), labelled by PostgreSQL's ``queryid`` and a normalised, truncated text
(``pg_stat_statements`` has already replaced the constants with ``$n``; here comments — the
``traceparent`` the SQL commenter appends, see docs/observability.md "Slow queries" — are stripped
and whitespace collapsed).

Where the extension is not usable the collector says so instead of failing:
``pg_stat_statements_available 0`` and the reason in beat's log (``pg_stat_statements_unavailable``,
once per change): ``extension_not_created`` (no ``CREATE EXTENSION`` in this database),
``not_preloaded`` (not in ``shared_preload_libraries``), ``no_privilege``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from django.db import Error as DatabaseError
from django.db import transaction
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jfintech.observability.logging import get_logger
from jfintech.observability.platform import scrape_cursor

log = get_logger(__name__)

QUERY_LABEL_MAX = 120
_COMMENT_RE = re.compile(r"/\*.*?\*/", re.DOTALL)
_SPACE_RE = re.compile(r"\s+")
# SQLSTATEs that mean "not usable here", not "broken": anything else fails the scrape loudly.
_UNAVAILABLE = {"55000": "not_preloaded", "42501": "no_privilege"}


def statement_label(query: str, limit: int = QUERY_LABEL_MAX) -> str:
    """The ``query`` label: comments removed (a traceparent would make every call a new value),
    whitespace collapsed, cut at ``limit`` characters."""
    text = _SPACE_RE.sub(" ", _COMMENT_RE.sub(" ", query or "")).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sqlstate(exc: BaseException) -> str | None:
    # Django wraps the driver's error; psycopg's carries the SQLSTATE.
    for candidate in (exc, exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if state:
            return state
    return None


# One row per queryid (a statement may have several entries: per role, top-level or nested),
# restricted to this database; the union of the top N by total and the top N by mean time.
_TOP_SQL = """
WITH s AS (
    SELECT queryid, min(query) AS query, sum(calls) AS calls, sum(total_exec_time) AS total_ms,
           sum(total_exec_time) / nullif(sum(calls), 0) AS mean_ms
    FROM {schema}.pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL
    GROUP BY queryid
)
SELECT queryid, query, calls, total_ms, coalesce(mean_ms, 0) FROM s
WHERE queryid IN (SELECT queryid FROM s ORDER BY total_ms DESC LIMIT %(n)s)
   OR queryid IN (SELECT queryid FROM s ORDER BY mean_ms DESC NULLS LAST LIMIT %(n)s)
ORDER BY total_ms DESC
"""


class PgStatStatementsCollector(Collector):
    """``pg_stat_statements_available``, and for the top statements ``pg_statement_exec_seconds_total``,
    ``pg_statement_calls_total``, ``pg_statement_mean_seconds`` ``{queryid, query}``."""

    def __init__(self, top_n: int | None = None, using: str = "default"):
        self.top_n = top_n or int(os.environ.get("PG_STAT_STATEMENTS_TOP") or 20)
        self.using = using
        self._last_reason: str | None = None

    def _top(self) -> tuple[str | None, list[tuple]]:
        """(reason it is unavailable or None, the rows)."""
        with scrape_cursor(self.using) as cursor:
            cursor.execute(
                "SELECT quote_ident(n.nspname) FROM pg_extension e"
                " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
            )
            row = cursor.fetchone()
            if row is None:
                return "extension_not_created", []
            try:
                # A savepoint: reading the view of an extension that is not loaded is an error.
                with transaction.atomic(using=self.using):
                    cursor.execute(_TOP_SQL.format(schema=row[0]), {"n": self.top_n})
                    return None, cursor.fetchall()
            except DatabaseError as exc:
                reason = _UNAVAILABLE.get(_sqlstate(exc))
                if reason is None:
                    raise
                return reason, []

    def collect(self) -> Iterable[Metric]:
        reason, rows = self._top()
        if reason != self._last_reason:
            if reason:
                log.warning("pg_stat_statements_unavailable", reason=reason)
            self._last_reason = reason
        available = GaugeMetricFamily(
            "pg_stat_statements_available",
            "1 if pg_stat_statements is preloaded and created in this database (else 0: see beat's log).",
        )
        available.add_metric([], 0.0 if reason else 1.0)
        yield available
        if reason:
            return
        labels = ["queryid", "query"]
        total = CounterMetricFamily(
            "pg_statement_exec_seconds",
            "Execution time of the top statements since the statistics were reset (pg_stat_statements).",
            labels=labels,
        )
        calls = CounterMetricFamily(
            "pg_statement_calls", "Calls of the top statements (pg_stat_statements).", labels=labels
        )
        mean = GaugeMetricFamily(
            "pg_statement_mean_seconds",
            "Mean execution time of the top statements since the statistics were reset.",
            labels=labels,
        )
        for queryid, query, n_calls, total_ms, mean_ms in rows:
            values = [str(queryid), statement_label(query)]
            total.add_metric(values, float(total_ms) / 1000)
            calls.add_metric(values, float(n_calls))
            mean.add_metric(values, float(mean_ms) / 1000)
        yield total
        yield calls
        yield mean
