"""Platform metrics about runs and break cases, computed at scrape time by beat.

Listed in settings.PLATFORM_METRICS_COLLECTORS; served by one process only (see
jfintech.observability.platform), so the figures are never summed across pods. The counts come
from the owners' selectors (reconciliation.runs.selectors, exceptions.selectors), set-based and
cheap: they run at every scrape, inside ``scrape_cursor``'s read-only transaction with its
statement timeout. Migrations are applied before the app serves, so the tables exist; a query
that fails is an error of the scrape, not "no samples".
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exceptions import selectors as case_selectors
from exceptions.models import Priority
from jfintech.observability.platform import scrape_cursor
from reconciliation.runs import selectors as run_selectors

REPORT_DELIVERIES = Counter(
    "report_deliveries",
    "Scheduled report delivery attempts by channel and outcome (delivered, retry, failed: alert on failed).",
    ["channel", "outcome"],
)


class RunsAndCasesCollector(Collector):
    """``recon_runs_in_state{state}``, ``recon_runs_past_deadline``,
    ``exception_cases_open{priority,age_bucket}``, ``exception_cases_past_sla{priority}``."""

    def collect(self) -> Iterable[Metric]:
        runs = GaugeMetricFamily(
            "recon_runs_in_state",
            "Reconciliation runs per state (every run ever, by its current state).",
            labels=["state"],
        )
        stuck = GaugeMetricFamily(
            "recon_runs_past_deadline",
            "Runs not in a terminal state whose deadline has passed (the reaper should fail them).",
        )
        cases = GaugeMetricFamily(
            "exception_cases_open",
            "Unresolved break cases by priority and age since first seen "
            "(lt_1d, 1d_3d, 3d_7d, 7d_30d, ge_30d).",
            labels=["priority", "age_bucket"],
        )
        past_sla = GaugeMetricFamily(
            "exception_cases_past_sla", "Unresolved break cases past their SLA due time.", labels=["priority"]
        )
        with scrape_cursor():
            states = run_selectors.run_counts_by_state()
            past_deadline = run_selectors.runs_past_deadline_count()
            rows = case_selectors.open_case_counts_by_priority_and_age()
        for state, count in states.items():
            runs.add_metric([state], count)
        stuck.add_metric([], past_deadline)
        # Zero-filled, so a series exists (and an alert can fall back to 0) before the first case.
        priorities = set(Priority.values) | {row[0] for row in rows}
        buckets = [name for name, _, _ in case_selectors.METRIC_AGE_BUCKETS]
        by_age = {(p, b): 0 for p in priorities for b in buckets}
        by_priority = dict.fromkeys(priorities, 0)
        for priority, bucket, n, n_past_sla in rows:
            by_age[(priority, bucket)] += n
            by_priority[priority] += n_past_sla
        for (priority, bucket), n in sorted(by_age.items()):
            cases.add_metric([priority, bucket], n)
        for priority, n in sorted(by_priority.items()):
            past_sla.add_metric([priority], n)
        yield from (runs, stuck, cases, past_sla)
