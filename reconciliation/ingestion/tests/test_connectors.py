from datetime import date

import pytest
from prometheus_client import REGISTRY

from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.connectors import fetch_for_window
from reconciliation.ingestion.tests.factories import ACTOR, TRADE_HEADER, SourceFactory
from reconciliation.ingestion.tests.upstream import Upstream
from reconciliation.models import IngestionBatch, Record

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = date.today()
RECORDS = [
    {"external_id": f"H{i}", "business_date": TODAY.isoformat(), "amount": f"{i}.10", "currency": "USD"}
    for i in range(3)
]


def http_source(url, **cfg):
    connector = {
        "type": "http", "url": url, "timeout_s": 0.3, "connect_timeout_s": 0.3, "retries": 2,
        "backoff_s": 0.01, "backoff_max_s": 0.05, "breaker_threshold": 2, "breaker_cooldown_s": 30, **cfg,
    }  # fmt: skip
    return SourceFactory(format="json", connector=connector)


def fetch(source):
    return fetch_for_window(source=source, date_from=TODAY, date_to=TODAY, actor=ACTOR)


def count(outcome, connector="http"):
    return (
        REGISTRY.get_sample_value("connector_requests_total", {"connector": connector, "outcome": outcome})
        or 0
    )


def test_database_connector_loads_nothing():
    result = fetch(SourceFactory())
    assert (result.batch_id, result.rows_loaded, result.connector) == (None, 0, "database")


def test_http_pull_loads_through_the_batch_path_with_the_window_as_parameters():
    with Upstream(RECORDS) as upstream:
        source = http_source(upstream.url)
        result = fetch(source)
        assert f"date_from={TODAY.isoformat()}" in upstream.requests[0]
        again = fetch(source)  # the same payload again: a duplicate batch, nothing doubled
    assert (result.connector, result.rows_loaded) == ("http", 3)
    assert IngestionBatch.objects.get(pk=again.batch_id).status == "duplicate"
    assert Record.objects.filter(source=source).count() == 3


def test_http_failures_are_retried_with_backoff_and_counted():
    with Upstream(RECORDS) as upstream:
        upstream.script = ["500", "slow"]
        before_error, before_timeout = count("http_error"), count("timeout")
        result = fetch(http_source(upstream.url))
        assert len(upstream.requests) == 3
    assert result.rows_loaded == 3
    assert count("http_error") == before_error + 1
    assert count("timeout") == before_timeout + 1


def test_a_client_error_is_not_retried_and_the_breaker_opens_after_repeated_failures():
    with Upstream(RECORDS) as upstream:
        source = http_source(upstream.url)
        upstream.script = ["404"]
        with pytest.raises(ApplicationError, match="HTTP 404") as first:
            fetch(source)
        assert first.value.code == "connector_failed"
        assert len(upstream.requests) == 1
        upstream.script = ["badjson"]
        with pytest.raises(ApplicationError, match="invalid JSON"):
            fetch(source)
        hits = len(upstream.requests)
        before = count("circuit_open")
        with pytest.raises(ApplicationError) as refused:
            fetch(source)
        assert refused.value.code == "circuit_open"
        assert len(upstream.requests) == hits  # the upstream was spared
    assert count("circuit_open") == before + 1
    assert REGISTRY.get_sample_value("connector_circuit_open", {"source_kind": "trade"}) == 1


def test_an_unreachable_upstream_fails_loudly_after_retries():
    with Upstream(RECORDS) as upstream:
        url = upstream.url
    with pytest.raises(ApplicationError, match="connection error"):
        fetch(http_source(url))


def test_directory_drop_ingests_every_file_and_moves_it(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_text(TRADE_HEADER + f"A1,{TODAY},X,I,1,EUR,\n")
    (drop / "b.csv").write_text("not,the,right,header\n")
    source = SourceFactory(connector={"type": "directory", "path": str(drop), "pattern": "*.csv"})
    result = fetch(source)
    assert (result.connector, result.rows_loaded, len(result.batch_ids)) == ("directory", 1, 2)
    assert not list(drop.glob("*.csv"))
    assert [p.name.split("-", 1)[1] for p in (drop / "processed").iterdir()] == ["a.csv"]
    assert [p.name.split("-", 1)[1] for p in (drop / "rejected").iterdir()] == ["b.csv"]
    assert fetch(source).batch_id is None
