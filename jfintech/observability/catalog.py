"""Every metric name the platform exports (or a dashboard or alert may use), in one list.

The tests hold the code, the dashboards and the alert rules to this list
(jfintech/observability/tests/test_catalog.py):

- every metric defined in any ``metrics.py`` of the project is here, with the same type and labels;
- every platform collector's family is here;
- every metric named by a dashboard panel (dashboards/*.json) or an alert rule
  (alerts/jfintech.rules.yaml) is here.

Adding a metric: define it once in the owning app's ``metrics.py`` and add a line here. Names of
counters are written as queried (with ``_total``); histograms without their ``_bucket`` /
``_sum`` / ``_count`` suffixes.

``served_by``: ``process`` = every web/worker process (multiprocess files; web ``/metrics``,
worker ``WORKER_METRICS_PORT``), ``platform`` = computed at scrape time by beat only
(``BEAT_METRICS_PORT``), ``web`` = django-prometheus in gunicorn, ``external`` = Prometheus or
kube-state-metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    owner: str  # obs | recon | ingest | desk | tenancy | filings | django-prometheus | external
    served_by: str  # process | platform | web | external
    help: str


def _m(name, type_, labels, owner, served_by, help_):
    return MetricSpec(name, type_, tuple(labels), owner, served_by, help_)


CATALOG: tuple[MetricSpec, ...] = (
    # --- obs: per process (jfintech.observability.metrics) ----------------------------------
    _m("recon_task_duration_seconds", "histogram", ["task", "outcome"], "obs", "process",
       "Celery task duration, by task name and outcome (success, failure, retry)."),
    _m("db_query_duration_seconds", "histogram", ["alias", "operation"], "obs", "process",
       "SQL statement duration through Django, by connection alias and statement kind."),
    _m("db_pool_max_connections", "gauge", ["alias"], "obs", "process",
       "Configured max size of the psycopg pools, summed over live processes."),
    _m("db_pool_connections", "gauge", ["alias"], "obs", "process",
       "Connections open in the psycopg pools (in use or idle)."),
    _m("db_pool_available_connections", "gauge", ["alias"], "obs", "process",
       "Idle connections ready in the psycopg pools."),
    _m("db_pool_waiting_requests", "gauge", ["alias"], "obs", "process",
       "Requests waiting for a pooled connection."),
    _m("db_pool_requests_total", "counter", ["alias"], "obs", "process",
       "Connections requested from the psycopg pools."),
    _m("db_pool_wait_seconds_total", "counter", ["alias"], "obs", "process",
       "Time spent waiting for a pooled connection."),
    _m("db_pool_errors_total", "counter", ["alias", "kind"], "obs", "process",
       "psycopg pool errors: request, connection, lost, bad_return."),
    # --- obs/reporting: platform, computed at scrape time by beat ---------------------------
    _m("celery_queue_length", "gauge", ["queue"], "obs", "platform",
       "Messages waiting in the broker per queue, every priority list summed."),
    _m("celery_queue_oldest_message_age_seconds", "gauge", ["queue"], "obs", "platform",
       "Age of the oldest message waiting in the queue (0 when empty)."),
    _m("platform_collector_up", "gauge", ["collector"], "obs", "platform",
       "1 if the platform collector answered at this scrape."),
    _m("platform_collector_duration_seconds", "gauge", ["collector"], "obs", "platform",
       "How long the platform collector took at this scrape."),
    _m("recon_runs_in_state", "gauge", ["state"], "obs", "platform",
       "Reconciliation runs per current state (reporting.metrics)."),
    _m("recon_runs_past_deadline", "gauge", [], "obs", "platform",
       "Runs not terminal whose deadline has passed (reporting.metrics)."),
    _m("exception_cases_open", "gauge", ["priority", "age_bucket"], "obs", "platform",
       "Unresolved break cases by priority and age bucket (reporting.metrics)."),
    _m("exception_cases_past_sla", "gauge", ["priority"], "obs", "platform",
       "Unresolved break cases past their SLA due time (reporting.metrics)."),
    _m("pg_stat_statements_available", "gauge", [], "obs", "platform",
       "1 if pg_stat_statements is preloaded and created in the database (jfintech.observability.pgstats)."),
    _m("pg_statement_exec_seconds_total", "counter", ["queryid", "query"], "obs", "platform",
       "Execution time of the top statements by total or mean time (pg_stat_statements)."),
    _m("pg_statement_calls_total", "counter", ["queryid", "query"], "obs", "platform",
       "Calls of the top statements (pg_stat_statements)."),
    _m("pg_statement_mean_seconds", "gauge", ["queryid", "query"], "obs", "platform",
       "Mean execution time of the top statements since the statistics were reset."),
    # --- recon (reconciliation) --------------------------------------------------------------
    _m("recon_transactions_processed_total", "counter", ["txn_type", "outcome"], "recon", "process",
       "Records processed by matching, by record kind and outcome."),
    _m("recon_transaction_processing_seconds", "histogram", ["txn_type"], "recon", "process",
       "Matching time per record kind."),
    _m("recon_errors_total", "counter", ["txn_type", "error_type"], "recon", "process",
       "Errors while reconciling, by record kind and error type."),
    _m("recon_run_duration_seconds", "histogram", ["kind", "outcome"], "recon", "process",
       "Run duration from start to a terminal state."),
    _m("recon_runs_total", "counter", ["kind", "outcome"], "recon", "process",
       "Runs reaching a terminal state, by kind and outcome."),
    _m("recon_run_redrives_total", "counter", ["kind", "status"], "recon", "process",
       "Steps of runs the reaper re-sent because their heartbeat went stale, by the status they were in."),
    _m("recon_run_enqueue_failures_total", "counter", ["kind"], "recon", "process",
       "Runs committed whose chord the broker refused; the reaper re-drives them."),
    _m("recon_runs_failed_stale_total", "counter", ["kind"], "recon", "process",
       "Runs the reaper failed after RUN_MAX_ATTEMPTS drives with a stale heartbeat."),
    _m("recon_simulations_total", "counter", ["kind", "outcome"], "recon", "process",
       "Dry runs and impact simulations computed, by kind and outcome (reconciliation.matching)."),
    _m("recon_match_decisions_total", "counter", ["decision"], "recon", "process",
       "Analysts' decisions on matches and suggestions (reconciliation.matching)."),
    # --- ingest (reconciliation.ingestion) -----------------------------------------------------
    _m("ingest_rows_total", "counter", ["kind", "outcome"], "ingest", "process",
       "Rows ingested, accepted or rejected, by record kind."),
    _m("ingest_rejections_total", "counter", ["kind", "reason"], "ingest", "process",
       "Rows rejected, by record kind and reason."),
    _m("ingest_batch_duration_seconds", "histogram", ["format", "outcome"], "ingest", "process",
       "Ingestion batch duration by file format and outcome."),
    _m("ingest_bytes_total", "counter", ["format"], "ingest", "process", "Bytes ingested by format."),
    _m("ingest_batches_staged_total", "counter", ["kind", "why"], "ingest", "process",
       "Batches that took the staged load path (read twice: slower), by record kind and why."),
    _m("connector_requests_total", "counter", ["connector", "outcome"], "ingest", "process",
       "Connector fetches by connector and outcome."),
    _m("connector_circuit_open", "gauge", ["source_kind"], "ingest", "process",
       "1 while a connector's circuit breaker is open."),
    # --- desk (exceptions) ---------------------------------------------------------------------
    _m("exception_sla_breaches_total", "counter", ["priority"], "desk", "process",
       "Break cases flagged past their SLA due time."),
    _m("exception_cases_transitions_total", "counter", ["to_status"], "desk", "process",
       "Break cases moved into a status."),
    _m("exception_webhook_deliveries_total", "counter", ["outcome"], "desk", "process",
       "SLA webhook delivery attempts by outcome (delivered, retry, failed)."),
    _m("report_deliveries_total", "counter", ["channel", "outcome"], "desk", "process",
       "Scheduled report delivery attempts by channel and outcome (delivered, retry, failed)."),
    # --- tenancy (jfintech.api, jfintech.audit) ------------------------------------------------
    _m("api_idempotency_requests_total", "counter", ["outcome"], "tenancy", "process",
       "POSTs with an Idempotency-Key by outcome."),
    _m("api_queue_full_refusals_total", "counter", ["queue"], "tenancy", "process",
       "API requests refused 503 queue_full: the queue they enqueue on was at its depth limit."),
    _m("audit_chain_verified", "gauge", ["tenant"], "tenancy", "process",
       "1 if the tenant's audit chain verified at the last run, else 0 (jfintech.audit.metrics)."),
    _m("audit_chain_events", "gauge", ["tenant"], "tenancy", "process",
       "Events in the tenant's audit chain at the last verification (a drop = events removed)."),
    _m("audit_chain_last_verification_timestamp_seconds", "gauge", [], "tenancy", "process",
       "When the audit chains were last verified (Unix time)."),
    # --- filings (filings.metrics) ----------------------------------------------------------------
    _m("filings_overdue", "gauge", ["kind"], "filings", "process",
       "Filings not yet submitted to FinCEN past their due date, by kind (set by the deadline task)."),
    # --- django-prometheus (web) ---------------------------------------------------------------
    _m("django_http_requests_total_by_view_transport_method_total", "counter",
       ["view", "transport", "method"], "django-prometheus", "web", "Requests by view, transport, method."),
    _m("django_http_responses_total_by_status_view_method_total", "counter",
       ["status", "view", "method"], "django-prometheus", "web", "Responses by status, view, method."),
    _m("django_http_responses_total_by_status_total", "counter", ["status"], "django-prometheus", "web",
       "Responses by status."),
    _m("django_http_requests_latency_seconds_by_view_method", "histogram", ["view", "method"],
       "django-prometheus", "web", "Request latency by view and method."),
    _m("django_http_exceptions_total_by_type_total", "counter", ["type"], "django-prometheus", "web",
       "Exceptions raised by views, by type."),
    # --- external ------------------------------------------------------------------------------
    _m("up", "gauge", [], "external", "external", "Prometheus: 1 if the target was scraped."),
    _m("kube_deployment_status_replicas_available", "gauge", ["deployment"], "external", "external",
       "kube-state-metrics: available replicas of a Deployment."),
)  # fmt: skip

BY_NAME = {spec.name: spec for spec in CATALOG}

_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_created",), "gauge": ()}


def query_names() -> set[str]:
    """Every series name a PromQL query may use: the names above and their histogram suffixes."""
    names = set()
    for spec in CATALOG:
        names.add(spec.name)
        names.update(spec.name + suffix for suffix in _SUFFIXES[spec.type])
    return names
