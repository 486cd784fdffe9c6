"""The record table, range-partitioned by month on business_date (SQL: Django has no notion of it).

- PRIMARY KEY (id, business_date): PostgreSQL requires the partition key in every unique index on
  a partitioned table. The ORM model keeps a single-field id (bigserial: unique in practice).
- The natural key begins with the tenant and includes the partition key. At most one ACTIVE version
  of a natural key (partial unique index); amendments supersede, reversals keep history.
- Indexes are declared on the parent, so each partition gets them as it is created. On a parent that
  already has large partitions, add an index with CREATE INDEX ... ON ONLY parent, then CREATE INDEX
  CONCURRENTLY per partition and ATTACH PARTITION each (see docs/records.md).
- No DEFAULT partition: an out-of-window date is a loud rejection at ingestion.
- Partitions are created by reconciliation.partitions.ensure_partitions in their own short
  transactions (creating one locks the parent), never here for "all time" and never inside a load.
"""

import django.db.models.deletion
from django.db import migrations, models

CREATE = """
CREATE TABLE reconciliation_record (
    id            bigserial NOT NULL,
    tenant_id     bigint NOT NULL REFERENCES jfintech_tenant (id) DEFERRABLE INITIALLY DEFERRED,
    source_id     bigint NOT NULL REFERENCES reconciliation_datasource (id) DEFERRABLE INITIALLY DEFERRED,
    batch_id      bigint NOT NULL REFERENCES reconciliation_ingestionbatch (id) DEFERRABLE INITIALLY DEFERRED,
    kind          varchar(16) NOT NULL
                  CHECK (kind IN ('position', 'trade', 'settlement', 'ledger', 'statement')),
    business_date date NOT NULL,
    external_id   varchar(128) NOT NULL CHECK (external_id <> ''),
    version       integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    status        varchar(12) NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'superseded', 'reversed')),
    account       varchar(64) NOT NULL DEFAULT '',
    instrument    varchar(64) NOT NULL DEFAULT '',
    reference     varchar(140) NOT NULL DEFAULT '',
    counterparty  varchar(140) NOT NULL DEFAULT '',
    currency      varchar(3) NOT NULL DEFAULT '',
    amount        numeric(24, 6),
    quantity      numeric(28, 8),
    trade_date    date,
    value_date    date,
    description   text NOT NULL DEFAULT '',
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    line_no       integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, business_date),
    CONSTRAINT record_natural_key UNIQUE (tenant_id, source_id, external_id, version, business_date)
) PARTITION BY RANGE (business_date);

CREATE UNIQUE INDEX record_one_active_version
    ON reconciliation_record (tenant_id, source_id, external_id, business_date)
    WHERE status = 'active';
CREATE INDEX record_scope_idx
    ON reconciliation_record (tenant_id, kind, business_date) WHERE status = 'active';
CREATE INDEX record_source_date_idx
    ON reconciliation_record (tenant_id, source_id, business_date) WHERE status = 'active';
CREATE INDEX record_batch_idx ON reconciliation_record (batch_id);
CREATE INDEX record_account_instrument_idx
    ON reconciliation_record (tenant_id, account, instrument, business_date);
"""

DROP = "DROP TABLE IF EXISTS reconciliation_record CASCADE;"


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0001_initial"), ("jfintech", "0002_tenancy_audit")]

    # The ORM's view of the table (so flush/truncate in tests and the admin know it); the database
    # side is the SQL above.
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE, DROP)],
            state_operations=[
                migrations.CreateModel(
                    name='Record',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('kind', models.CharField(choices=[('position', 'Position'), ('trade', 'Trade'), ('settlement', 'Settlement'), ('ledger', 'Ledger'), ('statement', 'Statement')], max_length=16)),
                        ('business_date', models.DateField()),
                        ('external_id', models.CharField(max_length=128)),
                        ('version', models.IntegerField(default=1)),
                        ('status', models.CharField(choices=[('active', 'Active'), ('superseded', 'Superseded'), ('reversed', 'Reversed')], default='active', max_length=12)),
                        ('account', models.CharField(blank=True, max_length=64)),
                        ('instrument', models.CharField(blank=True, max_length=64)),
                        ('reference', models.CharField(blank=True, max_length=140)),
                        ('counterparty', models.CharField(blank=True, max_length=140)),
                        ('currency', models.CharField(blank=True, max_length=3)),
                        ('amount', models.DecimalField(blank=True, decimal_places=6, max_digits=24, null=True)),
                        ('quantity', models.DecimalField(blank=True, decimal_places=8, max_digits=28, null=True)),
                        ('trade_date', models.DateField(blank=True, null=True)),
                        ('value_date', models.DateField(blank=True, null=True)),
                        ('description', models.TextField(blank=True)),
                        ('attributes', models.JSONField(blank=True, default=dict)),
                        ('line_no', models.IntegerField(blank=True, null=True)),
                        ('created_at', models.DateTimeField()),
                    ],
                    options={
                        'db_table': 'reconciliation_record',
                    },
                ),
                migrations.AddField(
                    model_name="record",
                    name="batch",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="reconciliation.ingestionbatch",
                    ),
                ),
                migrations.AddField(
                    model_name="record",
                    name="source",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="reconciliation.datasource",
                    ),
                ),
                migrations.AddField(
                    model_name="record",
                    name="tenant",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="jfintech.tenant"
                    ),
                ),
            ],
        )
    ]
