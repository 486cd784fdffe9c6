"""The fuzzy reference pass: pg_trgm similarity of the references above a per-pass threshold,
combined with the usual key, amount and date conditions.

    {"name": "fuzzy_ref", "type": "fuzzy", "min_similarity": "0.6", "keys": ["account"],
     "amount": {"absolute": "0.05"}, "date": {"field": "value_date", "window_days": 3},
     "auto_threshold": "0.9", "suggest_threshold": "0.6"}

Score = similarity x closeness (passes.closeness_sql). Similarity is pg_trgm's trigram Jaccard,
computed exactly as NUMERIC by ``jf_trgm_similarity`` (migration 0006); the float4
``similarity()`` prefilters with a slack far wider than float4's rounding.

How candidates are found matters more than anything else here (measured, docs/matching-depth.md):
references of one bank share their format's trigrams, so probing a trigram index per record is a
nested loop of ~1.6 ms per record. The pass therefore joins on its blocking conditions first —
keys, exact amounts and dates as hash keys; tolerances as ranges over a btree index it builds on the
(small, already shrunk) right pool — and computes similarity only on those pairs. Only a pass with
no condition but the reference uses the ``%`` operator with a GIN trigram index on the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from reconciliation.matching.passes import (
    PASS_TYPES,
    TEXT_KEY_FIELDS,
    KeyedPass,
    _decimal,
    _invalid,
)

# Below the exact threshold by far more than float4's relative error (~6e-8): the prefilter never
# drops a pair the exact score would keep.
PREFILTER_SLACK = Decimal("0.000001")


@dataclass
class FuzzyPass(KeyedPass):
    type: ClassVar[str] = "fuzzy"
    extra_spec: ClassVar[frozenset] = frozenset({"min_similarity"})
    keys_required: ClassVar[bool] = False
    min_similarity: Decimal = Decimal("0.5")

    @classmethod
    def parse_extra(cls, spec: dict, where: str) -> dict:
        similarity = _decimal(spec.get("min_similarity", "0.5"), f"{where}.min_similarity")
        if not Decimal(0) < similarity <= 1:
            raise _invalid(f"{where}.min_similarity: a number in (0, 1].", field=where)
        return {"min_similarity": similarity}

    def validate(self, where: str) -> None:
        if "reference" in self.keys:
            raise _invalid(f"{where}.keys: a fuzzy pass compares the reference itself.", field=where)

    def _range(self, column: str, tolerance, params: dict) -> str:
        limit = tolerance.limit_sql(f"l.{column}", params, f"p{self.index}_r{column}")
        return f"r.{column} BETWEEN l.{column} - {limit} AND l.{column} + {limit}"

    def _conditions(self, params: dict) -> tuple[list[str], list[str], str | None]:
        """(join conditions, filters, the column the pass ranges over on the right pool or None).
        A range over [x - limit, x + limit] is exactly the inclusive tolerance test, so no
        separate filter is needed for it."""
        joins = ["l.currency = r.currency"] + [f"l.{k} = r.{k}" for k in self.keys]
        filters = [f"l.{k} <> ''" for k in self.keys if k in TEXT_KEY_FIELDS]
        filters += ["l.currency <> ''", "l.reference <> ''", "r.reference <> ''"]
        ranged = None
        for column, tolerance in (("amount", self.amount), ("quantity", self.quantity)):
            if tolerance is None:
                continue
            if tolerance.is_exact:
                joins.append(f"l.{column} = r.{column}")
            else:
                joins.append(self._range(column, tolerance, params))
                ranged = ranged or column
        if self.date is not None:
            f = self.date.field
            if self.date.window_days == 0:
                joins.append(f"l.{f} = r.{f}")
            else:
                params[f"p{self.index}_days"] = self.date.window_days
                joins.append(
                    f"r.{f} BETWEEN l.{f} - %(p{self.index}_days)s AND l.{f} + %(p{self.index}_days)s"
                )
                ranged = ranged or f
        return joins, filters, ranged

    @property
    def _blocked(self) -> bool:
        """Whether anything but the currency narrows the candidates before similarity."""
        return bool(self.keys or self.amount or self.quantity or self.date)

    def prepare_sql(self, left: str, right: str) -> list[str]:
        _, _, ranged = self._conditions({})
        if ranged:
            return [f"CREATE INDEX ON {right} (currency, {ranged})", f"ANALYZE {right}"]
        if not self._blocked:
            threshold = max(self.min_similarity - PREFILTER_SLACK, Decimal(0))
            return [
                f"CREATE INDEX ON {right} USING gin (reference gin_trgm_ops)",
                f"ANALYZE {right}",
                f"SELECT set_config('pg_trgm.similarity_threshold', '{threshold}', true)",
            ]
        return []

    def candidates_sql(self, left: str, right: str) -> tuple[str, dict]:
        params: dict = {
            "prefilter": max(self.min_similarity - PREFILTER_SLACK, Decimal(0)),
            "min_similarity": self.min_similarity,
        }
        joins, filters, _ = self._conditions(params)
        if not self._blocked:
            joins.append("l.reference %% r.reference")  # the GIN index prepare_sql built (%% is %)
        date_delta = f"abs(l.{self.date.field} - r.{self.date.field})" if self.date else "NULL::integer"
        sql = f"""
            INSERT INTO _cand (l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, score)
            SELECT l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, sim * closeness
            FROM (
                SELECT l.id AS l_id, l.business_date AS l_date, r.id AS r_id, r.business_date AS r_date,
                       abs(l.amount - r.amount) AS d_amount, abs(l.quantity - r.quantity) AS d_quantity,
                       {date_delta} AS d_days, jf_trgm_similarity(l.reference, r.reference) AS sim,
                       {self.closeness_sql(params)} AS closeness
                FROM {left} l JOIN {right} r ON {" AND ".join(joins)}
                WHERE {" AND ".join(filters)}
                  AND similarity(l.reference, r.reference) >= %(prefilter)s
            ) c
            WHERE sim >= %(min_similarity)s
        """
        return sql, params

    def describe(self) -> dict:
        return super().describe() | {"min_similarity": str(self.min_similarity)}


PASS_TYPES[FuzzyPass.type] = FuzzyPass
