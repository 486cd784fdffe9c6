import pytest

from filings.tests.factories import TenantFactory, configure, load_parties


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="filing-bank")


@pytest.fixture
def configured(tenant):
    configure(tenant, rates=[("EUR", "2026-11-20", "1.1000")])
    load_parties(tenant)
    return tenant


@pytest.fixture
def gunicorn(tmp_path):
    from exceptions.tests.test_browser import _answers
    from jfintech.testing import processes
    from jfintech.testing.processes import wait_until

    server = processes.gunicorn_server(tmp_path)
    server.start()
    try:
        wait_until(lambda: _answers(server.extra["url"] + "/livez"), timeout=120, message="gunicorn not up")
        yield server
    finally:
        server.stop()
