"""CI smoke run of bench/outcome_writes.py at 10k pairs: every variant writes what it says on copies
of today's tables (no timing checks)."""

import json

import pytest
from django.db import connection

from bench.outcome_writes import VARIANTS
from bench.tests.smoke import run_benchmark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_outcome_writes_benchmark_times_every_variant_and_the_floor(tmp_path):
    run_benchmark("outcome_writes", "--pairs", "10000", "--rounds", "1", results=str(tmp_path), timeout=300)
    results = json.loads((tmp_path / "outcome_writes.json").read_text())
    assert results["pairs"] == 10_000
    assert results["floor"]["pairs"] > 0
    assert set(results["writes"]) == set(VARIANTS)
    assert set(results["parallel"]) == {"one backend", "two backends, one table", "two backends, two tables"}
    assert all(seconds > 0 for seconds in [*results["writes"].values(), *results["parallel"].values()])
    # Each insert wrote its rows (the benchmark checks the counts); nothing of its scratch tables
    # is left in the database it was given.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename IN ('t', 't2', 'bench_pairs')")
        assert cursor.fetchone()[0] == 0
