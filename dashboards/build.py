"""Writes the Grafana dashboards (dashboards/*.json) from the panel lists below.

The JSON files are what Grafana imports (or a provisioning ConfigMap mounts); this script is
their source, so a panel is one line here instead of forty lines of JSON. After editing:

    .venv/bin/python dashboards/build.py

The tests check that the files are this script's output, that every query parses (promql-parser)
and that every metric it names is in jfintech/observability/catalog.py.

Global state (queue depth, runs per state, open cases) is exported by beat alone (the platform
metrics, docs/observability.md): those panels aggregate with max(), which is the value itself
while one beat runs and never doubles during a beat restart.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def ts(title, *exprs, unit="short", legend="", stack=False, desc=""):
    return {"type": "timeseries", "title": title, "exprs": exprs, "unit": unit, "legend": legend,
            "stack": stack, "description": desc}  # fmt: skip


def stat(title, expr, unit="short", thresholds=(("green", None), ("red", 1)), desc=""):
    return {"type": "stat", "title": title, "exprs": (expr,), "unit": unit, "thresholds": thresholds,
            "description": desc}  # fmt: skip


def p95(metric, by):
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket[{RATE}])))"


DASHBOARDS = {
    "reconciliation-overview": {
        "title": "jfintech / Reconciliation overview",
        "description": "Runs, matching, breaks and ingestion. Alerts: docs/runbook.md.",
        "rows": {
            "Runs": [
                stat("Failed runs (24h)", 'sum(increase(recon_runs_total{outcome="failed"}[24h]))',
                     desc="Runs that ended FAILED. Admin: Reconciliation > Runs, filter status=failed."),
                stat("Runs past deadline", "max(recon_runs_past_deadline)",
                     desc="Active runs whose deadline passed (the reaper should fail them)."),
                ts("Runs per state", "max by (state) (recon_runs_in_state)", legend="{{state}}"),
                ts("Runs finished by outcome", "sum by (kind, outcome) (increase(recon_runs_total[1h]))",
                   legend="{{kind}} {{outcome}}"),
                ts("Run duration p95", p95("recon_run_duration_seconds", "kind"), unit="s", legend="{{kind}}"),
            ],
            "Matching": [
                ts("Records processed", f"sum by (txn_type, outcome) (rate(recon_transactions_processed_total[{RATE}]))",
                   unit="ops", legend="{{txn_type}} {{outcome}}", stack=True),
                ts("Processing time p95 by record kind", p95("recon_transaction_processing_seconds", "txn_type"),
                   unit="s", legend="{{txn_type}}"),
                ts("Error rate by record kind",
                   f"sum by (txn_type) (rate(recon_errors_total[{RATE}])) / "
                   f"sum by (txn_type) (rate(recon_transactions_processed_total[{RATE}]))",
                   unit="percentunit", legend="{{txn_type}}"),
                ts("Errors by type", f"sum by (txn_type, error_type) (rate(recon_errors_total[{RATE}]))",
                   unit="ops", legend="{{txn_type}} {{error_type}}"),
            ],
            "Breaks": [
                ts("Open cases by age", "max by (age_bucket) (exception_cases_open)", legend="{{age_bucket}}",
                   stack=True),
                ts("Open cases past SLA", "max by (priority) (exception_cases_past_sla)", legend="{{priority}}"),
                ts("SLA breaches", "sum by (priority) (increase(exception_sla_breaches_total[1h]))",
                   legend="{{priority}}"),
                ts("Case transitions", f"sum by (to_status) (rate(exception_cases_transitions_total[{RATE}]))",
                   unit="ops", legend="{{to_status}}"),
                ts("SLA webhook deliveries", "sum by (outcome) (increase(exception_webhook_deliveries_total[1h]))",
                   legend="{{outcome}}"),
            ],
            "Ingestion": [
                ts("Rows ingested", f"sum by (kind, outcome) (rate(ingest_rows_total[{RATE}]))", unit="ops",
                   legend="{{kind}} {{outcome}}"),
                ts("Rejections by reason", f"sum by (kind, reason) (rate(ingest_rejections_total[{RATE}]))",
                   unit="ops", legend="{{kind}} {{reason}}"),
                ts("Batch duration p95", p95("ingest_batch_duration_seconds", "format"), unit="s",
                   legend="{{format}}"),
                ts("Bytes ingested", f"sum by (format) (rate(ingest_bytes_total[{RATE}]))", unit="Bps",
                   legend="{{format}}"),
                ts("Batches on the staged path", "sum by (kind, why) (increase(ingest_batches_staged_total[1h]))",
                   legend="{{kind}} {{why}}"),
                ts("Connector requests", f"sum by (connector, outcome) (rate(connector_requests_total[{RATE}]))",
                   unit="ops", legend="{{connector}} {{outcome}}"),
                ts("Open circuit breakers", "max by (source_kind) (connector_circuit_open)",
                   legend="{{source_kind}}"),
            ],
            "Audit": [
                stat("Audit chains verified", "min(audit_chain_verified)",
                     thresholds=(("red", None), ("green", 1)), desc="0 = a tenant's hash chain is broken."),
                stat("Since last verification", "time() - max(audit_chain_last_verification_timestamp_seconds)",
                     unit="s", thresholds=(("green", None), ("red", 93600))),
                ts("Audit chain verified by tenant", "min by (tenant) (audit_chain_verified)", legend="{{tenant}}"),
                ts("Audit events by tenant", "max by (tenant) (audit_chain_events)", legend="{{tenant}}"),
            ],
        },
    },
    "queues-and-workers": {
        "title": "jfintech / Queues and workers",
        "description": "Broker queues (beat's platform metrics) and Celery tasks (every worker).",
        "rows": {
            "Queues": [
                ts("Queue length (all priorities)", "max by (queue) (celery_queue_length)", legend="{{queue}}"),
                ts("Oldest message age", "max by (queue) (celery_queue_oldest_message_age_seconds)", unit="s",
                   legend="{{queue}}"),
                ts("Queue growth (per minute)", "max by (queue) (deriv(celery_queue_length[10m])) * 60",
                   legend="{{queue}}"),
            ],
            "Tasks": [
                ts("Tasks by outcome", f"sum by (task, outcome) (rate(recon_task_duration_seconds_count[{RATE}]))",
                   unit="ops", legend="{{task}} {{outcome}}"),
                ts("Task duration p95", p95("recon_task_duration_seconds", "task"), unit="s", legend="{{task}}"),
                ts("Task failure ratio",
                   f'sum by (task) (rate(recon_task_duration_seconds_count{{outcome="failure"}}[{RATE}])) / '
                   f"sum by (task) (rate(recon_task_duration_seconds_count[{RATE}]))",
                   unit="percentunit", legend="{{task}}"),
            ],
            "Processes": [
                ts("Worker pods up by queue", 'sum by (queue) (up{container="worker"})', legend="{{queue}}"),
                ts("Beat running", 'sum(kube_deployment_status_replicas_available{deployment=~".+-beat"})'),
                ts("Platform collectors", "min by (collector) (platform_collector_up)", legend="{{collector}}"),
                ts("Platform collector time", "max by (collector) (platform_collector_duration_seconds)", unit="s",
                   legend="{{collector}}"),
            ],
        },
    },
    "database": {
        "title": "jfintech / Database",
        "description": "psycopg connection pools (web), SQL statement durations (web and workers) and the "
                       "server's slowest statements (pg_stat_statements, from beat).",
        "rows": {
            "Connection pool": [
                ts("Pool saturation (in use / max)",
                   "sum by (instance, alias) (db_pool_connections - db_pool_available_connections) / "
                   "sum by (instance, alias) (db_pool_max_connections)",
                   unit="percentunit", legend="{{instance}} {{alias}}"),
                ts("Requests waiting for a connection", "sum by (instance, alias) (db_pool_waiting_requests)",
                   legend="{{instance}} {{alias}}"),
                ts("Average wait for a connection",
                   f"sum by (alias) (rate(db_pool_wait_seconds_total[{RATE}])) / "
                   f"sum by (alias) (rate(db_pool_requests_total[{RATE}]))",
                   unit="s", legend="{{alias}}"),
                ts("Pool errors", f"sum by (alias, kind) (rate(db_pool_errors_total[{RATE}]))", unit="ops",
                   legend="{{alias}} {{kind}}"),
                ts("Connections open / idle", "sum by (alias) (db_pool_connections)",
                   "sum by (alias) (db_pool_available_connections)", legend="{{alias}}"),
            ],
            "Queries": [
                ts("Statements per second", f"sum by (operation) (rate(db_query_duration_seconds_count[{RATE}]))",
                   unit="ops", legend="{{operation}}", stack=True),
                ts("Statement duration p95", p95("db_query_duration_seconds", "operation"), unit="s",
                   legend="{{operation}}"),
                ts("Statement duration p99",
                   f"histogram_quantile(0.99, sum by (le, operation) (rate(db_query_duration_seconds_bucket[{RATE}])))",
                   unit="s", legend="{{operation}}"),
            ],
            # pg_stat_statements, from beat (platform metrics): max() is the value itself. The top
            # statements only (PG_STAT_STATEMENTS_TOP by total and by mean time); docs/runbook.md
            # "A slow run" goes from these panels to the plan.
            "Slow statements (pg_stat_statements)": [
                ts("Top statements by total time", "topk(10, max by (queryid, query) "
                   f"(rate(pg_statement_exec_seconds_total[{RATE}])))", unit="s", legend="{{queryid}} {{query}}",
                   desc="Seconds of execution per second (the share of the server's time), by statement. "
                        "The queryid finds the plan in the PostgreSQL log (auto_explain: Query Identifier)."),
                ts("Top statements by mean time", "topk(10, max by (queryid, query) "
                   f"(rate(pg_statement_exec_seconds_total[{RATE}]) / (rate(pg_statement_calls_total[{RATE}]) > 0)))",
                   unit="s", legend="{{queryid}} {{query}}",
                   desc="Mean time per call over the interval, of the statements called in it."),
                ts("Calls of the top statements", "topk(10, max by (queryid, query) "
                   f"(rate(pg_statement_calls_total[{RATE}])))", unit="ops", legend="{{queryid}} {{query}}"),
                stat("pg_stat_statements available", "min(pg_stat_statements_available)",
                     thresholds=(("red", None), ("green", 1)),
                     desc="0: not preloaded or not created in the database; beat logs the reason "
                          "(pg_stat_statements_unavailable). docs/observability.md, Slow queries."),
            ],
        },
    },
    "api": {
        "title": "jfintech / API",
        "description": "Web requests (django-prometheus) and idempotent POSTs.",
        "rows": {
            "Traffic": [
                ts("Requests by view", f"sum by (view, method) (rate(django_http_requests_total_by_view_transport_method_total[{RATE}]))",
                   unit="reqps", legend="{{method}} {{view}}"),
                ts("Responses by status", f"sum by (status) (rate(django_http_responses_total_by_status_total[{RATE}]))",
                   unit="reqps", legend="{{status}}", stack=True),
                ts("5xx ratio",
                   f'sum(rate(django_http_responses_total_by_status_total{{status=~"5.."}}[{RATE}])) / '
                   f"sum(rate(django_http_responses_total_by_status_total[{RATE}]))",
                   unit="percentunit"),
            ],
            "Latency and errors": [
                ts("Latency p95 by view", p95("django_http_requests_latency_seconds_by_view_method", "view"),
                   unit="s", legend="{{view}}"),
                ts("Exceptions by type", f"sum by (type) (rate(django_http_exceptions_total_by_type_total[{RATE}]))",
                   unit="ops", legend="{{type}}"),
                ts("Idempotent POSTs by outcome", f"sum by (outcome) (rate(api_idempotency_requests_total[{RATE}]))",
                   unit="reqps", legend="{{outcome}}"),
                ts("Refused 503 queue_full by queue", f"sum by (queue) (rate(api_queue_full_refusals_total[{RATE}]))",
                   unit="reqps", legend="{{queue}}",
                   desc="Requests that enqueue work refused while their queue is at API_QUEUE_DEPTH_LIMIT."),
            ],
        },
    },
}  # fmt: skip


def _panel(spec: dict, panel_id: int, x: int, y: int) -> dict:
    targets = [
        {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": expr,
            "legendFormat": spec.get("legend", ""),
        }
        for i, expr in enumerate(spec["exprs"])
    ]
    panel = {
        "id": panel_id,
        "type": spec["type"],
        "title": spec["title"],
        "description": spec.get("description", ""),
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": spec["unit"]}, "overrides": []},
        "options": {},
    }
    if spec["type"] == "stat":
        steps = [{"color": color, "value": value} for color, value in spec["thresholds"]]
        panel["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
        panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    elif spec.get("stack"):
        panel["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal"}}
    return panel


def build(uid: str, dashboard: dict) -> dict:
    panels, panel_id, y = [], 1, 0
    for row_title, specs in dashboard["rows"].items():
        panels.append({"id": panel_id, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})  # fmt: skip
        panel_id, y = panel_id + 1, y + 1
        for i, spec in enumerate(specs):
            panels.append(_panel(spec, panel_id, x=(i % 3) * 8, y=y + (i // 3) * 8))
            panel_id += 1
        y += ((len(specs) + 2) // 3) * 8
    return {
        "uid": f"jfintech-{uid}",
        "title": dashboard["title"],
        "description": dashboard["description"],
        "tags": ["jfintech"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "links": [
            {"type": "dashboards", "tags": ["jfintech"], "title": "jfintech", "asDropdown": True},
        ],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            ]
        },
        "panels": panels,
    }


def render() -> dict[str, str]:
    return {
        f"{uid}.json": json.dumps(build(uid, dashboard), indent=2, ensure_ascii=False) + "\n"
        for uid, dashboard in DASHBOARDS.items()
    }


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
