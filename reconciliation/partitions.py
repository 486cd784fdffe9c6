"""Monthly partitions of the record table, created ahead and never inside a load.

Creating (or attaching) a partition takes an ACCESS EXCLUSIVE lock on the parent, so it happens in
its own short transaction before a load begins, and ahead of time by a beat task. There is no
DEFAULT partition: a row dated where no partition exists is a loud rejection upstream, never a
row parked somewhere nobody looks.
"""

from datetime import date

from django.db import connection, transaction

RECORD_TABLE = "reconciliation_record"


def month_start(d: date) -> date:
    return d.replace(day=1)


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{RECORD_TABLE}_y{month.year:04d}m{month.month:02d}"


def months_between(first: date, last: date) -> list[date]:
    months, current = [], month_start(first)
    while current <= last:
        months.append(current)
        current = add_months(current, 1)
    return months


def existing_partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [RECORD_TABLE],
        )
        return {row[0] for row in cursor.fetchall()}


def ensure_partitions(first: date, last: date) -> list[str]:
    """Create the monthly partitions covering [first, last]; returns the names it created.

    Must not be called inside another transaction (it would hold the parent's lock for the whole
    load); each partition is its own short transaction. Indexes defined on the parent are created on
    the new partition automatically.
    """
    if connection.in_atomic_block:
        raise RuntimeError("ensure_partitions() must run outside a transaction (it locks the parent)")
    have = existing_partitions()
    created = []
    for month in months_between(first, last):
        name = partition_name(month)
        if name in have:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            create_partition(cursor, month)
        created.append(name)
    return created


def create_partition(cursor, month: date) -> None:
    """One month's partition, on ``cursor``'s connection, which must not be mid-load (see above)."""
    cursor.execute("SET LOCAL lock_timeout = '5s'")
    cursor.execute(
        f'CREATE TABLE IF NOT EXISTS "{partition_name(month)}" PARTITION OF "{RECORD_TABLE}" '
        "FOR VALUES FROM (%s) TO (%s)",
        [month, add_months(month, 1)],
    )
