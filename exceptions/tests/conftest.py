import pytest

from exceptions.tests.factories import TenantFactory
from jfintech.audit import Actor


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="demo-bank")


@pytest.fixture
def system_actor():
    return Actor.for_system("reconciliation")
