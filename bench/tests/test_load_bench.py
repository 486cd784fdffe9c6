"""CI smoke run of bench/load.py: a few seconds a phase against its own gunicorn and worker. No timing
checks; what must hold at any rate does: no 500, no hung request, every accepted run completed."""

import json

import pytest

from bench.tests.smoke import run_benchmark


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_load_benchmark_runs_every_phase_without_500s_or_hung_requests(tmp_path):
    run = run_benchmark(
        "load", "--rates", "4", "--step-seconds", "3", "--phase-seconds", "3", "--definitions", "3",
        "--small-runs", "2", "--small-records", "50", "--hang-seconds", "20",
        results=str(tmp_path), timeout=300,
    )  # fmt: skip
    assert "!!" not in run.stdout, run.stdout
    results = json.loads((tmp_path / "load.json").read_text())
    phases = results["steps"] + results["overload"]
    assert [p["target_rps"] for p in results["overload"]] == [
        2 * results["capacity_rps"],
        4 * results["capacity_rps"],
    ]
    for phase in phases:
        assert phase["requests"] > 0
        assert (phase["server_errors"], phase["hung"]) == (0, 0), phase
    for endpoint in ("case list", "run read", "ingest push", "run start"):  # the whole mix was driven
        assert sum(sum(p["by_endpoint"][endpoint].values()) for p in phases) > 0, endpoint
    assert results["small_runs"]["failed"] == 0
    assert results["failures"] == []
