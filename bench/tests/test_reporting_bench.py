"""CI smoke run of bench/reporting.py at 2,000 cases: both exports stream every row, and the aging
and trends reports answer over the generated history (no timing checks)."""

import json

import pytest

from bench.tests.smoke import run_benchmark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_reporting_benchmark_exports_every_row_and_runs_the_reports(tmp_path):
    run_benchmark("reporting", "--sizes", "2000", "--rounds", "1", results=str(tmp_path), own_database=True)
    results = json.loads((tmp_path / "reporting.json").read_text())["results"]
    exports = {r["what"]: r for r in results if r["what"].startswith("export")}
    assert set(exports) == {"export csv", "export xlsx"}
    assert all(r["rows"] == 2000 and r["bytes"] > 0 for r in exports.values())
    assert {r["what"] for r in results} >= {"aging by type", "trends 60 days"}
