"""Reads for definitions and runs, always scoped by tenant."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, QuerySet

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


def run_batches(*, run: Run) -> list[dict]:
    """The ingestion batches the run's frozen scope holds records of, with how many (the run page's
    "batches in scope"). One pass over the scope's records by id range within the run's window."""
    from reconciliation.matching.engine import scope_ids_sql  # the engine's one definition of scope

    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.batch_id, count(*) FROM reconciliation_record r
            WHERE r.tenant_id = %(tenant)s AND r.id <@ {scope_ids_sql()}
            GROUP BY r.batch_id ORDER BY r.batch_id
            """,
            {"tenant": run.tenant_id, "run": run.pk},
        )
        return [{"batch_id": b, "records": n} for b, n in cursor.fetchall()]


def run_matches_by_pass(*, run: Run) -> list[dict]:
    """How many match groups each pass made in the run (by the run's own match-id range: BRIN)."""
    from reconciliation.runs.models import Match

    qs = Match.objects.filter(run_id=run.pk)
    if run.first_match_id is not None and run.last_match_id is not None:
        qs = qs.filter(id__gte=run.first_match_id, id__lte=run.last_match_id)
    return list(
        qs.values("pass_no", "pass_name", "run_outcome")
        .annotate(n=Count("id"))
        .order_by("pass_no", "run_outcome")
    )
