"""A real reconciliation run is one trace across processes (issue 8): the start, the chord's fetch
headers in the fetch worker, the compute callback in the reconciliation worker, their SQL, and
business spans carrying recon.run_id / recon.definition; the workers' log lines point into it."""

import pytest
from opentelemetry import trace

from jfintech.testing.processes import read_spans, wait_until
from reconciliation.runs import services
from reconciliation.runs.models import Run, RunStatus
from reconciliation.runs.tests.factories import ACTOR, AS_OF, records
from reconciliation.runs.tests.test_matching import two_way

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


def test_a_run_is_one_trace_with_run_attributes_across_the_chord(celery_workers, observability_dir):
    defn, left, right = two_way()
    records(left, {"reference": "A", "amount": "100.00"}, {"reference": "B", "amount": "5"})
    records(right, {"reference": "A", "amount": "100.00"})

    # Stands in for the API request / beat tick that starts a run (the root of its trace).
    with trace.get_tracer("tests").start_as_current_span("start run") as root:
        run = services.run_start(tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF)
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert run.trace_id == trace_id  # stored on the run, shown in the admin

    run = wait_until(
        lambda: Run.objects.filter(pk=run.pk, status__in=["completed", "failed"]).first(), timeout=60
    )
    assert run.status == RunStatus.COMPLETED, run.error

    def spans():
        found = [s for s in read_spans(observability_dir / "spans") if s["trace_id"] == trace_id]
        names = {s["name"] for s in found}
        return found if {"recon.compute", "recon.fetch"} <= names else None

    spans = wait_until(spans, timeout=20, message="run spans not exported")
    by_id = {s["span_id"]: s for s in spans}
    run_id = str(run.pk)

    # The chord: both fetch headers ran in the fetch worker, the callback in the reconciliation one.
    fetches = [
        s for s in spans if s["name"] in {"run/reconciliation.fetch_left", "run/reconciliation.fetch_right"}
    ]
    assert {s["name"] for s in fetches} == {"run/reconciliation.fetch_left", "run/reconciliation.fetch_right"}
    computes = [s for s in spans if s["name"] == "run/reconciliation.compute_reconciliation"]
    assert computes
    for task_span in fetches + computes:
        assert task_span["kind"] == "CONSUMER"
        assert task_span["attributes"]["recon.run_id"] == run_id  # bind_run_context on the task's span
        assert by_id[task_span["parent_span_id"]]["kind"] == "PRODUCER"
    assert {s["pid"] for s in fetches}.isdisjoint({s["pid"] for s in computes} | {root_pid(spans)})

    # Business spans inside the tasks carry the run's identity, and hold the SQL they ran.
    for name, parents in (("recon.fetch", fetches), ("recon.compute", computes)):
        business = [s for s in spans if s["name"] == name]
        assert business, name
        for span in business:
            assert span["attributes"]["recon.run_id"] == run_id
            assert span["attributes"]["recon.definition"] == defn.name
            assert span["parent_span_id"] in {p["span_id"] for p in parents}
        sql = [s for s in spans if s["parent_span_id"] in {b["span_id"] for b in business}
               and s["attributes"].get("db.system") == "postgresql"]  # fmt: skip
        assert sql, f"no SQL span under {name}"

    # Logs: every line the workers wrote for this run carries the trace and the run id.
    lines = [r for w in celery_workers.values() for r in w.log_records() if r.get("trace_id") == trace_id]
    started = [r for r in lines if r["event"] == "task_started"]
    assert {r["task"] for r in started} >= {"reconciliation.fetch_left", "reconciliation.fetch_right",
                                            "reconciliation.compute_reconciliation"}  # fmt: skip
    task_span_ids = {s["span_id"] for s in fetches + computes}
    assert {r["span_id"] for r in started} <= task_span_ids
    fetched = [r for r in lines if r["event"] == "recon_side_fetched"]
    assert fetched
    assert all(r["recon.run_id"] == run.pk for r in fetched)


def root_pid(spans):
    return next(s["pid"] for s in spans if s["parent_span_id"] is None)
