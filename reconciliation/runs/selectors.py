"""Reads for definitions and runs, always scoped by tenant."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.utils import timezone

from reconciliation.runs.models import TERMINAL_RUN_STATUSES, Break, Definition, Run


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


# --- Reads for reporting (reporting reads runs only through these; docs/reporting.md) -------------


def run_counts_by_state() -> dict[str, int]:
    """Every run ever, counted by its current state (all tenants: the platform metrics)."""
    return dict(Run.objects.order_by().values_list("status").annotate(n=Count("id")))


def runs_past_deadline_count(*, now=None) -> int:
    """Runs not in a terminal state whose deadline has passed (the reaper should fail them)."""
    return (
        Run.objects.filter(deadline__lt=now or timezone.now())
        .exclude(status__in=TERMINAL_RUN_STATUSES)
        .count()
    )
