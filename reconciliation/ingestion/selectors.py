"""Ingestion reads, always scoped by tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from reconciliation.models import DataSource, IngestionBatch, Rejection


def sources_for_tenant(*, tenant) -> QuerySet[DataSource]:
    return (
        DataSource.objects.filter(tenant=tenant)
        .select_related("re_reports", "re_reported_by")
        .order_by("name")
    )


def source_get(*, tenant, source_id: int | None = None, name: str | None = None) -> DataSource | None:
    lookup = {"pk": source_id} if source_id is not None else {"name": name}
    return DataSource.objects.filter(tenant=tenant, **lookup).first()


def batches_for_tenant(*, tenant) -> QuerySet[IngestionBatch]:
    return IngestionBatch.objects.filter(tenant=tenant).select_related("source")


def batch_get(*, tenant, batch_id: int) -> IngestionBatch | None:
    return batches_for_tenant(tenant=tenant).filter(pk=batch_id).first()


def rejections_for_batch(*, tenant, batch: IngestionBatch) -> QuerySet[Rejection]:
    return Rejection.objects.filter(tenant=tenant, batch=batch).order_by("line_no", "id")
