"""Reads of matching depth, scoped by tenant: matches and suggestions with their records, rule versions
awaiting approval, simulation reports, and records whose reference looks like a text."""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection
from django.db.models import QuerySet

from jfintech.tenancy.calendar import tenant_today
from reconciliation.matching.models import SimulationReport
from reconciliation.runs.models import Match, RuleVersion, Run


def match_list(*, tenant, definition_id=None, status=None, run_id=None, pass_name=None) -> QuerySet[Match]:
    qs = Match.objects.filter(tenant_id=tenant.pk)
    if definition_id is not None:
        qs = qs.filter(definition_id=definition_id)
    if status:
        qs = qs.filter(status=status)
    if run_id is not None:
        qs = qs.filter(run_id=run_id)
        span = Run.objects.filter(pk=run_id, tenant_id=tenant.pk).values_list(
            "first_match_id", "last_match_id"
        )
        first, last = span.first() or (None, None)
        if first is not None:  # a completed run's matches (see Run.first_match_id)
            qs = qs.filter(id__gte=first, id__lte=last)
    if pass_name:
        qs = qs.filter(pass_name=pass_name)
    return qs.order_by("-id")


def match_get(*, tenant, match_id: int) -> Match | None:
    return Match.objects.filter(tenant_id=tenant.pk, pk=match_id).first()


def match_records(*, match: Match) -> list[dict]:
    """The match's records as the analyst sees them (side, active item or not), amounts as strings."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT mi.side, mi.is_active, r.id, r.external_id, r.business_date, r.kind, r.account,
                   r.instrument, r.reference, r.counterparty, r.currency, r.amount::text,
                   r.quantity::text, r.value_date, r.batch_id, r.line_no
            FROM reconciliation_match_item mi
            JOIN reconciliation_record r ON r.id = mi.record_id AND r.business_date = mi.business_date
            WHERE mi.match_id = %s AND r.tenant_id = %s
            ORDER BY mi.side, r.id
            """,
            [match.pk, match.tenant_id],
        )
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def rule_version_list(*, tenant, definition_id=None, status=None) -> QuerySet[RuleVersion]:
    qs = RuleVersion.objects.filter(tenant=tenant).select_related("definition")
    if definition_id is not None:
        qs = qs.filter(definition_id=definition_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-id")


def simulation_list(*, tenant, definition_id=None) -> QuerySet[SimulationReport]:
    qs = SimulationReport.objects.filter(tenant=tenant).select_related("definition", "rule_version")
    if definition_id is not None:
        qs = qs.filter(definition_id=definition_id)
    return qs.order_by("-id")


def simulation_get(*, tenant, report_id: int) -> SimulationReport | None:
    return simulation_list(tenant=tenant).filter(pk=report_id).first()


def records_similar(
    *, tenant, definition, reference: str, as_of: date | None = None, limit: int = 20
) -> list[dict]:
    """Active records of the definition's sources whose reference looks like ``reference`` (pg_trgm
    ``%``), most similar first, with whether each is in an active match — for matching by hand.

    Only the window a run as of ``as_of`` (default: the tenant's today) would see: the record table
    has no trigram index (ingestion writes a million rows a file; migration 0011), so the search
    reads the definition's sources in the few monthly partitions of that window."""
    as_of = as_of or tenant_today(tenant)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.id, ds.side, r.external_id, r.business_date, r.reference, r.account, r.currency,
                   r.amount::text AS amount, r.value_date,
                   round(jf_trgm_similarity(r.reference, %(q)s), 6)::text AS similarity,
                   EXISTS (SELECT 1 FROM reconciliation_match_item mi
                           WHERE mi.tenant_id = r.tenant_id AND mi.definition_id = ds.definition_id
                             AND mi.record_id = r.id AND mi.business_date = r.business_date
                             AND mi.is_active) AS matched
            FROM reconciliation_record r
            JOIN reconciliation_definitionsource ds ON ds.source_id = r.source_id AND ds.definition_id = %(d)s
            WHERE r.tenant_id = %(t)s AND r.status = 'active' AND r.reference <> '' AND r.reference %% %(q)s
              AND r.business_date BETWEEN %(first)s AND %(last)s
            ORDER BY similarity(r.reference, %(q)s) DESC, r.id
            LIMIT %(limit)s
            """,
            {
                "q": reference,
                "d": definition.pk,
                "t": tenant.pk,
                "limit": limit,
                "first": as_of - timedelta(days=definition.lookback_days),
                "last": as_of + timedelta(days=definition.lookahead_days),
            },
        )
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
