"""CI smoke run of bench/reconcile.py at 10k records a side: it runs end to end, finds exactly the
injected breaks, conserves every record and its sharded runs give the unsharded outcome (no timing
checks)."""

import json

import pytest

from bench.tests.smoke import run_benchmark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_reconcile_benchmark_runs_at_10k_and_finds_exactly_the_injected_breaks(tmp_path):
    run = run_benchmark("reconcile", "--sizes", "10000", results=str(tmp_path))
    assert "!!" not in run.stdout, run.stdout
    results = json.loads((tmp_path / "reconcile.json").read_text())["results"]
    assert [r["scenario"] for r in results] == ["two_way", "three_way", "depth"]
    for r in results:
        assert (r["precision"], r["recall"]) == (1.0, 1.0)
        assert r["counts"]["conservation_ok"] is True
        assert r["breaks_found"] == r["breaks_injected"] > 0
    assert {"position_break", "quantity_mismatch", "duplicate"} <= set(results[1]["by_type"])
    # depth: every fuzzy/aggregation group and suggestion found exactly; the sharded runs (one and two
    # worker processes) end with the unsharded run's outcome, record for record.
    groups = results[2]["groups"]
    assert set(groups) == {"fuzzy", "agg_1n", "agg_n1", "agg_mn", "suggested"}
    for g in groups.values():
        assert g["found"] == g["injected"] > 0
        assert (g["precision"], g["recall"]) == (1.0, 1.0)
    # Every scenario also ran sharded on real workers (depth with one and two processes, the others
    # with two: two-way split by reference, three-way by account) to the unsharded run's outcome.
    assert [[s["workers"] for s in r["sharded"]] for r in results] == [[2], [2], [1, 2]]
    for r in results:
        assert {s["digest"][0] for s in r["sharded"]} == {r["digest"][0]}
        assert all(s["shards"] == 4 for s in r["sharded"])
