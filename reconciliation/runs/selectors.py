"""Reads for definitions and runs, always scoped by tenant."""

from __future__ import annotations

from django.db import connection
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


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def run_scope_totals(*, run: Run) -> list[dict]:
    """The run's frozen scope per side and currency: {side, currency, records, amount}."""
    return _rows(
        """SELECT s.side, r.currency, count(*) AS records, sum(r.amount) AS amount
        FROM reconciliation_run_scope s
        JOIN reconciliation_record r ON r.tenant_id = %(tenant)s AND r.id <@ s.record_ids
             AND r.business_date BETWEEN %(date_from)s AND %(date_to)s
        WHERE s.run_id = %(run)s
        GROUP BY 1, 2 ORDER BY 1, 2""",
        {"run": run.pk, "tenant": run.tenant_id, "date_from": run.date_from, "date_to": run.date_to},
    )


def run_matched_by_pass(*, run: Run) -> list[dict]:
    """The run's matches (as the run proposed them) per pass, outcome and currency: match groups,
    records, and the amount matched (the left side's records; a manual match has no run)."""
    return _rows(
        """SELECT m.pass_no, m.pass_name, m.run_outcome AS outcome, r.currency,
                  count(DISTINCT m.id) AS matches, count(*) AS records,
                  coalesce(sum(r.amount) FILTER (WHERE mi.side = 'left'), 0) AS amount
        FROM reconciliation_match m
        JOIN reconciliation_match_item mi ON mi.match_id = m.id
        JOIN reconciliation_record r ON r.id = mi.record_id AND r.business_date = mi.business_date
        WHERE m.run_id = %(run)s AND m.tenant_id = %(tenant)s
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4""",
        {"run": run.pk, "tenant": run.tenant_id},
    )


def run_breaks_by_type(*, run: Run) -> list[dict]:
    """The run's breaks per type and currency: {break_type, currency, breaks, records, amount}."""
    return _rows(
        """SELECT break_type, currency, count(*) AS breaks,
                  coalesce(sum(cardinality(record_ids)), 0) AS records, sum(amount_at_stake) AS amount
        FROM reconciliation_break WHERE run_id = %(run)s AND tenant_id = %(tenant)s
        GROUP BY 1, 2 ORDER BY 1, 2""",
        {"run": run.pk, "tenant": run.tenant_id},
    )


def run_exclusions_by_reason(*, run: Run) -> list[dict]:
    """Records the run excluded, per side and reason (exclude passes, decisions on cases)."""
    return _rows(
        """SELECT side, reason, count(*) AS records FROM reconciliation_run_exclusion
        WHERE run_id = %(run)s GROUP BY 1, 2 ORDER BY 1, 2""",
        {"run": run.pk},
    )


def definition_manual_matches(*, run: Run) -> list[dict]:
    """Manual outcomes standing when the run completed: active matches analysts made by hand or
    forced on a case, per kind: {kind, matches}."""
    return _rows(
        """SELECT CASE WHEN case_id IS NULL THEN 'manual match' ELSE 'force-matched on a case' END AS kind,
                  count(*) AS matches
        FROM reconciliation_match
        WHERE tenant_id = %(tenant)s AND definition_id = %(definition)s AND run_id IS NULL
          AND status = 'active' AND created_at <= %(until)s
        GROUP BY 1 ORDER BY 1""",
        {
            "tenant": run.tenant_id,
            "definition": run.definition_id,
            "until": run.completed_at or timezone.now(),
        },
    )


def run_match_rates(*, tenant, date_from, date_to) -> list[dict]:
    """Completed runs with as-of in [date_from, date_to]: match rate (matched / in scope) per run."""
    return _rows(
        """SELECT r.id AS run_id, d.name AS definition, r.as_of, r.completed_at, r.records_in_scope,
                  r.matched, r.in_breaks, r.excluded,
                  round(r.matched::numeric / nullif(r.records_in_scope, 0), 6) AS match_rate
        FROM reconciliation_run r JOIN reconciliation_definition d ON d.id = r.definition_id
        WHERE r.tenant_id = %(tenant)s AND r.status = 'completed'
          AND r.as_of BETWEEN %(date_from)s AND %(date_to)s
        ORDER BY d.name, r.as_of, r.id""",
        {"tenant": tenant.pk, "date_from": date_from, "date_to": date_to},
    )


def runs_for_period(*, tenant, definition_id: int, date_from, date_to) -> QuerySet[Run]:
    """A definition's runs with as-of in [date_from, date_to], oldest first (auditor packs)."""
    return (
        runs_for_tenant(tenant=tenant)
        .filter(definition_id=definition_id, as_of__gte=date_from, as_of__lte=date_to)
        .order_by("as_of", "id")
    )
