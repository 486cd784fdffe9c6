"""Every labelled counter an alert reads exists at 0 before its first event (issue 19): otherwise
increase()/rate() miss the first event after a process starts (JfintechRunFailed did not fire on
the first failed run after a worker started). The label values are the models' choices."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

from exceptions import metrics as exception_metrics
from exceptions.models import Priority
from jfintech.api import metrics as api_metrics
from jfintech.observability import metrics as platform_metrics
from reconciliation.models import RecordKind
from reconciliation.runs import metrics
from reconciliation.runs.models import ACTIVE_RUN_STATUSES, DefinitionKind

RULES = Path(settings.BASE_DIR) / "alerts" / "jfintech.rules.yaml"
# Counters an alert reads through increase()/rate() (web and DB counters from django-prometheus
# and kube metrics are the exporters'); the one left out is labelled by an open-ended error code.
INITIALISED = {
    "recon_runs_total": metrics.RUNS,
    "recon_run_redrives_total": metrics.RUN_REDRIVES,
    "recon_runs_failed_stale_total": metrics.RUNS_FAILED_STALE,
    "recon_transactions_processed_total": metrics.TRANSACTIONS_PROCESSED,
    "exception_sla_breaches_total": exception_metrics.SLA_BREACHES,
    "db_pool_errors_total": platform_metrics.DB_POOL_ERRORS,
    "api_queue_full_refusals_total": api_metrics.QUEUE_FULL_REFUSALS,
}
NOT_INITIALISABLE = {"recon_errors_total"}


# What a freshly started worker exports before any event: django.setup() and the task modules
# Celery autodiscovers, nothing else.
FRESH_PROCESS = """
import django, json
django.setup()
import exceptions.tasks, reconciliation.tasks  # noqa
from prometheus_client import REGISTRY
print(json.dumps([[s.name, s.labels, s.value] for f in REGISTRY.collect() for s in f.samples]))
"""


def _fresh_samples() -> list:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], env=env, cwd=settings.BASE_DIR,
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def test_the_label_values_are_the_models_choices():
    assert set(metrics.DEFINITION_KINDS) == set(DefinitionKind.values)
    assert set(metrics.ACTIVE_STATUSES) == set(ACTIVE_RUN_STATUSES)
    assert set(metrics.RECORD_KINDS) == set(RecordKind.values)
    assert set(exception_metrics.PRIORITIES) == set(Priority.values)


def test_every_series_an_alert_reads_exists_at_zero_before_the_first_event():
    zero = {(name, tuple(sorted(labels.items()))) for name, labels, value in _fresh_samples() if value == 0}
    expected = {
        ("recon_runs_total", (("kind", k), ("outcome", o)))
        for k in DefinitionKind.values
        for o in ("completed", "failed")
    }
    expected |= {
        ("recon_run_redrives_total", (("kind", k), ("status", s)))
        for k in DefinitionKind.values
        for s in ACTIVE_RUN_STATUSES
    }
    expected |= {("recon_runs_failed_stale_total", (("kind", k),)) for k in DefinitionKind.values}
    expected |= {
        ("recon_transactions_processed_total", (("outcome", o), ("txn_type", t)))
        for t in RecordKind.values for o in metrics.PROCESSED_OUTCOMES
    }  # fmt: skip
    expected |= {("exception_sla_breaches_total", (("priority", p),)) for p in Priority.values}
    expected |= {
        ("db_pool_errors_total", (("alias", a), ("kind", k)))
        for a in settings.DATABASES
        for k in ("request", "connection")
    }
    queues = settings.CELERY_TASK_QUEUES_NAMES
    expected |= {("api_queue_full_refusals_total", (("queue", q),)) for q in queues}
    assert not expected - zero, sorted(expected - zero)


def test_every_counter_an_alert_reads_is_initialised_or_named_as_not():
    exprs = " ".join(
        rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    )
    read = set(re.findall(r"\b((?:recon|exception|db_pool|ingest|audit|api)_\w+_total)\b", exprs))
    assert read == set(INITIALISED) | NOT_INITIALISABLE
