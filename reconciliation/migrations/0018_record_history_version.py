"""An index for the staged duplicate check's history lookup (docs/scaling.md, finding F1).

The check refuses a version at or below any non-reversed version of the key. Active versions are
read through ``record_one_active_version``; superseded and linked ones had no index since 0011
dropped ``record_natural_key_live``, so every staged file read the whole months it touched, every
tenant's rows in them. ``record_history_version`` is partial on the statuses only history has:
a load inserts its rows ``active`` and writes nothing into it (bench.ingest: a 1M-row load stays
at 2.0-2.1x a bare COPY); only an amendment's superseded row and a linked re-report enter it.

PostgreSQL cannot build an index CONCURRENTLY on a partitioned table, and a plain build holds a
lock that stops ingestion while it reads every partition. So the parent's index is made ON ONLY
(invalid, nothing built), each partition's is built CONCURRENTLY and attached; the parent's becomes
valid with the last attach, and partitions created later get it automatically. Hence a
non-atomic migration; re-running it after an interruption drops a half-built (invalid) partition
index and builds it again.
"""

from django.db import migrations

INDEX = "record_history_version"
COLUMNS = "(tenant_id, source_id, external_id, business_date) WHERE status IN ('superseded', 'linked')"


def forward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON ONLY reconciliation_record {COLUMNS}")
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'reconciliation_record'::regclass ORDER BY c.relname"
        )
        for (partition,) in cursor.fetchall():
            index = f"{partition}_history"
            cursor.execute(
                "SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(%s)", [index]
            )
            found = cursor.fetchone()
            if found and not found[0]:
                cursor.execute(f'DROP INDEX CONCURRENTLY "{index}"')
            cursor.execute(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{partition}" {COLUMNS}')
            cursor.execute(
                "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) AND inhparent = %s::regclass",
                [index, INDEX],
            )
            if not cursor.fetchone():
                cursor.execute(f'ALTER INDEX {INDEX} ATTACH PARTITION "{index}"')


def backward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("reconciliation", "0017_source_re_reports")]

    operations = [migrations.RunPython(forward, backward)]
