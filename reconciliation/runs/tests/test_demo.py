import io

import pytest

from jfintech.tenancy.demo import seed_demo_tenant
from reconciliation.ingestion.demo import seed_ingestion_demo
from reconciliation.runs.demo import seed_recon_demo
from reconciliation.runs.models import Break, Definition, Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_definitions_run_over_the_demo_month_and_print_their_summaries():
    seed_demo_tenant(io.StringIO())
    seed_ingestion_demo(io.StringIO())
    out = io.StringIO()
    seed_recon_demo(out)
    assert out.getvalue().count("demo reconciliation") == 2, out.getvalue()
    runs = {r.definition.name: r for r in Run.objects.select_related("definition")}
    assert set(runs) == {"securities-3way", "gl-vs-bank"}
    for name, run in runs.items():
        assert run.status == "completed", run.error
        assert run.matched > 0
        assert run.conservation["ok"] is True
        assert f"{name} as of {run.as_of}: run {run.pk} completed" in out.getvalue()
    # The realistic breaks of the demo data show up as what they are.
    securities = runs["securities-3way"].breaks_by_type
    assert {"missing_right", "amount_mismatch", "date_mismatch", "position_break"} <= set(securities)
    cash = runs["gl-vs-bank"].breaks_by_type
    assert {"missing_left", "missing_right", "amount_mismatch"} <= set(cash)
    assert all(d.schedule is not None for d in Definition.objects.all())
    # Idempotent: seeding again runs nothing new.
    seed_recon_demo(io.StringIO())
    assert Run.objects.count() == 2
    assert Break.objects.filter(run__definition__name="gl-vs-bank").exists()
