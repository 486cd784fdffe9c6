from datetime import date

import pytest
from django.db import IntegrityError, connection, transaction

from jfintech.tenancy.models import Tenant
from reconciliation.models import DataSource, IngestionBatch
from reconciliation.partitions import ensure_partitions, existing_partitions, partition_name

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = (
    "INSERT INTO reconciliation_record (tenant_id, source_id, batch_id, kind, business_date, external_id,"
    " version, status, currency, amount) VALUES (%s, %s, %s, 'trade', %s, %s, %s, %s, 'EUR', 10.00)"
)


@pytest.fixture
def batch():
    tenant = Tenant.objects.create(slug="t1", name="T1")
    source = DataSource.objects.create(tenant=tenant, name="trades", kind="trade")
    return IngestionBatch.objects.create(tenant=tenant, source=source, sha256="0" * 64)


def _insert(batch, day, ext, version=1, status="active"):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(INSERT, [batch.tenant_id, batch.source_id, batch.pk, day, ext, version, status])


def test_partitions_are_created_once_per_month_and_refused_inside_a_transaction():
    wanted = [partition_name(date(2031, m, 1)) for m in (1, 2, 3)]
    before = existing_partitions()  # the test database is reused: earlier runs leave partitions
    created = ensure_partitions(date(2031, 1, 15), date(2031, 3, 1))
    assert created == [name for name in wanted if name not in before]
    assert set(wanted) <= existing_partitions()
    assert ensure_partitions(date(2031, 1, 1), date(2031, 3, 31)) == []
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside a transaction"):
        ensure_partitions(date(2031, 4, 1), date(2031, 4, 1))


def test_a_row_without_a_partition_fails_loudly_there_is_no_default_partition(batch):
    with pytest.raises(IntegrityError, match="no partition"):
        _insert(batch, date(1999, 1, 4), "T-1")


def test_natural_key_and_one_active_version_are_enforced_by_postgres(batch):
    ensure_partitions(date(2031, 5, 1), date(2031, 5, 31))
    _insert(batch, date(2031, 5, 4), "T-1")
    with pytest.raises(IntegrityError):
        _insert(batch, date(2031, 5, 4), "T-1")  # same natural key and version
    with pytest.raises(IntegrityError):
        _insert(batch, date(2031, 5, 4), "T-1", version=2)  # a second ACTIVE version
    _insert(batch, date(2031, 5, 4), "T-1", version=2, status="superseded")  # history is fine
