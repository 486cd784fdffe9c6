"""Reads for reporting: set-based aggregates over other apps' tables.

The scrape-time counts are plain SQL on the owners' tables, not their models: a count per state
must not load rows, and reporting must keep answering while a table is not migrated yet (an
absent table or column yields None, never an error). The table and column names are the
owners' contract (CONTRACTS.md); docs/observability.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jfintech.observability.platform import scrape_cursor

RUN_TABLE = "reconciliation_run"
CASE_TABLE = "exceptions_case"
# States a run never leaves; every other state is "active" and bound by its deadline.
RUN_TERMINAL_STATES = ("completed", "failed", "cancelled", "superseded")
CASE_RESOLVED_STATES = ("resolved",)
CASE_PRIORITIES = ("critical", "high", "normal", "low")
CASE_AGE_BUCKETS = (
    ("lt_1d", "interval '0'", "interval '1 day'"),
    ("1d_3d", "interval '1 day'", "interval '3 days'"),
    ("3d_7d", "interval '3 days'", "interval '7 days'"),
    ("7d_30d", "interval '7 days'", "interval '30 days'"),
    ("ge_30d", "interval '30 days'", None),
)


@dataclass
class RunCounts:
    states: dict[str, int] = field(default_factory=dict)
    past_deadline: int = 0


@dataclass
class CaseCounts:
    by_age: dict[tuple[str, str], int] = field(default_factory=dict)
    past_sla: dict[str, int] = field(default_factory=dict)


def _columns(cursor, table: str) -> set[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s",
        [table],
    )
    return {row[0] for row in cursor.fetchall()}


def run_counts_by_state() -> RunCounts | None:
    with scrape_cursor() as cursor:
        columns = _columns(cursor, RUN_TABLE)
        if "status" not in columns:
            return None
        counts = RunCounts()
        cursor.execute(f"SELECT status, count(*) FROM {RUN_TABLE} GROUP BY status")
        counts.states = {status: n for status, n in cursor.fetchall()}
        if "deadline" in columns:
            cursor.execute(
                f"SELECT count(*) FROM {RUN_TABLE} WHERE deadline < now() AND NOT (status = ANY(%s))",
                [list(RUN_TERMINAL_STATES)],
            )
            counts.past_deadline = cursor.fetchone()[0]
        return counts


def open_case_counts() -> CaseCounts | None:
    with scrape_cursor() as cursor:
        columns = _columns(cursor, CASE_TABLE)
        if not {"status", "priority", "first_seen_at"} <= columns:
            return None
        bucket_sql = " ".join(
            f"WHEN now() - first_seen_at >= {low}" + (f" AND now() - first_seen_at < {high}" if high else "")
            + f" THEN '{name}'"
            for name, low, high in CASE_AGE_BUCKETS
        )  # fmt: skip
        past_sla = "count(*) FILTER (WHERE sla_due_at < now())" if "sla_due_at" in columns else "0"
        cursor.execute(
            f"SELECT priority, CASE {bucket_sql} ELSE 'lt_1d' END, count(*), {past_sla} "
            f"FROM {CASE_TABLE} WHERE NOT (status = ANY(%s)) GROUP BY 1, 2",
            [list(CASE_RESOLVED_STATES)],
        )
        rows = cursor.fetchall()
        counts = CaseCounts()
        priorities = set(CASE_PRIORITIES) | {row[0] for row in rows}
        # Zero-filled, so a series exists (and an alert can fall back to 0) before the first case.
        counts.by_age = {(p, name): 0 for p in priorities for name, _, _ in CASE_AGE_BUCKETS}
        counts.past_sla = dict.fromkeys(priorities, 0)
        for priority, bucket, n, n_past_sla in rows:
            counts.by_age[(priority, bucket)] += n
            counts.past_sla[priority] += n_past_sla
        return counts
