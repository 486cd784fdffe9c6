import io

import pytest

from jfintech.tenancy.calendar import tenant_now
from jfintech.tenancy.demo import seed_demo_tenant
from reconciliation.ingestion.demo import seed_ingestion_demo
from reconciliation.runs.demo import FAILED, HISTORY, seed_recon_demo
from reconciliation.runs.models import Break, Definition, Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_definitions_run_over_the_demo_weeks_and_print_their_summaries():
    seed_demo_tenant(io.StringIO())
    seed_ingestion_demo(io.StringIO())
    out = io.StringIO()
    seed_recon_demo(out)
    expected = sum(len(days) for days in HISTORY.values()) + 1  # and the failed one
    assert out.getvalue().count("demo reconciliation") == expected, out.getvalue()
    runs = list(Run.objects.select_related("definition").order_by("as_of"))
    assert len(runs) == expected
    assert {r.definition.name for r in runs} == {"securities-3way", "gl-vs-bank"}
    (failed,) = [r for r in runs if r.status == "failed"]
    assert (failed.definition.name, failed.error_code) == (FAILED[0], "fetch_timeout")
    assert f"run {failed.pk} failed: {FAILED[2]}" in out.getvalue()
    for run in runs:
        if run is failed:
            continue
        assert run.status == "completed", run.error
        assert run.conservation["ok"] is True
        assert f"{run.definition.name} as of {run.as_of}: run {run.pk} completed" in out.getvalue()
        # Placed on its day: it ran on its as-of date.
        assert tenant_now(run.tenant, run.completed_at).date() == run.as_of
    assert all(r.matched > 0 for r in runs if r.as_of == runs[0].as_of)
    # The realistic breaks of the demo data show up as what they are.
    found = {
        name: set(Break.objects.filter(run__definition__name=name).values_list("break_type", flat=True))
        for name in HISTORY
    }
    assert found["securities-3way"] >= {
        "missing_left",
        "missing_right",
        "amount_mismatch",
        "quantity_mismatch",
        "date_mismatch",
        "position_break",
    }
    assert found["gl-vs-bank"] >= {"missing_left", "missing_right", "amount_mismatch", "duplicate"}
    assert all(d.schedule is not None for d in Definition.objects.all())
    # Idempotent: seeding again runs nothing new.
    seed_recon_demo(io.StringIO())
    assert Run.objects.count() == expected
