"""A source may re-report another's entries (DataSource.re_reports); the later copy of an entry is a
record with status ``linked``; a batch counts its linked rows.

The record table's status CHECK was written by SQL in migration 0002 (the table is partitioned), so
it is widened here by SQL too. Widening cannot fail on existing rows, so the new constraint is added
NOT VALID: no scan of every partition under the ACCESS EXCLUSIVE lock the ALTER takes (which would
stop ingestion for the whole scan); new rows and new partitions are checked as before. Run
``ALTER TABLE reconciliation_record VALIDATE CONSTRAINT reconciliation_record_status_check`` at a
quiet hour if a validated flag is wanted (it scans under a lock that lets writes through).
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
ALTER TABLE reconciliation_record
    DROP CONSTRAINT reconciliation_record_status_check,
    ADD CONSTRAINT reconciliation_record_status_check
        CHECK (status IN ('active', 'superseded', 'reversed', 'linked')) NOT VALID;
"""
# Backward: the code before this migration knows no links, so a linked copy becomes an active
# record again (its own source has no other active record of its key: no unique violation).
BACKWARD = """
UPDATE reconciliation_record SET status = 'active' WHERE status = 'linked';
ALTER TABLE reconciliation_record
    DROP CONSTRAINT reconciliation_record_status_check,
    ADD CONSTRAINT reconciliation_record_status_check
        CHECK (status IN ('active', 'superseded', 'reversed')) NOT VALID;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0016_source_accept_empty"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasource",
            name="re_reports",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="re_reported_by",
                to="reconciliation.datasource",
            ),
        ),
        migrations.AddField(
            model_name="ingestionbatch",
            name="rows_linked",
            field=models.IntegerField(default=0),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name="record",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("active", "Active"),
                            ("superseded", "Superseded"),
                            ("reversed", "Reversed"),
                            ("linked", "Linked"),
                        ],
                        default="active",
                        max_length=12,
                    ),
                ),
            ],
        ),
        migrations.AlterField(
            model_name="rejection",
            name="reason",
            field=models.CharField(
                choices=[
                    ("malformed_row", "Malformed Row"),
                    ("missing_field", "Missing Field"),
                    ("malformed_date", "Malformed Date"),
                    ("out_of_window", "Out Of Window"),
                    ("malformed_amount", "Malformed Amount"),
                    ("malformed_quantity", "Malformed Quantity"),
                    ("malformed_version", "Malformed Version"),
                    ("malformed_sign", "Malformed Sign"),
                    ("unknown_currency", "Unknown Currency"),
                    ("field_too_long", "Field Too Long"),
                    ("duplicate_key", "Duplicate Key"),
                    ("balance_mismatch", "Balance Mismatch"),
                    ("control_total_mismatch", "Control Total Mismatch"),
                    ("continuity_break", "Continuity Break"),
                    ("duplicate_statement", "Duplicate Statement"),
                    ("not_booked", "Not Booked"),
                    ("re_report_conflict", "Re Report Conflict"),
                ],
                max_length=32,
            ),
        ),
    ]
