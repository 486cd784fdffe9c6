"""Running a benchmark at smoke size from a test: its own process, against this test's database."""

import os
import subprocess
import sys

from django.db import connection

from jfintech.testing.processes import ROOT, database_url_for_current_connection


def run_benchmark(module: str, *args: str, results: str, own_database: bool = False, timeout: int = 600):
    """``python -m bench.<module> <args>`` with BENCH_RESULTS=``results``; the benchmark works in
    this test's database (``own_database``: it makes and drops one next to it). Asserts exit 0."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_current_connection(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "BENCH_RESULTS": results,
    }
    if not own_database:
        env["BENCH_DATABASE_NAME"] = connection.settings_dict["NAME"]
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run
