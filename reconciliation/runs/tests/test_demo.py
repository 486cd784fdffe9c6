import io

import pytest

from jfintech.tenancy.calendar import tenant_now
from jfintech.tenancy.demo import seed_demo_tenant
from reconciliation.ingestion.demo import INVOICE, seed_ingestion_demo
from reconciliation.models import Record
from reconciliation.runs.demo import FAILED, HISTORY, seed_recon_demo
from reconciliation.runs.models import Break, Definition, MatchItem, Run

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
    _assert_partials_and_references_matched_as_the_rules_say(runs)
    # Idempotent: seeding again runs nothing new.
    seed_recon_demo(io.StringIO())
    assert Run.objects.count() == expected


def _matched(record_ids, definition: str) -> dict[int, str]:
    """Of ``record_ids``, those a run of ``definition`` matched -> the pass that matched them."""
    items = MatchItem.objects.filter(record_id__in=list(record_ids), match__run__definition__name=definition)
    return dict(items.values_list("record_id", "match__pass_name"))


def _in_breaks(record_ids, run) -> set[int]:
    ids = set(record_ids)
    return {i for b in Break.objects.filter(run=run) for i in b.record_ids if i in ids}


def _assert_partials_and_references_matched_as_the_rules_say(runs) -> None:
    last = {r.definition.name: r for r in runs if r.status == "completed"}  # ordered by as_of
    # A trade settled in two halves a day apart matches 1:N; the one whose second half came three
    # business days late is refused by the aggregate pass's date condition and stays a break.
    halves = Record.objects.filter(source__name="custodian-settlements", external_id__regex=r"^ST\d{6}[AB]$")
    assert halves.count() == 4
    matched = _matched(halves.values_list("id", flat=True), "securities-3way")
    assert sorted(matched.values()) == ["partials_2d", "partials_2d"]
    late = halves.exclude(id__in=matched)
    assert {r.external_id[:-1] for r in late} != {r.external_id[:-1] for r in halves.filter(id__in=matched)}
    assert _in_breaks(late.values_list("id", flat=True), last["securities-3way"]) == set(
        late.values_list("id", flat=True)
    )

    # The bank's receipts whose payer said NOTPROVIDED match the ledger by the invoice number found
    # in the remittance text; the statement's copies of notified entries are in no run (linked).
    bank = Record.objects.filter(source__name__in=["bank-camt054", "bank-camt053"])
    from_text = bank.filter(attributes__reference_from=f"remittance /{INVOICE}/")
    by_invoice = _matched(from_text.values_list("id", flat=True), "gl-vs-bank")
    assert len(by_invoice) > 20
    assert set(by_invoice.values()) <= {"exact", "cent_and_day"}
    linked = list(bank.filter(status="linked").values_list("id", flat=True))
    assert linked
    assert not _matched(linked, "gl-vs-bank")
    assert not _in_breaks(linked, last["gl-vs-bank"])
    assert _matched(bank.filter(source__name="bank-camt054").values_list("id", flat=True), "gl-vs-bank")
