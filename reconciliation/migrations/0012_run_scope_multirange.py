"""The frozen scope becomes one multirange of record ids per run and side (RunScope's docstring has
the measurements). Existing scopes are converted both ways."""

import django.db.models.deletion
from django.db import migrations, models

import reconciliation.runs.models

FORWARD = """
ALTER TABLE reconciliation_run_scope RENAME TO reconciliation_run_scope_rows;
ALTER TABLE reconciliation_run_scope_rows RENAME CONSTRAINT reconciliation_run_scope_pkey
    TO reconciliation_run_scope_rows_pkey;
CREATE TABLE reconciliation_run_scope (
    run_id bigint NOT NULL,
    side varchar(8) NOT NULL,
    record_ids int8multirange NOT NULL,
    records bigint NOT NULL,
    PRIMARY KEY (run_id, side)
);
-- A side with no open items froze no row before; it has an empty one from now on.
INSERT INTO reconciliation_run_scope (run_id, side, record_ids, records)
SELECT run_id, side, range_agg(int8range(record_id, record_id, '[]')), count(*)
FROM reconciliation_run_scope_rows GROUP BY run_id, side;
DROP TABLE reconciliation_run_scope_rows;
"""

BACKWARD = """
ALTER TABLE reconciliation_run_scope RENAME TO reconciliation_run_scope_ranges;
ALTER TABLE reconciliation_run_scope_ranges RENAME CONSTRAINT reconciliation_run_scope_pkey
    TO reconciliation_run_scope_ranges_pkey;
CREATE TABLE reconciliation_run_scope (
    business_date date NOT NULL,
    side varchar(8) NOT NULL,
    record_id bigint NOT NULL,
    run_id bigint NOT NULL,
    account_hash integer,
    PRIMARY KEY (run_id, record_id)
);
INSERT INTO reconciliation_run_scope (business_date, side, record_id, run_id, account_hash)
SELECT r.business_date, s.side, r.id, s.run_id, hashtext(r.account)
FROM reconciliation_run_scope_ranges s
CROSS JOIN LATERAL unnest(s.record_ids) ids
CROSS JOIN LATERAL generate_series(lower(ids), upper(ids) - 1) AS g(id)
JOIN reconciliation_record r ON r.id = g.id;
DROP TABLE reconciliation_run_scope_ranges;
"""


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0011_lean_record_table")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.DeleteModel("RunScope"),
                migrations.CreateModel(
                    name="RunScope",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "run", "side", blank=True, editable=False, primary_key=True, serialize=False
                            ),
                        ),
                        (
                            "side",
                            models.CharField(
                                max_length=8,
                                choices=[("left", "Left"), ("right", "Right"), ("position", "Position")],
                            ),
                        ),
                        ("record_ids", reconciliation.runs.models.Int8MultiRangeField()),
                        ("records", models.BigIntegerField()),
                        (
                            "run",
                            models.ForeignKey(
                                db_constraint=False,
                                db_index=False,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="+",
                                to="reconciliation.run",
                            ),
                        ),
                    ],
                    options={"db_table": "reconciliation_run_scope"},
                ),
            ],
        )
    ]
