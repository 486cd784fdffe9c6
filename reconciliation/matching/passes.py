"""Rule passes as data: parsing a rule set, and one set-based SQL statement per pass.

A rule set (stored as JSON on a RuleVersion) is an ordered list of passes. Each pass sees only what
the earlier passes left: the engine removes matched and excluded records from its working pools
(temporary tables ``_l`` and ``_r``, one row per record in scope, see engine.py) after every pass.

A pass is a class registered in ``PASS_TYPES`` under its ``type``. A *pairing* pass writes candidate
pairs with one ``INSERT INTO _cand … SELECT`` (a hash join in PostgreSQL); the engine then picks a
one-to-one assignment from them (mutual best by cost) and records the matches with the pass's
``outcome``. An *exclusion* pass writes the records it excludes to ``_excl``. Fuzzy matching,
aggregation (one-to-many) and suggestions (next issue) are new classes here:

- fuzzy: another ``candidates_sql`` (e.g. pg_trgm similarity on reference) with cost = 1 - similarity;
- suggestion: ``outcome = "suggested"`` (the engine stores the match without holding its records);
- aggregation: overrides ``assign_sql`` to group many records against one.

Money is NUMERIC end to end: tolerances are parsed from strings (a JSON float is refused) and sent
to PostgreSQL as Decimal parameters. Boundaries are inclusive. Different currencies never match:
every pairing pass joins on currency, whatever its keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from jfintech.common.errors import ApplicationError

# Record columns a rule may compare for equality (identifiers we own; never user text in SQL).
TEXT_KEY_FIELDS = ("reference", "account", "instrument", "counterparty", "external_id")
DATE_FIELDS = ("business_date", "trade_date", "value_date")
KEY_FIELDS = TEXT_KEY_FIELDS + DATE_FIELDS
FILTER_FIELDS = (*KEY_FIELDS, "amount", "quantity", "currency", "kind")
FILTER_OPS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
ZERO = Decimal(0)


def _invalid(message: str, **extra) -> ApplicationError:
    return ApplicationError(message, code="invalid_rules", extra=extra, status=400)


def _decimal(value, where: str) -> Decimal:
    """A tolerance as Decimal. Floats are refused: 0.1 as a float is not 0.1."""
    if isinstance(value, bool | float):
        raise _invalid(f'{where}: give numbers as strings (e.g. "0.05"), not floats.', field=where)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _invalid(f"{where}: {value!r} is not a number.", field=where) from None
    if not number.is_finite() or number < 0:
        raise _invalid(f"{where}: must be a finite number >= 0.", field=where)
    return number


@dataclass(frozen=True)
class Tolerance:
    """|left - right| <= absolute and/or <= percent% of |left|; inclusive. ``combine`` says whether a
    pair must be within any one of the given limits or all of them."""

    absolute: Decimal | None = None
    percent: Decimal | None = None
    combine: str = "any"

    @classmethod
    def parse(cls, spec, where: str) -> Tolerance:
        if spec is True:
            return cls(absolute=ZERO)
        if not isinstance(spec, dict):
            raise _invalid(f'{where}: expected an object like {{"absolute": "0.05"}}.', field=where)
        unknown = set(spec) - {"absolute", "percent", "combine"}
        if unknown:
            raise _invalid(f"{where}: unknown keys {sorted(unknown)}.", field=where)
        absolute = (
            _decimal(spec["absolute"], f"{where}.absolute") if spec.get("absolute") is not None else None
        )
        percent = _decimal(spec["percent"], f"{where}.percent") if spec.get("percent") is not None else None
        if absolute is None and percent is None:
            raise _invalid(f"{where}: give an absolute and/or a percent tolerance.", field=where)
        combine = spec.get("combine", "any")
        if combine not in ("any", "all"):
            raise _invalid(f"{where}.combine: 'any' or 'all'.", field=where)
        return cls(absolute, percent, combine)

    @property
    def is_exact(self) -> bool:
        """Only equality passes: every limit is zero ("any"), or one of them is ("all")."""
        limits = [x for x in (self.absolute, self.percent) if x is not None]
        zeros = [x == ZERO for x in limits]
        return all(zeros) if self.combine == "any" else any(zeros)

    def sql(self, column: str, params: dict, prefix: str) -> str:
        """The inclusive tolerance test on ``l.<column>`` vs ``r.<column>``."""
        delta = f"abs(l.{column} - r.{column})"
        tests = []
        if self.absolute is not None:
            params[f"{prefix}_abs"] = self.absolute
            tests.append(f"{delta} <= %({prefix}_abs)s")
        if self.percent is not None:
            params[f"{prefix}_pct"] = self.percent
            tests.append(f"{delta} <= abs(l.{column}) * %({prefix}_pct)s / 100")
        joiner = " OR " if self.combine == "any" else " AND "
        return "(" + joiner.join(tests) + ")"

    def limit_sql(self, column: str, params: dict, prefix: str) -> str:
        """The largest delta this tolerance allows for ``column`` (a left-side expression)."""
        limits = []
        if self.absolute is not None:
            params[f"{prefix}_abs"] = self.absolute
            limits.append(f"%({prefix}_abs)s::numeric")
        if self.percent is not None:
            params[f"{prefix}_pct"] = self.percent
            limits.append(f"abs({column}) * %({prefix}_pct)s / 100")
        if len(limits) == 1:
            return limits[0]
        return f"{'greatest' if self.combine == 'any' else 'least'}({', '.join(limits)})"

    def as_json(self) -> dict:
        out = {"combine": self.combine}
        if self.absolute is not None:
            out["absolute"] = str(self.absolute)
        if self.percent is not None:
            out["percent"] = str(self.percent)
        return out


def closeness_sql(index: int, params: dict, *, amount, quantity, date=None) -> str:
    """1 - 1/2 x the largest share of a tolerance the pair uses (1 when every comparison is exact):
    a pair at the very edge of its tolerances scores 0.5. The two sides are aliased ``l`` and ``r``
    (records, or the groups of an aggregation pass)."""
    l, r = "l", "r"  # noqa: E741
    used = []
    for column, tolerance in (("amount", amount), ("quantity", quantity)):
        if tolerance is None or tolerance.is_exact:
            continue
        limit = tolerance.limit_sql(f"{l}.{column}", params, f"p{index}_s{column}")
        delta = f"abs({l}.{column} - {r}.{column})"
        used.append(f"CASE WHEN {limit} > 0 THEN {delta} / {limit} ELSE 0 END")
    if date is not None and date.window_days:
        used.append(f"({date.delta_sql()})::numeric / {int(date.window_days)}")
    if not used:
        return "1::numeric"
    return f"(1 - greatest({', '.join(f'coalesce({u}, 0)' for u in used)}) / 2)"


@dataclass(frozen=True)
class DateWindow:
    """A pair's dates at most ``window_days`` apart (inclusive) in ``field``."""

    field: str = "value_date"
    window_days: int = 0

    def delta_sql(self) -> str:
        """The days the condition measures between the sides ``l`` and ``r`` (<= window_days)."""
        return f"abs(l.{self.field} - r.{self.field})"

    @classmethod
    def parse(cls, spec, where: str) -> DateWindow:
        if not isinstance(spec, dict):
            raise _invalid(f'{where}: expected {{"field": "value_date", "window_days": 2}}.', field=where)
        if "group" in spec:
            # Said rather than ignored: a pair has no group; a date copied from an aggregate pass
            # would otherwise silently mean less than its author thinks.
            raise _invalid(
                f"{where}.group: only an aggregate pass's date has a group condition.", field=where
            )
        name = spec.get("field", "value_date")
        if name not in DATE_FIELDS:
            raise _invalid(f"{where}.field: one of {list(DATE_FIELDS)}.", field=where)
        days = spec.get("window_days", 0)
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise _invalid(f"{where}.window_days: a whole number of days >= 0.", field=where)
        return cls(name, days)


def parse_thresholds(spec: dict, where: str) -> tuple[Decimal, Decimal]:
    """(auto, suggest) score thresholds of a pass, Decimals in [0, 1] given as strings.

    score >= auto: matched; suggest <= score < auto: suggested for an analyst; below: no candidate.
    Defaults: auto 0 (every candidate the pass keeps matches), suggest = auto (no suggestions).
    """
    auto = _decimal(spec.get("auto_threshold", "0"), f"{where}.auto_threshold")
    suggest = _decimal(spec.get("suggest_threshold", str(auto)), f"{where}.suggest_threshold")
    if auto > 1 or suggest > auto:
        raise _invalid(f"{where}: 0 <= suggest_threshold <= auto_threshold <= 1.", field=where)
    return auto, suggest


THRESHOLD_KEYS = {"auto_threshold", "suggest_threshold"}


def parse_keys(spec: dict, where: str, *, required: bool = True) -> list[str]:
    keys = spec.get("keys", None if required else [])
    if not isinstance(keys, list) or (required and not keys) or any(k not in KEY_FIELDS for k in keys):
        raise _invalid(f"{where}.keys: a non-empty list drawn from {list(KEY_FIELDS)}.", field=where)
    if len(set(keys)) != len(keys):
        raise _invalid(f"{where}.keys: a key appears twice.", field=where)
    return keys


def parse_amount_quantity(spec: dict, where: str) -> tuple[Tolerance | None, Tolerance | None]:
    """The amount tolerance (exact unless given; ``false`` for none) and the quantity one (none
    unless given)."""
    amount_spec = spec.get("amount", True)
    amount = None if amount_spec is False else Tolerance.parse(amount_spec, f"{where}.amount")
    quantity_spec = spec.get("quantity")
    quantity = None if quantity_spec in (None, False) else Tolerance.parse(quantity_spec, f"{where}.quantity")
    return amount, quantity


@dataclass
class Pass:
    """Base of every pass type. ``index`` is its 1-based position in the rule set.

    A pass that pairs or groups records gives each candidate a score in [0, 1] (see
    docs/matching-depth.md); ``auto_threshold`` and ``suggest_threshold`` split them into matched
    and suggested. ``prepare_sql`` returns statements the engine runs before the pass's candidates
    (e.g. an index on the pool it is about to probe).
    """

    type: ClassVar[str] = ""
    outcome: ClassVar[str] = "matched"  # or "excluded"; a pairing pass may also suggest (thresholds)
    index: int
    name: str
    auto_threshold: Decimal = ZERO
    suggest_threshold: Decimal = ZERO

    @property
    def label(self) -> str:
        return f"pass:{self.name}"

    def prepare_sql(self, left: str, right: str) -> list[str]:
        return []


@dataclass
class KeyedPass(Pass):
    """Equal keys and currency; amount/quantity within tolerance; dates within a window.

    Zero tolerances go into the hash-join condition (equality is hashable); the others filter the
    joined pairs. Blank text keys never match (two empty references are not evidence of anything).
    """

    type: ClassVar[str] = "tolerance"
    keys: tuple[str, ...] = ()
    amount: Tolerance | None = field(default_factory=lambda: Tolerance(absolute=ZERO))
    quantity: Tolerance | None = None
    date: DateWindow | None = None

    def closeness_sql(self, params: dict) -> str:
        return closeness_sql(self.index, params, amount=self.amount, quantity=self.quantity, date=self.date)

    def candidates_sql(self, left: str, right: str) -> tuple[str, dict]:
        """One INSERT … SELECT of candidate pairs from the unmatched pools ``left`` and ``right``."""
        params: dict = {}
        joins = ["l.currency = r.currency"] + [f"l.{k} = r.{k}" for k in self.keys]
        filters = [f"l.{k} <> ''" for k in self.keys if k in TEXT_KEY_FIELDS] + ["l.currency <> ''"]
        for column, tolerance in (("amount", self.amount), ("quantity", self.quantity)):
            if tolerance is None:
                continue
            if tolerance.is_exact:
                joins.append(f"l.{column} = r.{column}")
            else:
                filters.append(tolerance.sql(column, params, f"p{self.index}_{column}"))
        date_delta = "NULL::integer"
        if self.date is not None:
            f = self.date.field
            date_delta = self.date.delta_sql()
            if self.date.window_days == 0:
                joins.append(f"l.{f} = r.{f}")
            else:
                params[f"p{self.index}_days"] = self.date.window_days
                filters.append(f"{date_delta} <= %(p{self.index}_days)s")
        sql = f"""
            INSERT INTO _cand (l_id, l_date, r_id, r_date, d_amount, d_quantity, d_days, score)
            SELECT l.id, l.business_date, r.id, r.business_date, abs(l.amount - r.amount),
                   abs(l.quantity - r.quantity), {date_delta}, {self.closeness_sql(params)}
            FROM {left} l JOIN {right} r ON {" AND ".join(joins)}
            WHERE {" AND ".join(filters)}
        """
        return sql, params

    def describe(self) -> dict:
        return {
            "keys": list(self.keys),
            "amount": self.amount.as_json() if self.amount else None,
            "quantity": self.quantity.as_json() if self.quantity else None,
            "date": {"field": self.date.field, "window_days": self.date.window_days} if self.date else None,
        }

    # What a subclass adds to the spec (parsed by parse_extra), and whether its keys may be empty.
    extra_spec: ClassVar[frozenset] = frozenset()
    keys_required: ClassVar[bool] = True

    @classmethod
    def parse_extra(cls, spec: dict, where: str) -> dict:
        return {}

    @classmethod
    def parse(cls, spec: dict, index: int, where: str) -> KeyedPass:
        allowed = {"name", "type", "keys", "amount", "quantity", "date"} | THRESHOLD_KEYS | cls.extra_spec
        unknown = set(spec) - allowed
        if unknown:
            raise _invalid(f"{where}: unknown keys {sorted(unknown)}.", field=where)
        keys = parse_keys(spec, where, required=cls.keys_required)
        amount, quantity = parse_amount_quantity(spec, where)
        date = DateWindow.parse(spec["date"], f"{where}.date") if spec.get("date") is not None else None
        auto, suggest = parse_thresholds(spec, where)
        made = cls(
            index=index,
            name=spec["name"],
            keys=tuple(keys),
            amount=amount,
            quantity=quantity,
            date=date,
            auto_threshold=auto,
            suggest_threshold=suggest,
            **cls.parse_extra(spec, where),
        )
        made.validate(where)
        return made

    def validate(self, where: str) -> None:
        if self.amount is None and self.quantity is None and self.date is None:
            raise _invalid(f"{where}: compare at least one of amount, quantity, date.", field=where)


class ExactPass(KeyedPass):
    """A keyed pass whose comparisons are all exact (zero tolerance, zero-day window)."""

    type: ClassVar[str] = "exact"

    def validate(self, where: str) -> None:
        super().validate(where)
        loose = [n for n, t in (("amount", self.amount), ("quantity", self.quantity)) if t and not t.is_exact]
        if loose or (self.date and self.date.window_days):
            raise _invalid(f"{where}: an exact pass has no tolerance; use type 'tolerance'.", field=where)


@dataclass
class ExcludePass(Pass):
    """Takes records out of matching with a reason (e.g. zero-amount fee lines). They count as
    ``excluded`` in the run's conservation."""

    type: ClassVar[str] = "exclude"
    outcome: ClassVar[str] = "excluded"
    sides: tuple[str, ...] = ("left", "right")
    where: tuple[tuple[str, str, object], ...] = ()
    reason: str = ""

    def exclusion_sql(self, pool: str, side: str) -> tuple[str, dict]:
        params: dict = {"reason": self.reason or self.name, "side": side}
        tests = []
        for i, (column, op, value) in enumerate(self.where):
            params[f"v{i}"] = value
            # Filters see amounts as recorded, not sign-adjusted for comparison (engine.py).
            column = "raw_amount" if column == "amount" else column
            tests.append(f"{column} {FILTER_OPS[op]} %(v{i})s")
        sql = f"""
            INSERT INTO _excl (id, business_date, side, reason)
            SELECT id, business_date, %(side)s, %(reason)s FROM {pool} WHERE {" AND ".join(tests)}
        """
        return sql, params

    def describe(self) -> dict:
        return {"sides": list(self.sides), "where": [list(w) for w in self.where], "reason": self.reason}

    @classmethod
    def parse(cls, spec: dict, index: int, where: str) -> ExcludePass:
        unknown = set(spec) - {"name", "type", "side", "where", "reason"}
        if unknown:
            raise _invalid(f"{where}: unknown keys {sorted(unknown)}.", field=where)
        side = spec.get("side", "both")
        if side not in ("left", "right", "both"):
            raise _invalid(f"{where}.side: left, right or both.", field=where)
        conditions = spec.get("where")
        if not isinstance(conditions, list) or not conditions:
            raise _invalid(f"{where}.where: a non-empty list of {{field, op, value}}.", field=where)
        parsed = []
        for i, cond in enumerate(conditions):
            at = f"{where}.where[{i}]"
            if not isinstance(cond, dict) or cond.get("field") not in FILTER_FIELDS:
                raise _invalid(f"{at}.field: one of {list(FILTER_FIELDS)}.", field=at)
            if cond.get("op") not in FILTER_OPS:
                raise _invalid(f"{at}.op: one of {list(FILTER_OPS)}.", field=at)
            value = cond.get("value")
            if cond["field"] in ("amount", "quantity"):
                if isinstance(value, float):
                    raise _invalid(f"{at}.value: give numbers as strings.", field=at)
                try:
                    value = Decimal(str(value))
                except InvalidOperation:
                    raise _invalid(f"{at}.value: not a number.", field=at) from None
            elif not isinstance(value, str):
                raise _invalid(f"{at}.value: a string.", field=at)
            parsed.append((cond["field"], cond["op"], value))
        sides = ("left", "right") if side == "both" else (side,)
        return cls(
            index=index,
            name=spec["name"],
            sides=sides,
            where=tuple(parsed),
            reason=str(spec.get("reason") or spec["name"])[:64],
        )


PASS_TYPES: dict[str, type[Pass]] = {cls.type: cls for cls in (ExactPass, KeyedPass, ExcludePass)}


@dataclass(frozen=True)
class RuleSet:
    passes: tuple[Pass, ...]
    amount_sign: str  # "same", or "opposite": the right side's amounts are negated before comparing
    break_keys: tuple[str, ...]
    # Per side, which record column stands in for a field every pass compares, e.g. trades carry the
    # trade id in external_id where the custodian's settlements carry it in reference:
    # {"left": {"reference": "external_id"}}. Applied when the engine loads the side.
    field_map: dict = field(default_factory=dict)

    @property
    def pairing_passes(self) -> list[KeyedPass]:
        return [p for p in self.passes if isinstance(p, KeyedPass)]

    @property
    def classify_pass(self) -> KeyedPass:
        """Breaks are labelled with the tolerances of the last pass on the break keys (usually the most
        lenient one): a pair within every tolerance of that pass would have been matched by it."""
        same_keys = [p for p in self.pairing_passes if p.keys == self.break_keys]
        return (same_keys or self.pairing_passes)[-1]


def parse_rules(rules) -> RuleSet:
    """Validate a rule set's JSON; raises ApplicationError(code="invalid_rules") saying where."""
    if not isinstance(rules, dict):
        raise _invalid("Rules must be an object with a 'passes' list.")
    unknown = set(rules) - {"passes", "amount_sign", "break_keys", "field_map"}
    if unknown:
        raise _invalid(f"Unknown rule keys {sorted(unknown)}.")
    specs = rules.get("passes")
    if not isinstance(specs, list) or not specs:
        raise _invalid("'passes' must be a non-empty list.")
    passes, names = [], set()
    for i, spec in enumerate(specs, start=1):
        where = f"passes[{i - 1}]"
        if not isinstance(spec, dict):
            raise _invalid(f"{where}: expected an object.", field=where)
        kind = PASS_TYPES.get(spec.get("type"))
        if kind is None:
            raise _invalid(f"{where}.type: one of {sorted(PASS_TYPES)}.", field=where)
        name = spec.get("name")
        if not isinstance(name, str) or not name or len(name) > 64 or name in names:
            raise _invalid(f"{where}.name: a unique name of up to 64 characters.", field=where)
        names.add(name)
        passes.append(kind.parse(spec, i, where))
    keyed = [p for p in passes if isinstance(p, KeyedPass)]
    if not keyed:
        raise _invalid("At least one pass must pair records (type exact or tolerance).")
    sign = rules.get("amount_sign", "same")
    if sign not in ("same", "opposite"):
        raise _invalid("'amount_sign': 'same' or 'opposite'.")
    break_keys = rules.get("break_keys", list(keyed[0].keys))
    if not isinstance(break_keys, list) or not break_keys or any(k not in KEY_FIELDS for k in break_keys):
        raise _invalid(f"'break_keys': a non-empty list drawn from {list(KEY_FIELDS)}.")
    return RuleSet(
        passes=tuple(passes),
        amount_sign=sign,
        break_keys=tuple(break_keys),
        field_map=parse_field_map(rules.get("field_map", {})),
    )


def effective_passes(rules) -> list[dict] | None:
    """Each pass as the engine reads it, defaults filled in (an aggregate date's ``group``, an
    omitted amount's exact tolerance), for the pages that show rules; None if they do not parse."""
    try:
        passes = parse_rules(rules).passes
    except ApplicationError:
        return None
    shown = []
    for p in passes:
        entry = {"name": p.name, "type": p.type, **p.describe()}
        if p.outcome == "matched":  # a pass that pairs or groups: its score thresholds
            entry |= {"auto_threshold": str(p.auto_threshold), "suggest_threshold": str(p.suggest_threshold)}
        shown.append(entry)
    return shown


def parse_field_map(spec) -> dict:
    """{"left"|"right": {field: source column}}: a text key from a text column, a date from a date."""
    if not isinstance(spec, dict) or set(spec) - {"left", "right"}:
        raise _invalid('\'field_map\': {"left": {...}, "right": {...}}.')
    for side, mapping in spec.items():
        if not isinstance(mapping, dict):
            raise _invalid(f"field_map.{side}: an object of field -> column.")
        for target, column in mapping.items():
            kinds = (TEXT_KEY_FIELDS, DATE_FIELDS)
            if not any(target in k and column in k for k in kinds):
                raise _invalid(
                    f"field_map.{side}.{target}: map a text field from a text column "
                    f"({list(TEXT_KEY_FIELDS)}) or a date from a date ({list(DATE_FIELDS)}).",
                    field=f"field_map.{side}",
                )
    return {side: dict(mapping) for side, mapping in spec.items()}


# Pass types of other modules register themselves in PASS_TYPES when imported (they subclass the
# classes above, so they are imported last).
from reconciliation.matching import aggregation, fuzzy  # noqa: E402,F401

DEFAULT_RULES = {
    "two_way": {"passes": [{"name": "exact_ref", "type": "exact", "keys": ["reference"]}]},
    "three_way": {
        "passes": [
            {"name": "exact_ref", "type": "exact", "keys": ["reference"], "quantity": {"absolute": "0"}},
        ]
    },
}
