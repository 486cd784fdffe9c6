"""Reconciliation metrics (names fixed by issue 8; see CONTRACTS.md). Never labelled by run id.

txn_type is the record kind (position, trade, settlement, ledger, statement); kind is the
definition kind (three_way, two_way); outcome of a run is completed or failed.
"""

from prometheus_client import Counter, Histogram

TRANSACTIONS_PROCESSED = Counter(
    "recon_transactions_processed_total",
    "Records a completed run reconciled, by record kind and outcome (matched, break, excluded, suggested).",
    ["txn_type", "outcome"],
)
TRANSACTION_PROCESSING_SECONDS = Histogram(
    "recon_transaction_processing_seconds",
    "Matching-phase duration of a run, observed once per record kind in its scope.",
    ["txn_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900),
)
ERRORS = Counter(
    "recon_errors_total",
    "Reconciliation failures, by record kind of the failed run's sides and error type.",
    ["txn_type", "error_type"],
)
RUN_DURATION = Histogram(
    "recon_run_duration_seconds",
    "Run duration from creation to a terminal state, by definition kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
RUNS = Counter(
    "recon_runs_total",
    "Runs that reached a terminal state, by definition kind and outcome.",
    ["kind", "outcome"],
)
RUN_REDRIVES = Counter(
    "recon_run_redrives_total",
    "Steps of runs re-sent by the reaper because their heartbeat went stale (a worker died), by"
    " definition kind and the status the run was in.",
    ["kind", "status"],
)
RUN_ENQUEUE_FAILURES = Counter(
    "recon_run_enqueue_failures_total",
    "Runs committed whose chord the broker refused (left PENDING for the reaper's re-drive), by"
    " definition kind.",
    ["kind"],
)
RUNS_FAILED_STALE = Counter(
    "recon_runs_failed_stale_total",
    "Runs the reaper failed because their heartbeat was stale after RUN_MAX_ATTEMPTS drives.",
    ["kind"],
)

# Every series an alert reads exists at 0 from the process's start: increase()/rate() need a
# sample before the first event, else JfintechRunFailed misses the first failed run after a
# worker starts (the series is born at 1). Label values known upfront, checked against the
# models' choices by reconciliation/runs/tests/test_metrics_initialised.py. (ERRORS is labelled by
# an open-ended error code and cannot be; its alert is a ratio over 10 minutes.)
DEFINITION_KINDS = ("three_way", "two_way")
ACTIVE_STATUSES = ("pending", "fetching", "matching")
RECORD_KINDS = ("position", "trade", "settlement", "ledger", "statement")
PROCESSED_OUTCOMES = ("matched", "break", "excluded", "suggested")
for _kind in DEFINITION_KINDS:
    RUNS_FAILED_STALE.labels(kind=_kind)
    for _outcome in ("completed", "failed"):
        RUNS.labels(kind=_kind, outcome=_outcome)
    for _status in ACTIVE_STATUSES:
        RUN_REDRIVES.labels(kind=_kind, status=_status)
for _txn_type in RECORD_KINDS:
    for _outcome in PROCESSED_OUTCOMES:
        TRANSACTIONS_PROCESSED.labels(txn_type=_txn_type, outcome=_outcome)
