"""CI smoke run of bench/filings.py at 5k cash transactions and a 20-filing batch (no timing checks)."""

import json

import pytest

from bench.tests.smoke import run_benchmark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_filings_benchmark_aggregates_and_validates_a_batch(tmp_path):
    run_benchmark(
        "filings", "--rows", "5000", "--batch", "20", results=str(tmp_path), own_database=True, timeout=600
    )
    results = json.loads((tmp_path / "filings.json").read_text())
    assert results["rows"] == 5000
    assert results["filings"] > 20
    assert results["batch"] == 20
    assert results["lineage_rows"] > results["filings"]
