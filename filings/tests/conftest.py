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
