from datetime import date

import pytest

from reconciliation.partitions import add_months, ensure_partitions, month_start


@pytest.fixture(scope="session", autouse=True)
def record_partitions(django_db_setup, django_db_blocker):
    """Partitions for the default tenant window, committed before any test's transaction.

    Tests that run inside a transaction (the non-transactional django_db ones, API requests with
    Idempotency-Key) cannot create partitions themselves: creating one locks the tenant table
    their transaction has written to. Production has the daily beat task for this.
    """
    today = month_start(date.today())
    with django_db_blocker.unblock():
        ensure_partitions(add_months(today, -25), add_months(today, 5))
