"""Platform metrics about runs and break cases, computed at scrape time by beat.

Listed in settings.PLATFORM_METRICS_COLLECTORS; served by one process only (see
jfintech.observability.platform), so the figures are never summed across pods. The queries are
set-based counts (reporting.selectors) and must stay cheap: they run at every scrape.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reporting import selectors


class RunsAndCasesCollector(Collector):
    """``recon_runs_in_state{state}``, ``recon_runs_past_deadline``,
    ``exception_cases_open{priority,age_bucket}``, ``exception_cases_past_sla{priority}``.
    A table that does not exist yet yields no samples."""

    def collect(self) -> Iterable[Metric]:
        runs = GaugeMetricFamily(
            "recon_runs_in_state", "Reconciliation runs per state (every run ever, by its current state).",
            labels=["state"],
        )  # fmt: skip
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
        run_counts = selectors.run_counts_by_state()
        if run_counts is not None:
            for state, count in run_counts.states.items():
                runs.add_metric([state], count)
            stuck.add_metric([], run_counts.past_deadline)
            yield runs
            yield stuck
        case_counts = selectors.open_case_counts()
        if case_counts is not None:
            for (priority, bucket), count in case_counts.by_age.items():
                cases.add_metric([priority, bucket], count)
            for priority, count in case_counts.past_sla.items():
                past_sla.add_metric([priority], count)
            yield cases
            yield past_sla
