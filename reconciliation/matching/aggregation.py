"""Aggregation passes: one record against the sum of many (1:N, N:1), or many against many (M:N).

    {"name": "batch_payments", "type": "aggregate", "cardinality": "one_to_many",
     "keys": ["reference"], "amount": {"absolute": "0.01"},
     "date": {"field": "value_date", "window_days": 2, "group": "member"}}

- one_to_many: the right pool grouped by the keys and currency (groups of two or more); a left record
  with the same keys whose amount equals the group's sum within tolerance takes the whole group.
- many_to_one: the mirror image. many_to_many: both sides grouped by the keys; two groups whose sums
  agree match as one (a 1:1 "group" is left to the pairing passes).
- Whole key groups, never subsets: subset-sum is exponential, and a statement line that pays a
  batch carries the batch's reference. A group with a stray member does not sum and falls through to
  the breaks, where the analyst sees it.
- Dates (optional, ``"date": {"field": "value_date", "window_days": 2, "group": "member"}``): the
  condition holds for every member, never for the sums alone, so a partial settlement days outside
  the window cannot complete a group. ``member`` (the default): every record within window_days of
  every record of the other side (in 1:N and N:1: each member within the window of its
  counterpart, the window of a pairing pass applied to each member). ``span``: the whole group,
  earliest to latest date of both sides, within window_days; never looser than ``member`` (the
  counterpart is inside the span). A group that fails it is not matched: its records stay for
  later passes, then breaks. A member without the date never matches (as in a pairing pass).
  Without ``date`` no date is compared (as before dates were added: the rule versions already
  approved keep their meaning).

One statement per pass (GROUP BY, hash join on the keys, a window for the one-to-one choice), written
into the engine's ``_agg`` table: one row per match with the member ids and dates of each side as
arrays. Every member later becomes one match item, so the unique index "a record in at most one
active match" holds for groups exactly as for pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from reconciliation.matching.passes import (
    PASS_TYPES,
    TEXT_KEY_FIELDS,
    THRESHOLD_KEYS,
    ZERO,
    DateWindow,
    Pass,
    Tolerance,
    _invalid,
    closeness_sql,
    parse_amount_quantity,
    parse_keys,
    parse_thresholds,
)

CARDINALITIES = {"one_to_many": "1:N", "many_to_one": "N:1", "many_to_many": "M:N"}
DATE_GROUPS = ("member", "span")


@dataclass(frozen=True)
class GroupDateWindow(DateWindow):
    """An aggregation pass's date condition over whole groups; each side of a candidate carries the
    earliest and latest date of its records as ``d_min`` and ``d_max`` (one record: both its date)."""

    group: str = "member"

    def delta_sql(self) -> str:
        if self.group == "span":
            return "(greatest(l.d_max, r.d_max) - least(l.d_min, r.d_min))"
        # The farthest any record is from a record of the other side (never negative: if one
        # difference is, the other side's dates all lie beyond this one's, and the other is not).
        return "greatest(l.d_max - r.d_min, r.d_max - l.d_min)"

    @classmethod
    def parse(cls, spec, where: str) -> GroupDateWindow:
        rest = dict(spec) if isinstance(spec, dict) else spec
        group = rest.pop("group", "member") if isinstance(rest, dict) else None
        window = DateWindow.parse(rest, where)
        unknown = set(rest) - {"field", "window_days"}
        if unknown:
            raise _invalid(f"{where}: unknown keys {sorted(unknown)}.", field=where)
        if group not in DATE_GROUPS:
            raise _invalid(
                f"{where}.group: 'member' (every record within the window of the other side's) or "
                f"'span' (the whole group within the window).",
                field=where,
            )
        return cls(window.field, window.window_days, group)

    def as_json(self) -> dict:
        return {"field": self.field, "window_days": self.window_days, "group": self.group}


@dataclass
class AggregatePass(Pass):
    type: ClassVar[str] = "aggregate"
    cardinality: str = "one_to_many"
    keys: tuple[str, ...] = ()
    amount: Tolerance | None = field(default_factory=lambda: Tolerance(absolute=ZERO))
    quantity: Tolerance | None = None
    date: GroupDateWindow | None = None

    def _side(self, pool: str, grouped: bool) -> str:
        """A side as rows of (keys, currency, amount, quantity, ids, dates, n[, d_min, d_max]): one
        per record, or one per key group (every member with an amount, and the date when compared;
        groups of two or more)."""
        keys = ", ".join(self.keys)
        compared = [c for c, t in (("amount", self.amount), ("quantity", self.quantity)) if t is not None]
        if self.date is not None:
            compared.append(self.date.field)
        nonblank = " AND ".join(
            [f"{k} <> ''" for k in self.keys if k in TEXT_KEY_FIELDS] + ["currency <> ''"]
        )
        if not grouped:
            span = f", {self.date.field} AS d_min, {self.date.field} AS d_max" if self.date else ""
            return f"""
                SELECT {keys}, currency, amount, quantity, ARRAY[id] AS ids, ARRAY[business_date] AS dates,
                       1 AS n{span}
                FROM {pool} WHERE {nonblank} AND {" AND ".join(f"{c} IS NOT NULL" for c in compared)}"""
        quantity = "sum(quantity)" if self.quantity is not None else "NULL::numeric"
        span = f", min({self.date.field}) AS d_min, max({self.date.field}) AS d_max" if self.date else ""
        return f"""
                SELECT {keys}, currency, sum(amount) AS amount, {quantity} AS quantity,
                       array_agg(id ORDER BY id) AS ids, array_agg(business_date ORDER BY id) AS dates,
                       count(*) AS n{span}
                FROM {pool} WHERE {nonblank}
                GROUP BY {keys}, currency
                HAVING count(*) >= {1 if self.cardinality == "many_to_many" else 2}
                   AND {" AND ".join(f"count({c}) = count(*)" for c in compared)}"""

    def groups_sql(self, left: str, right: str, *, rejected: bool) -> tuple[str, dict]:
        """One INSERT of this pass's matches (and suggestions) into ``_agg``; ``rejected``: whether
        ``_rejected`` holds record sets analysts rejected (never proposed again)."""
        params: dict = {"pass_no": self.index, "auto": self.auto_threshold, "floor": self.suggest_threshold}
        left_side = self._side(left, grouped=self.cardinality != "one_to_many")
        right_side = self._side(right, grouped=self.cardinality != "many_to_one")
        tests = []
        for column, tolerance in (("amount", self.amount), ("quantity", self.quantity)):
            if tolerance is not None:
                tests.append(tolerance.sql(column, params, f"p{self.index}_g{column}"))
        days = "NULL::integer"
        if self.date is not None:
            days = self.date.delta_sql()
            params[f"p{self.index}_gdays"] = self.date.window_days
            tests.append(f"{days} <= %(p{self.index}_gdays)s")
        closeness = closeness_sql(
            self.index, params, amount=self.amount, quantity=self.quantity, date=self.date
        )
        on = " AND ".join([f"l.{k} = r.{k}" for k in self.keys] + ["l.currency = r.currency"])
        not_rejected = (
            """AND NOT EXISTS (
                      SELECT 1 FROM _rejected x
                      WHERE x.ids = (SELECT array_agg(i ORDER BY i) FROM unnest(l.ids || r.ids) i))"""
            if rejected
            else ""
        )
        return (
            f"""
            INSERT INTO _agg (pass_no, l_ids, l_dates, r_ids, r_dates, score, status, differences)
            SELECT %(pass_no)s, l_ids, l_dates, r_ids, r_dates, score,
                   CASE WHEN score >= %(auto)s THEN 'active' ELSE 'suggested' END,
                   jsonb_strip_nulls(jsonb_build_object(
                       'cardinality', cardinality(l_ids) || ':' || cardinality(r_ids),
                       'amount_left_sum', l_amount::text, 'amount_right_sum', r_amount::text,
                       'amount_abs_delta', nullif(abs(l_amount - r_amount), 0)::text,
                       'quantity_abs_delta', nullif(abs(l_quantity - r_quantity), 0)::text,
                       'date_days', nullif(d_days, 0)))
            FROM (
                SELECT l.ids AS l_ids, l.dates AS l_dates, r.ids AS r_ids, r.dates AS r_dates,
                       l.amount AS l_amount, r.amount AS r_amount, l.quantity AS l_quantity,
                       r.quantity AS r_quantity, {days} AS d_days, {closeness} AS score,
                       row_number() OVER (PARTITION BY l.ids ORDER BY {closeness} DESC, r.ids) AS best_l,
                       row_number() OVER (PARTITION BY r.ids ORDER BY {closeness} DESC, l.ids) AS best_r
                FROM ({left_side}) l JOIN ({right_side}) r ON {on}
                WHERE l.n + r.n > 2 AND {" AND ".join(tests) or "true"} {not_rejected}
            ) c
            WHERE best_l = 1 AND best_r = 1 AND score >= %(floor)s
            """,
            params,
        )

    def describe(self) -> dict:
        return {
            "cardinality": self.cardinality,
            "keys": list(self.keys),
            "amount": self.amount.as_json() if self.amount else None,
            "quantity": self.quantity.as_json() if self.quantity else None,
            "date": self.date.as_json() if self.date else None,
        }

    @classmethod
    def parse(cls, spec: dict, index: int, where: str) -> AggregatePass:
        allowed = {"name", "type", "cardinality", "keys", "amount", "quantity", "date"} | THRESHOLD_KEYS
        unknown = set(spec) - allowed
        if unknown:
            raise _invalid(f"{where}: unknown keys {sorted(unknown)}.", field=where)
        cardinality = spec.get("cardinality")
        if cardinality not in CARDINALITIES:
            raise _invalid(f"{where}.cardinality: one of {sorted(CARDINALITIES)}.", field=where)
        keys = parse_keys(spec, where)
        amount, quantity = parse_amount_quantity(spec, where)
        if amount is None and quantity is None:
            raise _invalid(f"{where}: compare the sums of amount and/or quantity.", field=where)
        date = GroupDateWindow.parse(spec["date"], f"{where}.date") if spec.get("date") is not None else None
        auto, suggest = parse_thresholds(spec, where)
        return cls(
            index=index,
            name=spec["name"],
            cardinality=cardinality,
            keys=tuple(keys),
            amount=amount,
            quantity=quantity,
            date=date,
            auto_threshold=auto,
            suggest_threshold=suggest,
        )


PASS_TYPES[AggregatePass.type] = AggregatePass
