"""Parties and cash transactions now arrive through reconciliation's ingestion (sources of kind
parties / cash_transactions): their versions point at an IngestionBatch, and filings' own
IntakeBatch / IntakeRejection go.

Rows loaded by the old intake are kept: each intake batch becomes an ingestion batch (same file
name, sha256, status, counts, creator and times) of a per-tenant JSON source ``filings-parties`` or
``filings-cash-transactions`` (created here when missing), its rejections ingestion rejections,
and the versions are re-pointed at it.
"""

import django.db.models.deletion
from django.db import migrations, models

SOURCES = {
    "party": ("filings-parties", "parties"),
    "cash_transaction": ("filings-cash-transactions", "cash_transactions"),
}


def move_batches(apps, schema_editor):
    IntakeBatch = apps.get_model("filings", "IntakeBatch")
    IntakeRejection = apps.get_model("filings", "IntakeRejection")
    DataSource = apps.get_model("reconciliation", "DataSource")
    IngestionBatch = apps.get_model("reconciliation", "IngestionBatch")
    Rejection = apps.get_model("reconciliation", "Rejection")
    models_of = {"party": apps.get_model("filings", "PartyVersion"),
                 "cash_transaction": apps.get_model("filings", "CashTransaction")}  # fmt: skip
    moved: dict[int, int] = {}
    for old in IntakeBatch.objects.order_by("pk"):
        name, kind = SOURCES[old.kind]
        source, _ = DataSource.objects.get_or_create(
            tenant_id=old.tenant_id, name=name, defaults={"kind": kind, "format": "json"}
        )
        if source.kind != kind:
            raise RuntimeError(
                f"tenant {old.tenant_id} has a source {name} of kind {source.kind}, not {kind}"
            )
        new = IngestionBatch.objects.create(
            tenant_id=old.tenant_id, source=source, file_name=old.file_name, sha256=old.sha256,
            status=old.status, rows_total=old.rows_total, rows_accepted=old.rows_accepted,
            rows_rejected=old.rows_rejected, duplicate_of_id=moved.get(old.duplicate_of_id),
            created_by=old.created_by, completed_at=old.received_at,
            reject_code="all_rows_rejected" if old.status == "rejected" else "",
        )  # fmt: skip
        IngestionBatch.objects.filter(pk=new.pk).update(received_at=old.received_at)
        moved[old.pk] = new.pk
        Rejection.objects.bulk_create(
            Rejection(
                tenant_id=r.tenant_id,
                batch_id=new.pk,
                line_no=r.line_no,
                raw=r.raw,
                reason=r.reason,
                message=r.message,
            )  # fmt: skip
            for r in IntakeRejection.objects.filter(batch_id=old.pk)
        )
        models_of[old.kind].objects.filter(batch_id=old.pk).update(ingestion_batch_id=new.pk)
    # The deferred foreign-key checks of these writes now, or PostgreSQL refuses the ALTER TABLEs
    # below ("pending trigger events").
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    # 0006 and 0007 are other branches' (the lead orders the chain on merge).
    dependencies = [
        ("filings", "0006_subject_per_role"),
        ("reconciliation", "0019_source_handed_off_kinds"),
    ]

    operations = [
        *[
            migrations.AddField(
                model_name=model,
                name="ingestion_batch",
                field=models.ForeignKey(
                    null=True,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="reconciliation.ingestionbatch",
                ),
            )
            for model in ("partyversion", "cashtransaction")
        ],
        migrations.RunPython(move_batches, migrations.RunPython.noop),
        *[
            op
            for model in ("partyversion", "cashtransaction")
            for op in (
                migrations.RemoveField(model_name=model, name="batch"),
                migrations.RenameField(model_name=model, old_name="ingestion_batch", new_name="batch"),
                migrations.AlterField(
                    model_name=model,
                    name="batch",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="reconciliation.ingestionbatch",
                    ),
                ),
            )
        ],
        migrations.DeleteModel(name="IntakeRejection"),
        migrations.DeleteModel(name="IntakeBatch"),
    ]
