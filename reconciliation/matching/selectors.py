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


# --- For reporting: the reconciliation statement of an account (docs/reporting.md) ----------------


def statement_balances(*, tenant, definition, account: str, currency: str, period_end: date) -> dict | None:
    """The bank side's statements of ``account``: the first active one's opening balance (where the
    history starts) and the last active one closing on or before ``period_end``. None: no statement."""
    from reconciliation.models import StatementBalance

    right = definition.sources.filter(side="right").values_list("source_id", flat=True)
    statements = StatementBalance.objects.filter(
        tenant=tenant, source_id__in=list(right), account=account, status="active", currency=currency
    )
    first = statements.exclude(opening_date=None).order_by("opening_date", "id").first()
    last = statements.filter(closing_date__lte=period_end).order_by("-closing_date", "-id").first()
    if first is None or last is None:
        return None
    return {
        "opening": first.opening,
        "opening_date": first.opening_date,
        "opening_statement": first.statement_id,
        "closing": last.closing,
        "closing_date": last.closing_date,
        "closing_statement": last.statement_id,
    }


_STATEMENT_ITEMS_SQL = """
WITH recs AS (
    SELECT r.id, r.business_date, ds.side, r.amount, r.reference, r.external_id, r.description, r.value_date
    FROM reconciliation_record r
    JOIN reconciliation_definitionsource ds ON ds.source_id = r.source_id AND ds.definition_id = %(d)s
    WHERE r.tenant_id = %(t)s AND r.account = %(account)s AND r.currency = %(currency)s
      AND r.status = 'active' AND r.business_date BETWEEN %(first)s AND %(last)s
      AND ds.side IN ('left', 'right')
), items AS (
    SELECT recs.*, mi.match_id FROM recs
    LEFT JOIN reconciliation_match_item mi ON mi.tenant_id = %(t)s AND mi.definition_id = %(d)s
         AND mi.record_id = recs.id AND mi.business_date = recs.business_date AND mi.is_active
), per_match AS (
    SELECT mi.match_id, bool_and(r.business_date BETWEEN %(first)s AND %(last)s) AS inside,
           coalesce(sum(CASE WHEN mi.side = 'left' THEN r.amount ELSE -r.amount END), 0) AS difference
    FROM reconciliation_match_item mi
    JOIN reconciliation_record r ON r.id = mi.record_id AND r.business_date = mi.business_date
    WHERE mi.match_id IN (SELECT match_id FROM items WHERE match_id IS NOT NULL) AND mi.is_active
    GROUP BY mi.match_id
), classified AS (
    SELECT i.*, pm.difference AS match_difference, dx.reason, dx.case_id,
           CASE WHEN i.match_id IS NOT NULL AND pm.inside AND pm.difference = 0 THEN 'matched'
                WHEN i.match_id IS NOT NULL AND pm.inside THEN 'amount_difference'
                WHEN dx.id IS NOT NULL THEN 'written_off'
                WHEN i.side = 'right' THEN 'bank_only'
                WHEN i.amount >= 0 THEN 'in_transit'
                ELSE 'outstanding' END AS category,
           -- what the row adds to (ledger - bank): the items explain the difference
           CASE WHEN i.side = 'left' THEN i.amount ELSE -i.amount END AS effect
    FROM items i
    LEFT JOIN per_match pm ON pm.match_id = i.match_id
    LEFT JOIN reconciliation_decision_exclusion dx
         ON dx.tenant_id = %(t)s AND dx.definition_id = %(d)s AND dx.record_id = i.id
        AND dx.business_date = i.business_date AND dx.is_active
)
"""


def _statement_params(tenant, definition, account, currency, date_from, date_to) -> dict:
    return {
        "t": tenant.pk,
        "d": definition.pk,
        "account": account,
        "currency": currency,
        "first": date_from,
        "last": date_to,
    }


def statement_items(
    *, tenant, definition, account: str, currency: str, date_from: date, date_to: date
) -> list[dict]:
    """Every active record of the account and currency on either side of ``definition`` with a
    business date in [date_from, date_to], with its reconciling category (matched records are
    left out unless their match differs in amount):

    - ``in_transit`` / ``outstanding``: a ledger record not (yet) on the bank in the period
      (unmatched, or matched to a bank record after it), received / paid;
    - ``bank_only``: a bank record not in the ledger in the period (fees, interest, ...);
    - ``amount_difference``: a record of a match inside the period whose sides differ;
    - ``written_off``: excluded by a final decision on its case (reason, case id).

    ``effect`` is what the record adds to (ledger - bank). Classified by PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            _STATEMENT_ITEMS_SQL + "SELECT * FROM classified WHERE category <> 'matched' "
            "ORDER BY category, side, business_date, id",
            _statement_params(tenant, definition, account, currency, date_from, date_to),
        )
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def statement_item_totals(
    *, tenant, definition, account: str, currency: str, date_from: date, date_to: date
) -> dict[str, dict]:
    """Per category (matched included): records and the sum of their effect on (ledger - bank)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _STATEMENT_ITEMS_SQL
            + "SELECT category, count(*), coalesce(sum(effect), 0) FROM classified GROUP BY 1",
            _statement_params(tenant, definition, account, currency, date_from, date_to),
        )
        return {category: {"records": n, "effect": effect} for category, n, effect in cursor.fetchall()}


def statement_totals(
    *, tenant, definition, account: str, currency: str, date_from: date, date_to: date
) -> dict:
    """Sums per side of the same records (the ledger's movements; the bank's booked entries)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT ds.side, count(*), coalesce(sum(r.amount), 0)
            FROM reconciliation_record r
            JOIN reconciliation_definitionsource ds ON ds.source_id = r.source_id AND ds.definition_id = %(d)s
            WHERE r.tenant_id = %(t)s AND r.account = %(account)s AND r.currency = %(currency)s
              AND r.status = 'active' AND r.business_date BETWEEN %(first)s AND %(last)s
            GROUP BY 1""",
            {
                "t": tenant.pk,
                "d": definition.pk,
                "account": account,
                "currency": currency,
                "first": date_from,
                "last": date_to,
            },
        )
        return {side: {"records": n, "amount": amount} for side, n, amount in cursor.fetchall()}


def statement_accounts(*, tenant, definition, date_from: date, date_to: date) -> list[tuple[str, str]]:
    """(account, currency) of the definition's bank statements closing in [date_from, date_to]."""
    from reconciliation.models import StatementBalance

    right = list(definition.sources.filter(side="right").values_list("source_id", flat=True))
    return list(
        StatementBalance.objects.filter(
            tenant=tenant,
            source_id__in=right,
            status="active",
            closing_date__gte=date_from,
            closing_date__lte=date_to,
        )
        .order_by("account", "currency")
        .values_list("account", "currency")
        .distinct()
    )
