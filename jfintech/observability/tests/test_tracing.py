"""One trace across processes: API request -> chord header tasks (real workers) -> chord callback,
with the SQL each of them ran, and the workers' log lines pointing into that trace."""

import pytest

from jfintech.health.models import PipelineCheck
from jfintech.testing.processes import read_spans, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

QUEUES = {"default", "ingest", "reconciliation", "fetch"}


def _sql(spans, parent, statement_prefix):
    return [
        s for s in spans
        if s["parent_span_id"] == parent["span_id"] and s["kind"] == "CLIENT"
        and s["attributes"].get("db.system") == "postgresql"
        and s["attributes"].get("db.statement", "").startswith(statement_prefix)
    ]  # fmt: skip


def test_one_trace_from_request_through_chord_headers_callback_and_sql(
    staff_client, celery_workers, observability_dir
):
    response = staff_client.post("/api/v1/health/pipeline-checks/")
    assert response.status_code == 202
    started = response.json()
    trace_id = started["trace_id"]
    check = wait_until(
        lambda: PipelineCheck.objects.exclude(status="pending").filter(pk=started["id"]).first(), timeout=60
    )
    assert check.status == "completed", check.error

    def trace_spans():
        spans = [s for s in read_spans(observability_dir / "spans") if s["trace_id"] == trace_id]
        callback_done = any(
            s["name"] == "run/health.pipeline_complete" and s["attributes"].get("celery.state") == "SUCCESS"
            for s in spans
        )
        return spans if callback_done else None

    spans = wait_until(trace_spans, timeout=20, message="callback span not exported")
    by_id = {s["span_id"]: s for s in spans}

    # One root: the API request. Every other span hangs off it through its parents.
    (root,) = [s for s in spans if s["parent_span_id"] is None]
    assert root["kind"] == "SERVER"
    assert root["name"].startswith("POST")
    for span in spans:
        hops, node = 0, span
        while node["parent_span_id"] is not None:
            node = by_id[node["parent_span_id"]]  # KeyError = a broken link in the trace
            hops += 1
            assert hops < 50
        assert node is root

    # Chord headers: the request published one probe per queue; each ran in a worker and wrote its part.
    probes = [s for s in spans if s["name"] == "run/health.pipeline_probe"]
    assert {p["attributes"]["messaging.destination"] for p in probes} == QUEUES
    for probe in probes:
        publish = by_id[probe["parent_span_id"]]
        assert publish["kind"] == "PRODUCER"
        assert publish["name"] == "apply_async/health.pipeline_probe"
        assert publish["parent_span_id"] == root["span_id"]
        assert probe["pid"] != root["pid"]
        (insert,) = _sql(spans, probe, 'INSERT INTO "jfintech_pipelinecheckpart"')
        assert insert["pid"] == probe["pid"]

    # Callback: published from a worker by the last header task, ran in a worker, moved the check.
    (callback,) = [s for s in spans if s["name"] == "run/health.pipeline_complete"
                   and s["attributes"].get("celery.state") == "SUCCESS"]  # fmt: skip
    publish = by_id[callback["parent_span_id"]]
    assert publish["name"] == "apply_async/health.pipeline_complete"
    assert by_id[publish["parent_span_id"]] in probes
    assert _sql(spans, callback, 'UPDATE "jfintech_pipelinecheck"')
    assert len({s["pid"] for s in spans}) >= 3  # the test's request, prefork children, the threads worker

    # Logs: "task_started" is logged inside the task's span (receiver order), so the line names
    # the exact span; and the request's request_id/user_id travelled with the task.
    records = celery_workers["main"].log_records() + celery_workers["fetch"].log_records()
    request_id = next(r["request_id"] for r in records if r.get("trace_id") == trace_id and "request_id" in r)
    for run in [*probes, callback]:
        lines = [r for r in records if r.get("span_id") == run["span_id"]]
        events = {r["event"] for r in lines}
        assert {"task_started", "task_succeeded"} <= events, (run["name"], events)
        for line in lines:
            assert line["trace_id"] == trace_id
            assert line["task"] == run["attributes"]["celery.task_name"]
            assert line["task_id"]
            assert line["request_id"] == request_id
            assert line["user_id"] == staff_client.user.pk
            assert line["service.name"]
