"""CTR aggregation, set-based in PostgreSQL (31 CFR 1010.313): per person, per business day, across
all branches, cash in and cash out summed separately (never netted); a person-day is reportable
when either sum is MORE THAN USD 10,000 (31 CFR 1010.311: "more than $10,000" — exactly 10,000.00
is not reported, 10,000.01 is).

A transaction counts for the person who conducted it and for the person on whose behalf it was
conducted (once when they are the same person). Foreign-currency cash is converted with the
tenant's FX table for the transaction's business date (the source is named on every lineage row);
a missing rate stops the preparation loudly.

One CTR lists every person involved (FinCEN CTR FAQ 16, docs/filings.md "CTR aggregation"): each
person-day over the threshold (a trigger) has a CTR of its transactions of the reported
direction(s), unless they all are on another trigger's CTR (a courier's 12,000 for a customer:
one CTR for both); every person of a CTR's transactions is a subject, once per role (50 own
behalf, 17 conducting for another, 23 on whose behalf), with the amounts of that role's
transactions on it. The filing's key is its trigger's party key.

Exempt persons (ExemptPerson, valid that day, 31 CFR 1020.315) are never triggers, and cash on
behalf of an exempt person is not reported at all (the exemption covers the exempt customer's
cash, also when an employee or courier brings it); a person-day over the threshold left
unreported for either reason is recorded in CtrExclusion with the reason.

Every reported amount is linked to its transactions in FilingLineage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import connection

CTR_DUE_DAYS = 15  # 31 CFR 1010.306(a)(1): within 15 days following the day of the transaction

# The period's transactions once each, in USD, with their beneficiary and whether it is exempt.
_TX = """
CREATE TEMP TABLE ctr_t ON COMMIT DROP AS
WITH t AS (
    SELECT t.id, t.business_date, t.direction, t.amount, t.currency, t.conducted_by,
           COALESCE(NULLIF(t.on_behalf_of, ''), t.conducted_by) AS beneficiary,
           CASE WHEN t.currency = 'USD' THEN 1 ELSE r.usd_per_unit END AS rate,
           CASE WHEN t.currency = 'USD' THEN 'USD, no conversion' ELSE r.source END AS rate_source
    FROM filings_cashtransaction t
    LEFT JOIN filings_fxrate r
      ON r.tenant_id = t.tenant_id AND r.currency = t.currency AND r.business_date = t.business_date
    WHERE t.tenant_id = %(tenant)s AND t.is_current AND t.business_date BETWEEN %(first)s AND %(last)s
)
SELECT t.id AS txn_id, t.business_date, t.direction, t.amount, t.currency, t.rate, t.rate_source,
       t.amount * t.rate AS usd, t.conducted_by, t.beneficiary, COALESCE(v.is_entity, FALSE) AS by_entity,
       EXISTS (SELECT 1 FROM filings_exemptperson e
               WHERE e.tenant_id = %(tenant)s AND e.party_key = t.beneficiary
                 AND e.valid_from <= t.business_date
                 AND (e.valid_to IS NULL OR t.business_date <= e.valid_to)) AS exempt
FROM t
LEFT JOIN filings_partyversion v
  ON v.tenant_id = %(tenant)s AND v.party_key = t.conducted_by AND v.is_current
"""

# Each transaction once per person involved, with that person's role in it. An entity cannot
# conduct a transaction (FinCEN: 2a and 2b never with "If entity"): cash it brings on its own behalf
# is cash on its behalf (23) by a person the data does not name.
_PERSONS = """
CREATE TEMP TABLE ctr_p ON COMMIT DROP AS
SELECT txn_id, business_date, direction, usd, exempt, conducted_by AS party_key,
       CASE WHEN beneficiary <> conducted_by THEN '17' WHEN by_entity THEN '23' ELSE '50' END AS role
FROM ctr_t
UNION ALL
SELECT txn_id, business_date, direction, usd, exempt, beneficiary, '23'
FROM ctr_t WHERE beneficiary <> conducted_by
"""

# Person-days over the threshold counting every transaction (all_*), and counting only what is
# reportable (cash_*: not on behalf of an exempt person); the person's own exemption, if any.
_AGG = """
CREATE TEMP TABLE ctr_agg ON COMMIT DROP AS
WITH a AS (
    SELECT party_key, business_date,
           COALESCE(SUM(usd) FILTER (WHERE direction = 'in' AND NOT exempt), 0) AS cash_in,
           COALESCE(SUM(usd) FILTER (WHERE direction = 'out' AND NOT exempt), 0) AS cash_out,
           COALESCE(SUM(usd) FILTER (WHERE direction = 'in'), 0) AS all_in,
           COALESCE(SUM(usd) FILTER (WHERE direction = 'out'), 0) AS all_out
    FROM ctr_p
    GROUP BY party_key, business_date
    HAVING COALESCE(SUM(usd) FILTER (WHERE direction = 'in'), 0) > %(threshold)s
        OR COALESCE(SUM(usd) FILTER (WHERE direction = 'out'), 0) > %(threshold)s
)
SELECT a.*, e.reason AS exempt_reason
FROM a
LEFT JOIN LATERAL (
    SELECT reason FROM filings_exemptperson e
    WHERE e.tenant_id = %(tenant)s AND e.party_key = a.party_key AND e.valid_from <= a.business_date
      AND (e.valid_to IS NULL OR a.business_date <= e.valid_to)
    ORDER BY reason LIMIT 1
) e ON TRUE
"""

_EXCLUDE = """
WITH gone AS (
    DELETE FROM ctr_agg a
    WHERE a.exempt_reason IS NOT NULL OR (a.cash_in <= %(threshold)s AND a.cash_out <= %(threshold)s)
    RETURNING a.party_key, a.business_date, a.all_in, a.all_out, a.exempt_reason
)
INSERT INTO filings_ctrexclusion
    (tenant_id, party_key, business_date, total_cash_in, total_cash_out, reason, recorded_at)
SELECT %(tenant)s, party_key, business_date, all_in, all_out,
       COALESCE('exempt person: ' || exempt_reason,
                'over the threshold only with cash on behalf of an exempt person'),
       %(now)s
FROM gone
ON CONFLICT (tenant_id, party_key, business_date) DO NOTHING
"""

# The triggers' reported transactions (their direction(s) over the threshold only: a cash-out of
# 300 beside a cash-in of 12,000 is not part of the report).
_REPORTED = """
CREATE TEMP TABLE ctr_rt ON COMMIT DROP AS
SELECT p.txn_id, a.party_key, a.business_date
FROM ctr_agg a
JOIN ctr_p p ON p.party_key = a.party_key AND p.business_date = a.business_date
WHERE NOT p.exempt
  AND ((p.direction = 'in' AND a.cash_in > %(threshold)s)
       OR (p.direction = 'out' AND a.cash_out > %(threshold)s))
"""

# Each trigger's CTR: a trigger whose reported transactions are all among another trigger's is
# reported on that one (the other with the most transactions, then the first by party key: a
# trigger chosen so is never itself inside a bigger one, so one pass is enough); any other
# trigger has its own CTR. Not transitive closure over shared transactions: on real-looking data
# (couriers, employees, several businesses) that closure grows groups without bound.
_GROUPS = """
CREATE TEMP TABLE ctr_grp ON COMMIT DROP AS
WITH sizes AS (
    SELECT party_key, business_date, COUNT(*) AS n FROM ctr_rt GROUP BY party_key, business_date
),
shared AS (
    SELECT a.party_key, a.business_date, b.party_key AS other, COUNT(*) AS n
    FROM ctr_rt a JOIN ctr_rt b ON b.txn_id = a.txn_id AND b.party_key <> a.party_key
    GROUP BY a.party_key, a.business_date, b.party_key
),
inside AS (
    SELECT DISTINCT ON (s.party_key, s.business_date) s.party_key, s.business_date, s.other AS grp
    FROM shared s
    JOIN sizes mine ON mine.party_key = s.party_key AND mine.business_date = s.business_date
    JOIN sizes theirs ON theirs.party_key = s.other AND theirs.business_date = s.business_date
    WHERE s.n = mine.n AND (theirs.n > mine.n OR s.other < s.party_key)
    ORDER BY s.party_key, s.business_date, theirs.n DESC, s.other
)
SELECT z.party_key, z.business_date, COALESCE(i.grp, z.party_key) AS grp
FROM sizes z
LEFT JOIN inside i ON i.party_key = z.party_key AND i.business_date = z.business_date
"""

# Each CTR's transactions, once (its trigger's; those of the triggers inside it are among them).
_GROUPED = """
CREATE TEMP TABLE ctr_gt ON COMMIT DROP AS
SELECT DISTINCT g.grp, r.business_date, r.txn_id
FROM ctr_rt r JOIN ctr_grp g ON g.party_key = r.party_key AND g.business_date = r.business_date
"""

# One original filing per trigger-day that has its own CTR, keyed by the trigger (the partial
# unique index makes preparing twice a no-op).
_FILINGS = """
CREATE TEMP TABLE ctr_new ON COMMIT DROP AS
WITH ins AS (
    INSERT INTO filings_filing (
        tenant_id, kind, status, subject_key, period_start, period_end, due_date, version, prior_bsa_id,
        bsa_id, total_cash_in, total_cash_out, errors, preparer_id, preparer, approver, gate_override,
        prepared_at, referred_case_ids, accounts, activity_subtypes, activity_other_texts, narrative)
    SELECT %(tenant)s, 'ctr', 'draft', g.grp, g.business_date, g.business_date,
           g.business_date + %(due_days)s, 1, '', '',
           COALESCE(SUM(t.usd) FILTER (WHERE t.direction = 'in'), 0),
           COALESCE(SUM(t.usd) FILTER (WHERE t.direction = 'out'), 0),
           '[]'::jsonb, %(preparer_id)s, %(preparer)s, '', '{}'::jsonb, %(now)s, '[]'::jsonb, '[]'::jsonb,
           '[]'::jsonb, '{}'::jsonb, ''
    FROM ctr_gt g JOIN ctr_t t ON t.txn_id = g.txn_id
    GROUP BY g.grp, g.business_date
    ORDER BY g.business_date, g.grp
    ON CONFLICT (tenant_id, kind, subject_key, period_start) WHERE parent_id IS NULL DO NOTHING
    RETURNING id, subject_key, period_start
)
SELECT id AS filing_id, subject_key AS grp, period_start AS business_date FROM ins
"""

_LINEAGE = """
INSERT INTO filings_filinglineage (tenant_id, filing_id, transaction_id, direction, amount, currency,
                                   usd_per_unit, amount_usd, rate_source)
SELECT %(tenant)s, n.filing_id, t.txn_id, t.direction, t.amount, t.currency, t.rate, t.usd, t.rate_source
FROM ctr_new n
JOIN ctr_gt g ON g.grp = n.grp AND g.business_date = n.business_date
JOIN ctr_t t ON t.txn_id = g.txn_id
"""

# Every person of the filing's transactions, once per role, as their party version stood now
# (preparation); amounts are sums of that role's transactions on this filing (the lineage's rows:
# the property test checks both).
_SUBJECTS = """
INSERT INTO filings_filingsubject (tenant_id, filing_id, party_key, party_version_id, role, cash_in, cash_out,
                                   transactions)
SELECT %(tenant)s, s.filing_id, s.party_key, v.id, s.role, s.cash_in, s.cash_out, s.n
FROM (
    SELECT n.filing_id, p.party_key, p.role,
           COALESCE(SUM(p.usd) FILTER (WHERE p.direction = 'in'), 0) AS cash_in,
           COALESCE(SUM(p.usd) FILTER (WHERE p.direction = 'out'), 0) AS cash_out,
           COUNT(*) AS n
    FROM ctr_new n
    JOIN ctr_gt g ON g.grp = n.grp AND g.business_date = n.business_date
    JOIN ctr_p p ON p.txn_id = g.txn_id
    GROUP BY n.filing_id, p.party_key, p.role
) s
LEFT JOIN filings_partyversion v
  ON v.tenant_id = %(tenant)s AND v.party_key = s.party_key AND v.is_current
ORDER BY s.filing_id, s.party_key, s.role
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
            ("persons", _PERSONS),
            ("analyze", "ANALYZE ctr_t"),
            ("analyze", "ANALYZE ctr_p"),
            ("aggregate", _AGG),
            ("exclude", _EXCLUDE),
            ("reported", _REPORTED),
            ("analyze", "ANALYZE ctr_rt"),  # without statistics the self-join is planned as a nested loop
            ("groups", _GROUPS),
            ("grouped", _GROUPED),
            ("analyze", "ANALYZE ctr_gt"),
            ("filings", _FILINGS),
            ("lineage", _LINEAGE),
            ("subjects", _SUBJECTS),
            ("drop", "DROP TABLE ctr_t, ctr_p, ctr_agg, ctr_rt, ctr_grp, ctr_gt, ctr_new"),
        ):
            started = time.monotonic()
            cursor.execute(sql, params)
            timings[name] = round(timings.get(name, 0) + time.monotonic() - started, 3)
            counts[name] = cursor.rowcount
    return Prepared(
        filings=counts["filings"], excluded=counts["exclude"], lineage_rows=counts["lineage"], timings=timings
    )
