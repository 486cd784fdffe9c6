"""The foundation's end-to-end proof: request → broker → real workers on every queue → chord
callback, one trace across all of those processes, JSON logs with the shared field names."""

import json
import logging

import pytest

from jfintech.health.models import PipelineCheck
from jfintech.observability.logging import build_logging_config
from jfintech.testing.processes import read_spans, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

LOG_FIELDS = {"timestamp", "level", "event", "logger", "service.name", "trace_id", "span_id"}


def _start_check(staff_client):
    response = staff_client.post("/api/v1/health/pipeline-checks/")
    assert response.status_code == 202, response.content
    return response.json()


def _wait_done(check_id):
    return wait_until(
        lambda: PipelineCheck.objects.exclude(status="pending").filter(pk=check_id).first(),
        timeout=60, message="the pipeline check did not finish",
    )  # fmt: skip


def test_chord_runs_in_real_workers_and_forms_one_trace(staff_client, celery_workers, observability_dir):
    started = _start_check(staff_client)
    check = _wait_done(started["id"])

    assert check.status == "completed", check.error
    parts = {p.queue: p for p in check.parts.all()}
    assert set(parts) == {"default", "ingest", "reconciliation", "fetch"}
    # Executed by worker processes, not by the test process (no eager mode).
    import os

    assert os.getpid() not in {p.pid for p in parts.values()}

    trace_id = started["trace_id"]
    assert len(trace_id) == 32
    spans = wait_until(
        lambda: [s for s in read_spans(observability_dir / "spans") if s["trace_id"] == trace_id
                 and s["name"].startswith("run/health.pipeline_complete")],
        timeout=20, message="callback span not exported",
    )  # fmt: skip
    spans = [s for s in read_spans(observability_dir / "spans") if s["trace_id"] == trace_id]
    by_id = {s["span_id"]: s for s in spans}
    names = [s["name"] for s in spans]

    request_spans = [s for s in spans if s["kind"] == "SERVER"]
    assert request_spans, names
    probe_runs = [s for s in spans if s["name"] == "run/health.pipeline_probe"]
    assert len(probe_runs) == 4, names
    callback_runs = [s for s in spans if s["name"] == "run/health.pipeline_complete"]
    assert callback_runs, names
    # Every task's run span hangs off a publish span in the same trace (producer → consumer).
    for run in probe_runs + callback_runs:
        parent = by_id.get(run["parent_span_id"])
        assert parent is not None, run
        assert parent["kind"] == "PRODUCER", run
    # The probes were published by the request's process; the spans come from several processes.
    assert len({s["pid"] for s in spans}) >= 3
    assert any(s["name"].startswith("apply_async/health.pipeline_probe") for s in spans)


def test_request_and_task_log_json_lines_with_the_shared_fields(staff_client, celery_workers):
    lines = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Capture()
    formatter_cfg = build_logging_config("INFO", "json")["formatters"]["structured"]
    factory = formatter_cfg.pop("()")
    handler.setFormatter(factory(**formatter_cfg))
    logging.getLogger().addHandler(handler)
    try:
        started = _start_check(staff_client)
    finally:
        logging.getLogger().removeHandler(handler)
    _wait_done(started["id"])

    records = [json.loads(line) for line in lines]
    finished = [r for r in records if r["event"] == "request_finished"]
    assert finished, records
    assert LOG_FIELDS | {"request_id", "user_id"} <= set(finished[0])
    assert finished[0]["trace_id"] == started["trace_id"]

    def task_lines():
        return [
            r
            for r in celery_workers["fetch"].log_records()
            if r.get("task") == "health.pipeline_probe" and r.get("trace_id") == started["trace_id"]
        ]

    task_records = wait_until(task_lines, timeout=20, message="no task log line")
    assert {"task_started", "task_succeeded"} <= {r["event"] for r in task_records}
    for record in task_records:
        assert LOG_FIELDS | {"task", "task_id"} <= set(record), record
    succeeded = next(r for r in task_records if r["event"] == "task_succeeded")
    assert "duration_ms" in succeeded
