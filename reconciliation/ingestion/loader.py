"""The bulk path, in SQL: COPY into staging, validate set-based, insert set-based.

No per-row ORM work: the parser's text rows are COPYed (psycopg 3) into a session TEMP table, one
INSERT … SELECT types and validates them into a second temp table with a reason per row, and the
load is an INSERT … SELECT into the partitioned record table plus one into the rejections, in the
caller's single transaction. Temp tables are not WAL-logged and vanish with the session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from reconciliation.ingestion.currencies import iso_currency_codes
from reconciliation.ingestion.mapping import Normalization, required_value_field
from reconciliation.ingestion.parsers import STAGE_COLUMNS

# Widths of the record table's columns; a longer value is a rejection, not a failed statement.
MAX_LENGTHS = {"external_id": 128, "account": 64, "instrument": 64, "reference": 140, "counterparty": 140}
AMOUNT_RE = r"^[+-]?[0-9]{1,18}(\.[0-9]{1,6})?$"  # numeric(24, 6), never rounded
QUANTITY_RE = r"^[+-]?[0-9]{1,20}(\.[0-9]{1,8})?$"  # numeric(28, 8)
TRUTHY = ["1", "true", "t", "yes", "y"]
DATE_COLUMNS = ("business_date", "trade_date", "value_date")


@dataclass
class LoadResult:
    accepted: int = 0
    rejected: int = 0
    superseded: int = 0
    totals: dict = field(default_factory=dict)  # {currency: {"count", "amount", "quantity"}} (accepted)
    reasons: dict = field(default_factory=dict)  # {reason: count}


def pg_date_formats(strftime_format: str) -> list[str]:
    """'%d/%m/%Y' → the to_char formats writing a date that way, with and without leading zeros."""
    out = []
    for month in ("MM", "FMMM"):
        for day in ("DD", "FMDD"):
            parts = []
            for token in re.split(r"(%[Ymd])", strftime_format):
                if token in ("%Y", "%m", "%d"):
                    parts.append({"%Y": "YYYY", "%m": month, "%d": day}[token])
                elif token:
                    parts.append('"' + token.replace('"', '\\"') + '"')
            out.append("".join(parts))
    return out


class Staging:
    """The two temp tables of one batch on the current connection."""

    def __init__(self, cursor, batch_id: int):
        self.cursor = cursor
        self.stage = f"jf_stage_{batch_id}"
        self.checked = f"jf_checked_{batch_id}"
        self.calendar = f"jf_calendar_{batch_id}"

    def create(self) -> None:
        text_columns = ", ".join(f"{c} text" for c in STAGE_COLUMNS[1:])
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.stage}, {self.checked}")
        self.cursor.execute(f"CREATE TEMP TABLE {self.stage} (line_no integer, {text_columns})")
        self.cursor.execute(
            f"CREATE TEMP TABLE {self.checked} (line_no integer, raw text, reason text, message text,"
            " external_id text, version integer, version_given boolean, amend boolean, business_date date,"
            " account text, instrument text, reference text, counterparty text, currency text,"
            " amount numeric, quantity numeric, trade_date date, value_date date, description text,"
            " attributes jsonb)"
        )

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.stage}, {self.checked}, {self.calendar}")

    def _calendar(self, n: Normalization, window: tuple[date, date]) -> None:
        """Every day from a year before the window to a year after, as text in the source's format."""
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.calendar}")
        self.cursor.execute(f"CREATE TEMP TABLE {self.calendar} (txt text, d date)")
        self.cursor.execute(
            f"""
            INSERT INTO {self.calendar}
            SELECT DISTINCT ON (txt) txt, d FROM (
              SELECT to_char(g, f) AS txt, g::date AS d
              FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') g,
                   unnest(%(formats)s::text[]) f
            ) x ORDER BY txt
            """,
            {"first": window[0] - timedelta(days=366), "last": window[1] + timedelta(days=366),
             "formats": pg_date_formats(n.date_format)},
        )  # fmt: skip
        self.cursor.execute(f"ANALYZE {self.calendar}")

    def copy_rows(self, rows) -> int:
        """COPY the parser's rows (consumed lazily: memory stays flat) into the stage table."""
        count = 0
        with self.cursor.copy(f"COPY {self.stage} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write(row)
                count += 1
        return count

    def validate(self, *, kind: str, normalization: Normalization, window: tuple[date, date]) -> None:
        """Type every staged row and give it a reason when it cannot be accepted (set-based).

        Each nested level ends in OFFSET 0, a planner fence: without it PostgreSQL flattens the
        levels and repeats every regex and date parse once per reference (measured ~100x slower).
        """
        n = normalization
        amount = "nullif(btrim(s.amount), '')"
        if n.thousands_separator:
            amount = f"replace({amount}, %(thousands)s, '')"
        if n.decimal_separator != ".":
            amount = f"replace({amount}, %(decimal)s, '.')"
        if n.sign_column:
            sign = "CASE WHEN upper(btrim(s.sign)) = ANY(%(negative)s) THEN -1 WHEN upper(btrim(s.sign)) = ANY(%(positive)s) THEN 1 END"  # noqa: E501
        else:
            sign = "-1" if n.negate else "1"
        y, m, d = n.date_groups
        # Dates: a hash join with a small calendar of every day near the window, written in the
        # source's format, reads a valid date in ~0.2µs; only the text it misses (malformed, or
        # far outside the window) takes the slow regex parse (~10µs) to tell which.
        self._calendar(n, window)
        parsed_dates = ", ".join(
            f"coalesce(cal_{c}.d, CASE WHEN u.{c}_t IS NOT NULL THEN jf_date_or_null("
            f"(regexp_match(u.{c}_t, %(date_re)s))[{y}], (regexp_match(u.{c}_t, %(date_re)s))[{m}], "
            f"(regexp_match(u.{c}_t, %(date_re)s))[{d}]) END) AS {c}"
            for c in DATE_COLUMNS
        )
        calendar_joins = " ".join(
            f"LEFT JOIN {self.calendar} cal_{c} ON cal_{c}.txt = u.{c}_t" for c in DATE_COLUMNS
        )
        value_field = required_value_field(kind)
        too_long = " OR ".join(f"length({c}) > {width}" for c, width in MAX_LENGTHS.items())
        self.cursor.execute(
            f"""
            INSERT INTO {self.checked}
            SELECT line_no, raw, reason,
              CASE reason
                WHEN 'missing_field' THEN
                  CASE WHEN external_id IS NULL THEN 'external_id is missing'
                       WHEN business_date_t IS NULL THEN 'business_date is missing'
                       WHEN {value_field}_t IS NULL THEN '{value_field} is missing'
                       ELSE 'currency is missing (and the source has no default currency)' END
                WHEN 'field_too_long' THEN 'a field is longer than its column allows'
                WHEN 'malformed_date' THEN format('date %%s / %%s / %%s does not match %%s',
                    quote_nullable(business_date_t), quote_nullable(trade_date_t),
                    quote_nullable(value_date_t), %(date_format)s)
                WHEN 'out_of_window' THEN format('business date %%s is outside the tenant window %%s .. %%s',
                    business_date, %(first)s::date, %(last)s::date)
                WHEN 'malformed_amount' THEN format('amount %%L is not a decimal with at most 18 integer'
                    ' and 6 fractional digits', amount_t)
                WHEN 'malformed_quantity' THEN format('quantity %%L is not a decimal with at most 20 integer'
                    ' and 8 fractional digits', quantity_t)
                WHEN 'malformed_version' THEN format('version %%L is not a positive integer', version_t)
                WHEN 'malformed_sign' THEN format('sign %%L is not one of the mapping''s debit/credit values',
                    sign_t)
                WHEN 'unknown_currency' THEN format('currency %%L is not an ISO 4217 code', currency)
                ELSE parse_message END,
              external_id, coalesce(version, 1), version_t IS NOT NULL, coalesce(amend, false), business_date,
              account, instrument, reference, counterparty, currency, amount * sign_v, quantity,
              trade_date, value_date, description, attributes
            FROM (
              SELECT t.*,
                CASE
                  WHEN parse_error IS NOT NULL THEN parse_error
                  WHEN external_id IS NULL OR business_date_t IS NULL OR {value_field}_t IS NULL
                    THEN 'missing_field'
                  WHEN {too_long} THEN 'field_too_long'
                  WHEN business_date IS NULL OR (trade_date_t IS NOT NULL AND trade_date IS NULL)
                    OR (value_date_t IS NOT NULL AND value_date IS NULL) THEN 'malformed_date'
                  WHEN business_date NOT BETWEEN %(first)s AND %(last)s THEN 'out_of_window'
                  WHEN amount_t IS NOT NULL AND amount IS NULL THEN 'malformed_amount'
                  WHEN quantity_t IS NOT NULL AND quantity IS NULL THEN 'malformed_quantity'
                  WHEN version_t IS NOT NULL AND version IS NULL THEN 'malformed_version'
                  WHEN amount IS NOT NULL AND sign_v IS NULL THEN 'malformed_sign'
                  WHEN amount IS NOT NULL AND currency = '' THEN 'missing_field'
                  WHEN currency <> '' AND NOT currency = ANY(%(currencies)s) THEN 'unknown_currency'
                END AS reason
              FROM (
                SELECT u.*, {parsed_dates},
                  CASE WHEN amount_t ~ %(amount_re)s THEN amount_t::numeric END AS amount,
                  CASE WHEN quantity_t ~ %(quantity_re)s THEN quantity_t::numeric END AS quantity,
                  CASE WHEN version_t ~ '^[0-9]{{1,9}}$' AND version_t::bigint BETWEEN 1 AND 2147483647
                       THEN version_t::integer END AS version
                FROM (
                  SELECT s.line_no, s.raw, s.parse_error, s.parse_message,
                    nullif(btrim(s.external_id), '') AS external_id,
                    nullif(btrim(s.version), '') AS version_t,
                    lower(btrim(s.amend)) = ANY(%(truthy)s) AS amend,
                    nullif(btrim(s.business_date), '') AS business_date_t,
                    nullif(btrim(s.trade_date), '') AS trade_date_t,
                    nullif(btrim(s.value_date), '') AS value_date_t,
                    coalesce(btrim(s.account), '') AS account,
                    coalesce(btrim(s.instrument), '') AS instrument,
                    coalesce(btrim(s.reference), '') AS reference,
                    coalesce(btrim(s.counterparty), '') AS counterparty,
                    upper(coalesce(nullif(btrim(s.currency), ''), %(default_currency)s)) AS currency,
                    {amount} AS amount_t,
                    nullif(btrim(s.quantity), '') AS quantity_t,
                    upper(btrim(s.sign)) AS sign_t,
                    {sign} AS sign_v,
                    coalesce(s.description, '') AS description,
                    s.attributes::jsonb AS attributes
                  FROM {self.stage} s
                  OFFSET 0
                ) u
                {calendar_joins}
                OFFSET 0
              ) t
              OFFSET 0
            ) v
            """,
            {
                "thousands": n.thousands_separator, "decimal": n.decimal_separator,
                "negative": list(n.sign_negative), "positive": list(n.sign_positive),
                "date_re": n.date_regex, "date_format": n.date_format, "first": window[0], "last": window[1],
                "amount_re": AMOUNT_RE, "quantity_re": QUANTITY_RE, "truthy": TRUTHY,
                "currencies": iso_currency_codes(), "default_currency": n.default_currency,
            },
        )  # fmt: skip
        self.cursor.execute(f"ANALYZE {self.checked}")  # autovacuum never analyses temp tables
        # The same natural key twice in one file: the first occurrence stands, later ones are
        # rejected (a hash aggregate finds the few repeated keys; only their rows are updated).
        self.cursor.execute(
            f"""
            UPDATE {self.checked} c SET reason = 'duplicate_key',
              message = format('external id %%s on %%s already appears at line %%s of this file',
                               c.external_id, c.business_date, d.first_line)
            FROM (SELECT external_id, business_date, min(line_no) AS first_line FROM {self.checked}
                  WHERE reason IS NULL GROUP BY external_id, business_date HAVING count(*) > 1) d
            WHERE c.reason IS NULL AND c.external_id = d.external_id
              AND c.business_date = d.business_date AND c.line_no > d.first_line
            """,
            {},  # params (even none) so that %% is read as a literal %
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
             date_range: tuple[date, date] | None) -> LoadResult:  # fmt: skip
        """Inside the caller's transaction: duplicates against existing records, amendments, insert.

        The batch's own date range bounds every join with the record table, as constants, so the
        planner prunes to the months the batch touches instead of every partition of the table.
        """
        cursor, checked = self.cursor, self.checked
        first, last = date_range or (date.min, date.min)
        key = {"tenant": tenant_id, "source": source_id, "batch": batch_id, "kind": kind, "first": first,
               "last": last}  # fmt: skip
        live = (
            "r.tenant_id = %(tenant)s AND r.source_id = %(source)s AND r.external_id = c.external_id"
            " AND r.business_date = c.business_date AND r.status <> 'reversed'"
            " AND r.business_date BETWEEN %(first)s AND %(last)s"
        )
        # An amendment flag without a version: the next version after the highest one loaded.
        cursor.execute(
            f"UPDATE {checked} c SET version = coalesce((SELECT max(r.version) FROM reconciliation_record r"
            f" WHERE {live}), 0) + 1 WHERE c.reason IS NULL AND c.amend AND NOT c.version_given",
            key,
        )
        cursor.execute(
            f"""
            UPDATE {checked} c SET reason = 'duplicate_key',
              message = format('external id %%s on %%s version %%s is already loaded'
                               ' (batch %%s, version %%s)',
                               c.external_id, c.business_date, c.version, r.batch_id, r.version)
            FROM reconciliation_record r
            WHERE c.reason IS NULL AND {live} AND r.version >= c.version
            """,
            key,
        )
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
              'active', account, instrument, reference, counterparty, currency, amount, quantity,
              trade_date, value_date, description, coalesce(attributes, '{{}}'::jsonb), line_no, now()
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

    def summary(self, superseded: int = 0) -> LoadResult:
        self.cursor.execute(
            f"SELECT reason, currency, count(*), sum(amount), sum(quantity) FROM {self.checked}"
            " GROUP BY reason, currency"
        )
        result = LoadResult(superseded=superseded)
        for reason, currency, count, amount, quantity in self.cursor.fetchall():
            if reason is None:
                result.accepted += count
                result.totals[currency or ""] = {
                    "count": count,
                    "amount": str(amount if amount is not None else Decimal(0)),
                    "quantity": str(quantity if quantity is not None else Decimal(0)),
                }
            else:
                result.rejected += count
                result.reasons[reason] = result.reasons.get(reason, 0) + count
        return result
