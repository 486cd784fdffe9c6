"""CTR aggregation, set-based in PostgreSQL (31 CFR 1010.313): per person, per business day, across
all branches, cash in and cash out summed separately (never netted); a person-day is reportable
when either sum is MORE THAN USD 10,000 (31 CFR 1010.311: "more than $10,000" — exactly 10,000.00
is not reported, 10,000.01 is).

A transaction counts for the person who conducted it and for the person on whose behalf it was
conducted (once when they are the same person). Foreign-currency cash is converted with the
tenant's FX table for the transaction's business date (the source is named on every lineage row);
a missing rate stops the preparation loudly. Exempt persons (ExemptPerson, valid that day) are not
reported: the person-day is recorded in CtrExclusion with the reason.

Every reported amount is linked to its transactions in FilingLineage (the reported direction only:
a cash-out of 300 beside a cash-in of 12,000 is not part of the report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import connection

CTR_DUE_DAYS = 15  # 31 CFR 1010.306(a)(1): within 15 days following the day of the transaction

# The transactions of the period, once per person they count for, in USD.
_TX = """
CREATE TEMP TABLE ctr_tx ON COMMIT DROP AS
WITH t AS (
    SELECT t.id, t.business_date, t.direction, t.amount, t.currency, t.account, t.branch_code,
           t.conducted_by, NULLIF(t.on_behalf_of, '') AS on_behalf_of,
           CASE WHEN t.currency = 'USD' THEN 1 ELSE r.usd_per_unit END AS rate,
           CASE WHEN t.currency = 'USD' THEN 'USD, no conversion' ELSE r.source END AS rate_source
    FROM filings_cashtransaction t
    LEFT JOIN filings_fxrate r
      ON r.tenant_id = t.tenant_id AND r.currency = t.currency AND r.business_date = t.business_date
    WHERE t.tenant_id = %(tenant)s AND t.is_current AND t.business_date BETWEEN %(first)s AND %(last)s
)
SELECT id AS txn_id, business_date, direction, amount, currency, account, branch_code, rate, rate_source,
       amount * rate AS usd, conducted_by AS party_key,
       (on_behalf_of IS NULL OR on_behalf_of = conducted_by) AS own, TRUE AS conducted
FROM t
UNION ALL
SELECT id, business_date, direction, amount, currency, account, branch_code, rate, rate_source,
       amount * rate, on_behalf_of, FALSE, FALSE
FROM t WHERE on_behalf_of IS NOT NULL AND on_behalf_of <> conducted_by
"""

_AGG = """
CREATE TEMP TABLE ctr_agg ON COMMIT DROP AS
SELECT party_key, business_date,
       COALESCE(SUM(usd) FILTER (WHERE direction = 'in'), 0) AS cash_in,
       COALESCE(SUM(usd) FILTER (WHERE direction = 'out'), 0) AS cash_out,
       COUNT(*) FILTER (WHERE direction = 'in') AS n_in, COUNT(*) FILTER (WHERE direction = 'out') AS n_out,
       bool_or(own) AS own, bool_or(conducted) AS conducted
FROM ctr_tx
GROUP BY party_key, business_date
HAVING COALESCE(SUM(usd) FILTER (WHERE direction = 'in'), 0) > %(threshold)s
    OR COALESCE(SUM(usd) FILTER (WHERE direction = 'out'), 0) > %(threshold)s
"""

_EXCLUDE = """
WITH exempt AS (
    DELETE FROM ctr_agg a
    USING filings_exemptperson e
    WHERE e.tenant_id = %(tenant)s AND e.party_key = a.party_key AND e.valid_from <= a.business_date
      AND (e.valid_to IS NULL OR a.business_date <= e.valid_to)
    RETURNING a.party_key, a.business_date, a.cash_in, a.cash_out, e.reason
)
INSERT INTO filings_ctrexclusion
    (tenant_id, party_key, business_date, total_cash_in, total_cash_out, reason, recorded_at)
SELECT DISTINCT ON (party_key, business_date) %(tenant)s, party_key, business_date, cash_in, cash_out,
       'exempt person: ' || reason, %(now)s
FROM exempt
ORDER BY party_key, business_date, reason
ON CONFLICT (tenant_id, party_key, business_date) DO NOTHING
"""

# One original filing per person-day (the partial unique index makes preparing twice a no-op).
_FILINGS = """
CREATE TEMP TABLE ctr_new ON COMMIT DROP AS
WITH ins AS (
    INSERT INTO filings_filing (
        tenant_id, kind, status, subject_key, period_start, period_end, due_date, version, prior_bsa_id,
        bsa_id, total_cash_in, total_cash_out, errors, preparer_id, preparer, approver, gate_override,
        prepared_at, referred_case_ids, accounts, activity_subtypes, narrative)
    SELECT %(tenant)s, 'ctr', 'draft', party_key, business_date, business_date,
           business_date + %(due_days)s, 1, '', '',
           CASE WHEN cash_in > %(threshold)s THEN cash_in ELSE 0 END,
           CASE WHEN cash_out > %(threshold)s THEN cash_out ELSE 0 END,
           '[]'::jsonb, %(preparer_id)s, %(preparer)s, '', '{}'::jsonb, %(now)s, '[]'::jsonb, '[]'::jsonb,
           '[]'::jsonb, ''
    FROM ctr_agg
    ORDER BY business_date, party_key
    ON CONFLICT (tenant_id, kind, subject_key, period_start) WHERE parent_id IS NULL DO NOTHING
    RETURNING id, subject_key, period_start
)
SELECT ins.id AS filing_id, ins.subject_key AS party_key, ins.period_start AS business_date,
       a.cash_in > %(threshold)s AS report_in, a.cash_out > %(threshold)s AS report_out,
       a.cash_in, a.cash_out, a.n_in, a.n_out, a.own, a.conducted
FROM ins JOIN ctr_agg a ON a.party_key = ins.subject_key AND a.business_date = ins.period_start
"""

_LINEAGE = """
INSERT INTO filings_filinglineage (tenant_id, filing_id, transaction_id, direction, amount, currency,
                                   usd_per_unit, amount_usd, rate_source)
SELECT %(tenant)s, n.filing_id, x.txn_id, x.direction, x.amount, x.currency, x.rate, x.usd, x.rate_source
FROM ctr_new n
JOIN ctr_tx x ON x.party_key = n.party_key AND x.business_date = n.business_date
WHERE (x.direction = 'in' AND n.report_in) OR (x.direction = 'out' AND n.report_out)
"""

# The subject as their party version stood now (preparation); amounts are the reported directions'
# sums (the same sums the lineage rows add up to: the property test checks both).
_SUBJECTS = """
INSERT INTO filings_filingsubject (tenant_id, filing_id, party_key, party_version_id, role, cash_in, cash_out,
                                   transactions)
SELECT %(tenant)s, n.filing_id, n.party_key, p.id,
       CASE WHEN n.own THEN '50' WHEN n.conducted THEN '17' ELSE '23' END,
       CASE WHEN n.report_in THEN n.cash_in ELSE 0 END,
       CASE WHEN n.report_out THEN n.cash_out ELSE 0 END,
       CASE WHEN n.report_in THEN n.n_in ELSE 0 END + CASE WHEN n.report_out THEN n.n_out ELSE 0 END
FROM ctr_new n
LEFT JOIN filings_partyversion p
  ON p.tenant_id = %(tenant)s AND p.party_key = n.party_key AND p.is_current
"""

_MISSING_RATES = """
SELECT DISTINCT t.currency, t.business_date
FROM filings_cashtransaction t
LEFT JOIN filings_fxrate r
  ON r.tenant_id = t.tenant_id AND r.currency = t.currency AND r.business_date = t.business_date
WHERE t.tenant_id = %(tenant)s AND t.is_current AND t.business_date BETWEEN %(first)s AND %(last)s
  AND t.currency <> 'USD' AND r.id IS NULL
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Prepared:
    filings: int
    excluded: int
    lineage_rows: int
    timings: dict = field(default_factory=dict)  # seconds per statement (logged, bench)


def missing_rates(cursor, *, tenant_id: int, first: date, last: date) -> list[tuple[str, date]]:
    cursor.execute(_MISSING_RATES, {"tenant": tenant_id, "first": first, "last": last})
    return cursor.fetchall()


def aggregate(
    *, tenant_id: int, first: date, last: date, now: datetime, preparer_id: str, preparer: str, threshold
) -> Prepared:
    """Run inside the caller's transaction (filings.services.ctr_prepare). Returns the counts."""
    params = {
        "tenant": tenant_id,
        "first": first,
        "last": last,
        "now": now,
        "threshold": threshold,
        "due_days": CTR_DUE_DAYS,
        "preparer_id": preparer_id,
        "preparer": preparer,
    }
    timings, counts = {}, {}
    with connection.cursor() as cursor:
        for name, sql in (
            ("transactions", _TX),
            ("analyze", "ANALYZE ctr_tx"),
            ("aggregate", _AGG),
            ("exclude", _EXCLUDE),
            ("filings", _FILINGS),
            ("lineage", _LINEAGE),
            ("subjects", _SUBJECTS),
            ("drop", "DROP TABLE ctr_tx, ctr_agg, ctr_new"),
        ):
            started = time.monotonic()
            cursor.execute(sql, params)
            counts[name] = cursor.rowcount
            timings[name] = round(time.monotonic() - started, 3)
    return Prepared(
        filings=counts["filings"], excluded=counts["exclude"], lineage_rows=counts["lineage"], timings=timings
    )
