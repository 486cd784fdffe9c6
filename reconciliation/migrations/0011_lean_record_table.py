"""The record table keeps only the indexes something reads, and checks its references per statement.

Measured on this machine (1M rows INSERT … SELECT into one month, one index at a time; the table
alone 1.4 s): GIN trigram on reference +16.2 s, (tenant, account, instrument, date) +2.5 s, each
unique text key +2.0 s, (tenant, kind, date) +1.2 s, the primary key +1.0 s, batch_id +0.5 s; and
the three row-level foreign-key checks doubled what was left. Ingestion wrote every row through all
of them; docs/records.md keeps the table of what each index was for and why it went:

- ``record_reference_trgm_idx``: only the analysts' "records whose reference looks like X" search
  read it; that search is bounded by the definition's sources and the partitions of its window
  (matching.selectors.records_similar). The fuzzy pass indexes its own small pools.
- ``record_scope_idx`` (kind) and ``record_source_date_idx``: scope freezes select by source and
  date; partition pruning gives the month and ``record_one_active_version`` leads with
  (tenant, source) for what is left.
- ``record_account_instrument_idx``: nothing looks records up by account and instrument; the
  three-way position check aggregates the scope it froze.
- ``record_natural_key_live`` (one row per non-reversed version): the loader refuses a version at
  or below a loaded one (``duplicate_key``) under the source's advisory lock. What reconciliation
  depends on — one ACTIVE version per natural key — stays a unique index.
- ``record_batch_idx`` becomes BRIN: a batch's rows are written together, so batch ids follow the
  physical order; reversal reads them through a summary costing nothing per row.

The row-level foreign keys to tenant, source and batch go: one INSERT writes a million rows, and
three index probes per row cost more than the insert itself. A statement-level check over the
inserted rows (a transition table) was tried and measured at 14 % of a 1M-row load, so the rule is
kept where the rows are made: the loader is the only writer of records and writes the ids of the
batch it holds, under the source's lock. What could orphan records afterwards — deleting their
batch — is refused by a guard trigger (tenants and sources are held by the batch table's own keys).
"""

from importlib import import_module

from django.db import migrations, models

DATE_OR_NULL = import_module("reconciliation.migrations.0003_ingestion").DATE_OR_NULL

FORWARD = """
DROP INDEX record_reference_trgm_idx, record_scope_idx, record_source_date_idx,
    record_account_instrument_idx, record_natural_key_live, record_batch_idx;
CREATE INDEX record_batch_brin ON reconciliation_record USING brin (batch_id);

ALTER TABLE reconciliation_record
    DROP CONSTRAINT reconciliation_record_tenant_id_fkey,
    DROP CONSTRAINT reconciliation_record_source_id_fkey,
    DROP CONSTRAINT reconciliation_record_batch_id_fkey;

CREATE FUNCTION jf_batch_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM reconciliation_record WHERE batch_id = OLD.id) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = format('batch %s has records: reverse it, never delete it', OLD.id);
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER batch_delete_guard BEFORE DELETE ON reconciliation_ingestionbatch
    FOR EACH ROW EXECUTE FUNCTION jf_batch_delete_guard();

DROP FUNCTION jf_date_or_null(text, text, text);  -- rows are typed in Python now (validation.py)
"""

BACKWARD = (
    DATE_OR_NULL
    + """
DROP TRIGGER batch_delete_guard ON reconciliation_ingestionbatch;
DROP FUNCTION jf_batch_delete_guard();
ALTER TABLE reconciliation_record
    ADD FOREIGN KEY (tenant_id) REFERENCES jfintech_tenant (id) DEFERRABLE INITIALLY DEFERRED,
    ADD FOREIGN KEY (source_id) REFERENCES reconciliation_datasource (id) DEFERRABLE INITIALLY DEFERRED,
    ADD FOREIGN KEY (batch_id) REFERENCES reconciliation_ingestionbatch (id) DEFERRABLE INITIALLY DEFERRED;
DROP INDEX record_batch_brin;
CREATE INDEX record_batch_idx ON reconciliation_record (batch_id);
CREATE UNIQUE INDEX record_natural_key_live
    ON reconciliation_record (tenant_id, source_id, external_id, version, business_date)
    WHERE status <> 'reversed';
CREATE INDEX record_account_instrument_idx
    ON reconciliation_record (tenant_id, account, instrument, business_date);
CREATE INDEX record_source_date_idx
    ON reconciliation_record (tenant_id, source_id, business_date) WHERE status = 'active';
CREATE INDEX record_scope_idx
    ON reconciliation_record (tenant_id, kind, business_date) WHERE status = 'active';
CREATE INDEX record_reference_trgm_idx ON reconciliation_record USING gin (reference gin_trgm_ops)
    WHERE status = 'active' AND reference <> '';
"""
)


def _unconstrained(model):
    return models.ForeignKey(db_constraint=False, on_delete=models.DO_NOTHING, related_name="+", to=model)


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0010_run_scope_account_hash")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField("record", "tenant", _unconstrained("jfintech.tenant")),
                migrations.AlterField("record", "source", _unconstrained("reconciliation.datasource")),
                migrations.AlterField("record", "batch", _unconstrained("reconciliation.ingestionbatch")),
            ],
        )
    ]
