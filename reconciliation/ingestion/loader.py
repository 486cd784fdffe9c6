"""The bulk path, in SQL: COPY and set-based checks; rows are typed by validation.Validator.

Two paths, one outcome (docs/ingestion.md, "Two paths"):

- **direct** (``DirectLoad``): the validated rows are COPYed (psycopg 3) straight into the
  partitioned record table, the rejections after them, inside the load transaction. The unique
  index ``record_one_active_version`` is the duplicate check: a natural key repeated in the file or
  already loaded fails the COPY, the transaction rolls back, and the batch takes the staged path.
- **staged** (``Staging``): the validated rows are COPYed into a session TEMP table, and set-based
  statements find repeated keys, keys already loaded, amendments and entries the partner source
  already loaded (``DataSource.re_reports``: these are stored ``linked``), then INSERT … SELECT the
  accepted rows and the rejections, in the caller's single transaction. A source with a partner
  always takes this path (linking needs the staged rows before they are inserted).

Neither saves a row through the ORM. Temp tables are not WAL-logged and vanish with the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from reconciliation.ingestion.validation import CHECKED_COLUMNS

# The direct path keeps rejections in memory until its rows are in; past this many the file takes
# the staged path, where rejections never leave PostgreSQL (memory stays flat).
DIRECT_MAX_REJECTIONS = 10_000
_CHECKED_TYPES = {
    "line_no": "integer", "version": "integer", "version_given": "boolean", "amend": "boolean",
    "business_date": "date", "amount": "numeric", "quantity": "numeric", "trade_date": "date",
    "value_date": "date", "attributes": "jsonb",
}  # fmt: skip
_RECORD_COLUMNS = (
    "tenant_id, source_id, batch_id, kind, business_date, external_id, version, account, instrument,"
    " reference, counterparty, currency, amount, quantity, trade_date, value_date, description, attributes,"
    " line_no"
)
# An entry and its re-report by the partner source: same account and account servicer reference
# (camt AcctSvcrRef, attributes.acct_svcr_ref), the same transaction of a split batch booking (the
# external id's suffix after attributes.batch_entry; '' for a whole entry), booked at most this many
# days apart (further apart, a reused reference names another booking; it also bounds the
# partitions read). Rows without a servicer reference are never linked (docs/ingestion.md).
LINK_WINDOW_DAYS = 7
_LINK_REF = "{a}.attributes->>'acct_svcr_ref'"
_LINK_PART = "coalesce(substr({a}.external_id, length({a}.attributes->>'batch_entry') + 2), '')"
# A record's versions that are not reversed, as two predicates each served by a partial index of
# the natural key: ``record_one_active_version`` (status = 'active') and ``record_history_version``
# (migration 0018). Together they are exactly ``status <> 'reversed'`` under the table's status
# CHECK; that single predicate implies neither index's, so it read whole months (docs/scaling.md F1).
_LIVE_STATUSES = ("r.status = 'active'", "r.status IN ('superseded', 'linked')")
_REJECTION_COPY = (
    "COPY reconciliation_rejection (tenant_id, batch_id, line_no, raw, reason, message, created_at)"
    " FROM STDIN"
)


class StagingNeeded(Exception):
    """The direct path cannot decide this file; ``why`` is the metric's label."""

    def __init__(self, why: str, message: str):
        super().__init__(message)
        self.why = why


@dataclass
class LoadResult:
    accepted: int = 0
    rejected: int = 0
    superseded: int = 0
    linked: int = 0  # of the accepted rows, those stored `linked` (loaded earlier by the partner)
    totals: dict = field(default_factory=dict)  # {currency: {"count", "amount", "quantity"}} (accepted)
    reasons: dict = field(default_factory=dict)  # {reason: count}

    def add_total(self, currency: str, count: int, amount, quantity) -> None:
        self.totals[currency or ""] = {
            "count": count,
            "amount": str(amount if amount is not None else Decimal(0)),
            "quantity": str(quantity if quantity is not None else Decimal(0)),
        }


class DirectLoad:
    """One batch's validated rows COPYed into the record table, rejections after (the direct path)."""

    def __init__(self, cursor, *, tenant_id: int, source_id: int, batch_id: int, kind: str):
        self.cursor = cursor
        self.ids = (tenant_id, source_id, batch_id, kind)
        self.rejections: list[tuple] = []
        self.sums: dict = {}  # {currency: [count, amount, quantity]} of the accepted rows

    def copy(self, checked_rows) -> int:
        """COPY the accepted rows as they are validated; returns the number of rows read."""
        total, rejections, sums, ids = 0, self.rejections, self.sums, self.ids
        with self.cursor.copy(f"COPY reconciliation_record ({_RECORD_COLUMNS}) FROM STDIN") as copy:
            write = copy.write_row
            for (line_no, raw, reason, message, external_id, version, _given, _amend, business_date, account,
                 instrument, reference, counterparty, currency, amount, quantity, trade_date, value_date,
                 description, attributes) in checked_rows:  # fmt: skip
                total += 1
                if reason is not None:
                    rejections.append((line_no, raw or "", reason, message or ""))
                    if len(rejections) > DIRECT_MAX_REJECTIONS:
                        raise StagingNeeded(
                            "many_rejections", f"more than {DIRECT_MAX_REJECTIONS} rejections"
                        )
                    continue
                write((*ids, business_date, external_id, version, account, instrument, reference,
                       counterparty, currency, amount, quantity, trade_date, value_date, description,
                       attributes or "{}", line_no))  # fmt: skip
                entry = sums.get(currency)
                if entry is None:
                    entry = sums[currency] = [0, None, None]
                entry[0] += 1
                if amount is not None:
                    entry[1] = amount if entry[1] is None else entry[1] + amount
                if quantity is not None:
                    entry[2] = quantity if entry[2] is None else entry[2] + quantity
        return total

    def finish(self) -> LoadResult:
        """Write the rejections; the batch's counts and totals."""
        tenant_id, _source_id, batch_id, _kind = self.ids
        now = timezone.now()
        result = LoadResult(rejected=len(self.rejections))
        with self.cursor.copy(_REJECTION_COPY) as copy:
            for line_no, raw, reason, message in self.rejections:
                copy.write_row((tenant_id, batch_id, line_no, raw, reason, message, now))
                result.reasons[reason] = result.reasons.get(reason, 0) + 1
        for currency, (count, amount, quantity) in self.sums.items():
            result.accepted += count
            result.add_total(currency, count, amount, quantity)
        return result


class Staging:
    """The typed temp table of one batch on the current connection (the staged path)."""

    def __init__(self, cursor, batch_id: int):
        self.cursor = cursor
        self.checked = f"jf_checked_{batch_id}"

    def create(self) -> None:
        columns = ", ".join(f"{c} {_CHECKED_TYPES.get(c, 'text')}" for c in CHECKED_COLUMNS)
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.checked}")
        # linked_to / linked_batch: the partner's record (and its batch) this row re-reports.
        self.cursor.execute(
            f"CREATE TEMP TABLE {self.checked} ({columns}, linked_to bigint, linked_batch bigint)"
        )

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.checked}")

    def copy_rows(self, checked_rows) -> int:
        """COPY the validated rows (consumed lazily: memory stays flat) into the temp table."""
        count = 0
        with self.cursor.copy(f"COPY {self.checked} ({', '.join(CHECKED_COLUMNS)}) FROM STDIN") as copy:
            write = copy.write_row
            for row in checked_rows:
                write(row)
                count += 1
        self.cursor.execute(f"ANALYZE {self.checked}")  # autovacuum never analyses temp tables
        return count

    def reject_repeated_keys(self, key_label: str = "external id") -> None:
        """The same natural key twice in one file: the first occurrence stands, later ones are
        rejected (a hash aggregate finds the few repeated keys; only their rows are updated).
        ``key_label`` names the key in the message (Normalization.key_label)."""
        self.cursor.execute(
            f"""
            UPDATE {self.checked} c SET reason = 'duplicate_key',
              message = format('%%s %%s on %%s already appears at line %%s of this file',
                               %(label)s::text, c.external_id, c.business_date, d.first_line)
            FROM (SELECT external_id, business_date, min(line_no) AS first_line FROM {self.checked}
                  WHERE reason IS NULL GROUP BY external_id, business_date HAVING count(*) > 1) d
            WHERE c.reason IS NULL AND c.external_id = d.external_id
              AND c.business_date = d.business_date AND c.line_no > d.first_line
            """,
            {"label": key_label},
        )

    def date_range(self) -> tuple[date, date] | None:
        self.cursor.execute(
            f"SELECT min(business_date), max(business_date) FROM {self.checked} WHERE reason IS NULL"
        )
        first, last = self.cursor.fetchone()
        return None if first is None else (first, last)

    def reject_all(self, code: str, message: str) -> None:
        """A file-level control failed: every row is rejected with the file's reason."""
        self.cursor.execute(f"UPDATE {self.checked} SET reason = %s, message = %s", [code, message])

    def load(self, *, tenant_id: int, source_id: int, batch_id: int, kind: str,
             date_range: tuple[date, date] | None, partner=None,
             key_label: str = "external id") -> LoadResult:  # fmt: skip
        """Inside the caller's transaction: duplicates against existing records, amendments, entries
        the partner source (a DataSource, or None) loaded already, insert.

        The batch's own date range bounds every join with the record table, as constants, so the
        planner prunes to the months the batch touches instead of every partition of the table.
        """
        cursor, checked = self.cursor, self.checked
        first, last = date_range or (date.min, date.min)
        key = {"tenant": tenant_id, "source": source_id, "batch": batch_id, "kind": kind, "first": first,
               "last": last, "label": key_label}  # fmt: skip
        same_key = (
            "r.tenant_id = %(tenant)s AND r.source_id = %(source)s AND r.external_id = c.external_id"
            " AND r.business_date = c.business_date AND r.business_date BETWEEN %(first)s AND %(last)s"
        )
        live = [f"{same_key} AND {status}" for status in _LIVE_STATUSES]
        # An amendment flag without a version: the next version after the highest one loaded.
        highest = ", ".join(f"(SELECT max(r.version) FROM reconciliation_record r WHERE {w})" for w in live)
        cursor.execute(
            f"UPDATE {checked} c SET version = coalesce(greatest({highest}), 0) + 1"
            " WHERE c.reason IS NULL AND c.amend AND NOT c.version_given",
            key,
        )
        # A version at or below one loaded (in any status but reversed) is a duplicate: one pass per
        # index; the rows the first pass rejects are not probed again.
        for where in live:
            cursor.execute(
                f"""
                UPDATE {checked} c SET reason = 'duplicate_key',
                  message = format('%%s %%s on %%s version %%s is already loaded'
                                   ' (batch %%s, version %%s)',
                                   %(label)s::text, c.external_id, c.business_date, c.version,
                                   r.batch_id, r.version)
                FROM reconciliation_record r
                WHERE c.reason IS NULL AND {where} AND r.version >= c.version
                """,
                key,
            )
        if partner is not None:
            self.link_re_reports(key, partner)
        # Amendments: the active lower version is kept as history (superseded) before the insert,
        # so the one-active-version index holds at every moment.
        cursor.execute(
            f"""
            UPDATE reconciliation_record r SET status = 'superseded'
            FROM {checked} c
            WHERE c.reason IS NULL AND r.tenant_id = %(tenant)s AND r.source_id = %(source)s
              AND r.external_id = c.external_id AND r.business_date = c.business_date
              AND r.status = 'active' AND r.version < c.version
              AND r.business_date BETWEEN %(first)s AND %(last)s
            """,
            key,
        )
        superseded = cursor.rowcount
        cursor.execute(
            f"""
            INSERT INTO reconciliation_record (tenant_id, source_id, batch_id, kind, business_date,
              external_id, version, status, account, instrument, reference, counterparty, currency,
              amount, quantity, trade_date, value_date, description, attributes, line_no, created_at)
            SELECT %(tenant)s, %(source)s, %(batch)s, %(kind)s, business_date, external_id, version,
              CASE WHEN linked_to IS NULL THEN 'active' ELSE 'linked' END, account, instrument,
              reference, counterparty, currency, amount, quantity, trade_date, value_date, description,
              coalesce(attributes, '{{}}'::jsonb) || CASE WHEN linked_to IS NULL THEN '{{}}'::jsonb
                ELSE jsonb_build_object('linked_to', linked_to, 'linked_batch', linked_batch) END,
              line_no, now()
            FROM {checked} WHERE reason IS NULL
            """,
            key,
        )
        cursor.execute(
            f"""
            INSERT INTO reconciliation_rejection
              (tenant_id, batch_id, line_no, raw, reason, message, created_at)
            SELECT %(tenant)s, %(batch)s, line_no, coalesce(raw, ''), reason, coalesce(message, ''), now()
            FROM {checked} WHERE reason IS NOT NULL
            """,
            key,
        )
        return self.summary(superseded=superseded)

    def link_re_reports(self, key: dict, partner) -> None:
        """Rows the partner source loaded already (same account, servicer reference and part,
        booked at most LINK_WINDOW_DAYS apart) are marked to be stored ``linked`` to the partner's
        active record. A re-report that cannot be linked safely is rejected ``re_report_conflict``
        with the reason: another amount or currency, split into other transactions, several
        candidates on either side. Rows the partner does not carry load active as before."""
        cursor, checked, candidates = self.cursor, self.checked, f"{self.checked}_partner"
        window = timedelta(days=LINK_WINDOW_DAYS)
        key = {**key, "partner": partner.pk, "partner_name": partner.name, "window": LINK_WINDOW_DAYS,
               "link_first": key["first"] - window, "link_last": key["last"] + window}  # fmt: skip
        ref_c, part_c = _LINK_REF.format(a="c2"), _LINK_PART.format(a="c2")
        cursor.execute(f"DROP TABLE IF EXISTS {candidates}")
        # The partner's active records of the accounts in this file, in the batch's dates ± the window.
        cursor.execute(
            f"""
            CREATE TEMP TABLE {candidates} AS
            SELECT r.id, r.batch_id, r.business_date, r.account, {_LINK_REF.format(a="r")} AS ref,
              {_LINK_PART.format(a="r")} AS part, r.currency, r.amount
            FROM reconciliation_record r
            WHERE r.tenant_id = %(tenant)s AND r.source_id = %(partner)s AND r.status = 'active'
              AND r.business_date BETWEEN %(link_first)s AND %(link_last)s
              AND {_LINK_REF.format(a="r")} <> ''
              AND r.account IN (SELECT account FROM {checked} WHERE reason IS NULL)
            """,
            key,
        )
        cursor.execute(f"ANALYZE {candidates}")
        cursor.execute(
            f"""
            UPDATE {checked} c SET
              linked_to = CASE WHEN d.problem IS NULL THEN d.partner_id END,
              linked_batch = CASE WHEN d.problem IS NULL THEN d.partner_batch END,
              reason = CASE WHEN d.problem IS NOT NULL THEN 're_report_conflict' END,
              message = CASE WHEN d.problem IS NOT NULL THEN format(
                'account %%s, account servicer reference %%s: %%s', d.account, d.ref, d.problem) END
            FROM (
              SELECT m.external_id, m.business_date, m.account, m.ref, m.partner_id, m.partner_batch,
                CASE
                  WHEN m.in_file > 1 THEN format('%%s entries of this file carry it and source %%s'
                    ' loaded it already (record %%s): cannot tell which one it re-reports',
                    m.in_file, %(partner_name)s, m.ids)
                  WHEN m.same_part = 0 THEN format('source %%s loaded it split into other'
                    ' transactions (record %%s): not linked', %(partner_name)s, m.ids)
                  WHEN m.same_part > 1 THEN format('source %%s has %%s active records of it (%%s):'
                    ' cannot tell which one this re-reports', %(partner_name)s, m.same_part, m.ids)
                  WHEN m.partner_currency <> m.currency OR m.partner_amount IS DISTINCT FROM m.amount
                    THEN format('%%s %%s here, but %%s %%s in record %%s (batch %%s) of source %%s:'
                    ' not linked; reverse the wrong batch and load the right one again', m.amount,
                    m.currency, m.partner_amount, m.partner_currency, m.partner_id, m.partner_batch,
                    %(partner_name)s)
                END AS problem
              FROM (
                -- Each row with the partner's records of its reference booked within the window
                -- (a hash join on account and reference; few records share one).
                SELECT k.external_id, k.business_date, k.account, k.ref, k.in_file, k.currency,
                  k.amount, string_agg(p.id::text, ', ' ORDER BY p.id) AS ids,
                  count(*) FILTER (WHERE p.part = k.part) AS same_part,
                  min(p.id) FILTER (WHERE p.part = k.part) AS partner_id,
                  min(p.batch_id) FILTER (WHERE p.part = k.part) AS partner_batch,
                  min(p.amount) FILTER (WHERE p.part = k.part) AS partner_amount,
                  min(p.currency) FILTER (WHERE p.part = k.part) AS partner_currency
                FROM (
                  SELECT c2.external_id, c2.business_date, c2.account, c2.currency, c2.amount,
                    {ref_c} AS ref, {part_c} AS part,
                    count(*) OVER (PARTITION BY c2.account, {ref_c}, {part_c}) AS in_file
                  FROM {checked} c2
                  WHERE c2.reason IS NULL AND {ref_c} <> ''
                ) k
                JOIN {candidates} p ON p.account = k.account AND p.ref = k.ref
                  AND p.business_date BETWEEN k.business_date - %(window)s AND k.business_date + %(window)s
                GROUP BY k.external_id, k.business_date, k.account, k.ref, k.in_file, k.currency, k.amount
              ) m
            ) d
            WHERE c.reason IS NULL AND c.external_id = d.external_id AND c.business_date = d.business_date
            """,
            key,
        )
        cursor.execute(f"DROP TABLE {candidates}")

    def summary(self, superseded: int = 0) -> LoadResult:
        self.cursor.execute(
            f"SELECT reason, currency, count(*), sum(amount), sum(quantity), count(linked_to)"
            f" FROM {self.checked} GROUP BY reason, currency"
        )
        result = LoadResult(superseded=superseded)
        for reason, currency, count, amount, quantity, linked in self.cursor.fetchall():
            if reason is None:
                result.accepted += count
                result.linked += linked
                result.add_total(currency, count, amount, quantity)
            else:
                result.rejected += count
                result.reasons[reason] = result.reasons.get(reason, 0) + count
        return result
