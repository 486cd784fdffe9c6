"""Prometheus metrics of the exceptions app (names fixed by issue 8; never labelled by run or case)."""

from prometheus_client import Counter

CASE_TRANSITIONS = Counter(
    "exception_cases_transitions_total",
    "Break cases moved into a status (opened by a run, assigned, resolved, reopened, ...).",
    ["to_status"],
)

SLA_BREACHES = Counter(
    "exception_sla_breaches_total",
    "Break cases flagged past their SLA due time, by priority (counted once per case and due time).",
    ["priority"],
)

WEBHOOK_DELIVERIES = Counter(
    "exception_webhook_deliveries_total",
    "SLA webhook delivery attempts, by outcome (delivered, retry, failed: alert on failed).",
    ["outcome"],
)

# Exists at 0 from the start, so JfintechSlaBreaches sees the first breach (increase() needs a
# sample before it). The priorities are exceptions.models.Priority's (a test checks).
PRIORITIES = ("critical", "high", "normal", "low")
for _priority in PRIORITIES:
    SLA_BREACHES.labels(priority=_priority)
