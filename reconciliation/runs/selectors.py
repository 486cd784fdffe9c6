"""Reads for definitions and runs, always scoped by tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from reconciliation.runs.models import Break, Definition, Run


def definitions_for_tenant(*, tenant) -> QuerySet[Definition]:
    return (
        Definition.objects.filter(tenant=tenant)
        .select_related("schedule", "schedule__crontab")
        .prefetch_related("sources__source", "rule_versions")
        .order_by("name")
    )


def definition_get(*, tenant, definition_id: int | None = None, name: str | None = None) -> Definition | None:
    lookup = {"pk": definition_id} if definition_id is not None else {"name": name}
    return definitions_for_tenant(tenant=tenant).filter(**lookup).first()


def runs_for_tenant(*, tenant) -> QuerySet[Run]:
    return Run.objects.filter(tenant=tenant).select_related("definition", "rule_version")


def run_get(*, tenant, run_id: int) -> Run | None:
    return runs_for_tenant(tenant=tenant).filter(pk=run_id).first()


def breaks_for_run(*, tenant, run: Run) -> QuerySet[Break]:
    return Break.objects.filter(tenant=tenant, run=run).order_by("id")
