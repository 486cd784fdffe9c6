"""The embedded path a fresh machine takes: PostgreSQL 18 with contrib, and Redis, from wheels."""

import os
import subprocess
import sys

import psycopg
import pytest
import redis

from jfintech import devservices


@pytest.mark.slow
def test_embedded_services_start_are_reused_and_stop(tmp_path):
    base = tmp_path / "local"
    try:
        urls = devservices.ensure(base)
        with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
            assert conn.info.server_version >= 150000
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            assert conn.execute("SELECT similarity('ACME LTD', 'ACME LIMITED')").fetchone()[0] > 0.3
        assert redis.Redis.from_url(urls["REDIS_URL"]).ping()

        assert devservices.ensure(base) == urls  # reused, same ports, not a second server
    finally:
        stopped = devservices.stop(base)
    assert set(stopped) == {"postgres", "redis"}
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(urls["DATABASE_URL"], connect_timeout=2)


def test_only_the_process_that_claimed_the_embedded_servers_may_stop_them(monkeypatch, tmp_path):
    """`serve` stops the embedded servers when its own process claimed them (the demo), never when
    it inherited them from a parent (a test suite running on them)."""
    monkeypatch.setenv("JFINTECH_EMBEDDED_SERVICES", f"{os.getpid()}:{tmp_path}")
    assert devservices.claimed_here() == tmp_path
    child = subprocess.run(
        [sys.executable, "-c", "from jfintech import devservices; print(devservices.claimed_here())"],
        capture_output=True, text=True, check=True, env=dict(os.environ),
    )  # fmt: skip
    assert child.stdout.strip() == "None"
    monkeypatch.delenv("JFINTECH_EMBEDDED_SERVICES")
    assert devservices.claimed_here() is None
