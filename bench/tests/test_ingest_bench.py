"""CI smoke run of bench/ingest.py at 10k rows: it runs end to end and prints figures (no timing checks)."""

import json

import pytest

from bench.tests.smoke import run_benchmark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ingest_benchmark_runs_at_10k_rows(tmp_path):
    run = run_benchmark(
        "ingest", "--rows", "10000", "--repeat", "1", results=str(tmp_path), own_database=True
    )
    for scenario in ("trades CSV", "settlements CSV", "camt.053", "MT940"):
        assert scenario in run.stdout
    assert "!!" not in run.stdout, run.stdout  # every scenario loaded every row
    figures = json.loads((tmp_path / "ingest.json").read_text())
    results = figures["results"]
    assert [r["loads"][0]["accepted"] for r in results] == [10000, 10000, 1000, 1000]
    # What is measured is the direct path (accepted rows COPYed straight into the record table).
    assert all("direct_s" in r["loads"][0]["timings"] for r in results)
    # The staged scenario: a 10-row file into the loaded month took the staged path, and its
    # duplicate check found the 5 repeated keys.
    assert "staged, 1/10k" in run.stdout
    (staged,) = figures["staged"]["loads"]
    assert (staged["status"], staged["rejected"], staged["accepted"]) == ("loaded", 5, 5)
    assert "stage_s" in staged["timings"]
