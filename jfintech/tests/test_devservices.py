"""The embedded path a fresh machine takes: PostgreSQL 18 with contrib, and Redis, from wheels."""

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
