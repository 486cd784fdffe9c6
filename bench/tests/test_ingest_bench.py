"""CI smoke run of bench/ingest.py at 10k rows: it runs end to end and prints figures (no timing checks)."""

import json
import os
import subprocess
import sys

import pytest

from jfintech.testing.processes import ROOT, database_url_for_current_connection


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ingest_benchmark_runs_at_10k_rows(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_current_connection(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "BENCH_RESULTS": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--rows", "10000", "--repeat", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for scenario in ("trades CSV", "settlements CSV", "camt.053", "MT940"):
        assert scenario in run.stdout
    assert "!!" not in run.stdout, run.stdout  # every scenario loaded every row
    results = json.loads((tmp_path / "ingest.json").read_text())["results"]
    assert [r["loads"][0]["accepted"] for r in results] == [10000, 10000, 1000, 1000]
    # What is measured is the direct path (accepted rows COPYed straight into the record table).
    assert all("direct_s" in r["loads"][0]["timings"] for r in results)
