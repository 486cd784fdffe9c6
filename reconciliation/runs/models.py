"""Definitions, versioned rule sets, runs and their outcomes (matches, breaks, exclusions).

See docs/reconciliation.md. The invariants the engine relies on are constraints here, so a bug is a
loud IntegrityError rather than bad data:

- one run in flight per definition (a second start is refused, a stuck one is reaped);
- each record at most once in a run's frozen scope: a side's scope is a set (one multirange of ids,
  see RunScope) and a source is on one side of a definition only (``uniq_definition_source``);
- a record in at most one ACTIVE match per definition (partial unique index on match items);
- each break fingerprint at most once per run (one case per fingerprint downstream).

Tables that point at records carry ``business_date`` with the record id (the record table's primary
key is (id, business_date), see docs/records.md) but declare no foreign key (``db_constraint=False``):
a row-by-row RI trigger on millions of inserted rows would cost more than the matching itself. The
composite key is enforced by construction instead — every such row is written by one INSERT … SELECT
that reads (id, business_date) together from the record table or from rows that did.
"""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.db import models
from django.db.models import Q

from jfintech.tenancy.models import TenantOwned


class DefinitionKind(models.TextChoices):
    THREE_WAY = "three_way", "three-way (positions, trades, settlements)"
    TWO_WAY = "two_way", "two-way (left vs right)"


class Side(models.TextChoices):
    LEFT = "left"  # three-way: trades
    RIGHT = "right"  # three-way: settlements
    POSITION = "position"  # three-way only: checked in aggregate, never paired


# The sides each kind of definition names sources for, in chord order.
SIDES_OF_KIND = {
    DefinitionKind.THREE_WAY: (Side.POSITION, Side.LEFT, Side.RIGHT),
    DefinitionKind.TWO_WAY: (Side.LEFT, Side.RIGHT),
}


class Definition(TenantOwned):
    """What to reconcile against what: a kind, its sources per side, its versioned rules."""

    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=16, choices=DefinitionKind.choices)
    description = models.TextField(blank=True)
    # The run's window is [as_of - lookback_days, as_of + lookahead_days]: open items stay in scope
    # (and are retried) for lookback_days; settlements dated ahead of the as-of date are in too.
    lookback_days = models.PositiveSmallIntegerField(default=30)
    lookahead_days = models.PositiveSmallIntegerField(default=5)
    # A run not terminal this long after it started is failed by the reaper.
    deadline_seconds = models.PositiveIntegerField(default=1800)
    is_active = models.BooleanField(default=True)
    # The beat entry (django-celery-beat crontab) that starts this definition's runs; edited in the
    # admin, kept in step by services.definition_schedule_set.
    schedule = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="uniq_definition_tenant_name"),
            models.CheckConstraint(condition=Q(deadline_seconds__gte=10), name="definition_deadline_min"),
        ]
        ordering = ["tenant", "name"]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class DefinitionSource(models.Model):
    definition = models.ForeignKey(Definition, related_name="sources", on_delete=models.CASCADE)
    side = models.CharField(max_length=8, choices=Side.choices)
    source = models.ForeignKey("reconciliation.DataSource", related_name="+", on_delete=models.PROTECT)

    class Meta:
        constraints = [
            # A source feeds one side: on both sides it would match itself.
            models.UniqueConstraint(fields=["definition", "source"], name="uniq_definition_source"),
        ]
        ordering = ["definition", "side", "source"]

    def __str__(self):
        return f"{self.definition_id}:{self.side}:{self.source_id}"


class RuleVersionStatus(models.TextChoices):
    # Four-eyes on configuration (reconciliation.matching.approval): runs use the latest APPROVED
    # version; a published version waits for an approver other than its author.
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RuleVersion(TenantOwned):
    """One immutable version of a definition's rules; a change is a new version (audited)."""

    definition = models.ForeignKey(Definition, related_name="rule_versions", on_delete=models.CASCADE)
    version = models.PositiveIntegerField()
    # {"amount_sign": "same"|"opposite", "break_keys": [...], "passes": [{"name", "type", ...}]}
    # validated by reconciliation.matching.passes.parse_rules.
    rules = models.JSONField()
    comment = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=10, choices=RuleVersionStatus.choices, default=RuleVersionStatus.PENDING
    )
    author_principal = models.CharField(max_length=100, blank=True)  # "user:7", "api_key:3", "system:x"
    decided_by = models.CharField(max_length=200, blank=True)
    decided_by_principal = models.CharField(max_length=100, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["definition", "version"], name="uniq_rule_version"),
            # The checker is never the maker (a bootstrap version 1 is approved by the system).
            models.CheckConstraint(
                condition=~Q(status="approved") | ~Q(decided_by_principal=models.F("author_principal")),
                name="rule_version_four_eyes",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="rule_version_positive"),
        ]
        ordering = ["definition", "-version"]

    def __str__(self):
        return f"{self.definition.name} rules v{self.version}"

    @property
    def label(self) -> str:
        return f"v{self.version}"


class RunStatus(models.TextChoices):
    PENDING = "pending"
    FETCHING = "fetching"
    MATCHING = "matching"
    COMPLETED = "completed"
    FAILED = "failed"


ACTIVE_RUN_STATUSES = (RunStatus.PENDING, RunStatus.FETCHING, RunStatus.MATCHING)
TERMINAL_RUN_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED)


class RunTrigger(models.TextChoices):
    API = "api"
    ADMIN = "admin"
    CLI = "cli"
    BEAT = "beat"
    DEMO = "demo"


class Run(TenantOwned):
    """One reconciliation run; its state is this row, moved by compare-and-set (services)."""

    definition = models.ForeignKey(Definition, related_name="runs", on_delete=models.PROTECT)
    rule_version = models.ForeignKey(RuleVersion, related_name="runs", on_delete=models.PROTECT)
    kind = models.CharField(max_length=16, choices=DefinitionKind.choices)
    as_of = models.DateField()
    date_from = models.DateField()
    date_to = models.DateField()
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.PENDING)
    trigger = models.CharField(max_length=8, choices=RunTrigger.choices)
    requested_by = models.CharField(max_length=200, blank=True)
    # Beat passes its message id, the API its Idempotency-Key: the same request starts one run.
    request_key = models.CharField(max_length=200, blank=True)
    # Compute deliveries that began; each one's number fences the ones before it (run_complete is a
    # compare-and-set on it, so an older attempt cannot commit).
    attempts = models.PositiveIntegerField(default=0)
    # Times the reaper re-sent the step of a run whose heartbeat went stale (lifecycle.run_redrive).
    redrives = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    progress_total = models.BigIntegerField(default=0)
    progress_done = models.BigIntegerField(default=0)
    records_in_scope = models.BigIntegerField(default=0)
    matched = models.BigIntegerField(default=0)
    suggested = models.BigIntegerField(default=0)
    in_breaks = models.BigIntegerField(default=0)
    excluded = models.BigIntegerField(default=0)
    matches = models.BigIntegerField(default=0)  # match groups (a pair is one)
    # The lowest and highest id of the run's matches (engine.EngineResult.match_ids): a page of them
    # is read by primary key between the two, where the run's BRIN index alone would leave the
    # planner walking the primary key back from the newest match of the table (selectors.match_list).
    first_match_id = models.BigIntegerField(null=True, blank=True)
    last_match_id = models.BigIntegerField(null=True, blank=True)
    breaks_by_type = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)  # phase -> seconds
    conservation = models.JSONField(default=dict, blank=True)
    cases = models.JSONField(default=dict, blank=True)  # what exceptions.services reported

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["definition"],
                condition=Q(status__in=ACTIVE_RUN_STATUSES),
                name="one_active_run_per_definition",
            ),
            models.UniqueConstraint(
                fields=["tenant", "request_key"], condition=~Q(request_key=""), name="uniq_run_request_key"
            ),
            models.CheckConstraint(
                condition=Q(date_from__lte=models.F("date_to")), name="run_window_ordered"
            ),
            # Conservation is proven before a run may complete (see matching.engine).
            models.CheckConstraint(
                condition=~Q(status=RunStatus.COMPLETED)
                | Q(
                    records_in_scope=models.F("matched")
                    + models.F("suggested")
                    + models.F("in_breaks")
                    + models.F("excluded")
                ),
                name="completed_run_conserves_records",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "deadline"], name="run_status_deadline_idx"),
            models.Index(fields=["tenant", "definition", "-id"], name="run_definition_recent_idx"),
        ]
        ordering = ["-id"]

    def __str__(self):
        # A name an analyst reads: "securities-3way — 30 Nov 2026 (#12)" (the id tells reruns apart).
        return f"{self.definition.name} — {self.as_of:%d %b %Y} (#{self.pk})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES


class RunPart(models.Model):
    """Proof that one side's fetch finished and froze its scope; one per (run, side)."""

    run = models.ForeignKey(Run, related_name="parts", on_delete=models.CASCADE)
    side = models.CharField(max_length=8, choices=Side.choices)
    records = models.BigIntegerField(default=0)
    fetched = models.JSONField(default=list, blank=True)  # per source: connector, batch_id, rows_loaded
    duration_s = models.FloatField(default=0)
    completed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "side"], name="uniq_run_part")]

    def __str__(self):
        return f"run {self.run_id} {self.side}"


class Int8MultiRangeField(models.Field):
    """PostgreSQL ``int8multirange``: a sorted set of disjoint bigint ranges (psycopg reads it as a
    ``Multirange``). Django ships range fields but no multirange field."""

    description = "set of bigint ranges"

    def db_type(self, connection):
        return "int8multirange"


class RunScope(models.Model):
    """The frozen scope of one side of a run: the ids of the records it reconciles, written once by
    the side's fetch.

    The ids are stored as a multirange, not a row per record. A batch's records get consecutive ids,
    so a side's open items are a few ranges (a million unmatched leftovers scattered one in two are
    still only half a million ranges, 4 MB); membership is a binary search over them. Measured at a
    million records a side, a row per record cost 2.1 s to write and 1.8 s to join back to the
    records; the multirange costs 1.0 s and a filter on the records scan (engine.scope_ids_sql)."""

    pk = models.CompositePrimaryKey("run", "side")
    run = models.ForeignKey(
        Run, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    side = models.CharField(max_length=8, choices=Side.choices)
    record_ids = Int8MultiRangeField()
    records = models.BigIntegerField()  # how many ids record_ids holds

    class Meta:
        db_table = "reconciliation_run_scope"

    def __str__(self):
        return f"run {self.run_id} {self.side}: {self.records} records"


class RunTradeFlow(models.Model):
    """Three-way: the traded quantity per account, instrument and day over the run's window, frozen
    by fetch_trades from ALL active trades (matched or not): the position check's middle term."""

    pk = models.CompositePrimaryKey("run", "account", "instrument", "business_date")
    run = models.ForeignKey(
        Run, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    account = models.CharField(max_length=64)
    instrument = models.CharField(max_length=64)
    business_date = models.DateField()
    quantity = models.DecimalField(max_digits=32, decimal_places=8)
    trades = models.IntegerField()

    class Meta:
        db_table = "reconciliation_run_trade_flow"

    def __str__(self):
        return f"run {self.run_id} {self.account}/{self.instrument} {self.business_date}: {self.quantity}"


class MatchStatus(models.TextChoices):
    ACTIVE = "active"
    SUGGESTED = "suggested"  # scored between a pass's thresholds; holds no record until accepted
    UNDONE = "undone"  # unmatched by an analyst; its records become open items again
    REJECTED = "rejected"  # a suggestion an analyst rejected; never proposed again
    EXPIRED = "expired"  # a suggestion a later run proposed afresh


MANUAL_PASS_NAME = "manual"  # noqa: S105 (not a password) pass_name of a match an analyst made (pass_no 0, no run)


class Match(models.Model):
    """A group of records a pass matched, with the pass and the differences it accepted.

    Written a million at a time by the engine's INSERT … SELECT from the run's own row, so its keys
    carry no foreign-key constraints (a per-row RI check costs ~5 µs; see the module docstring).
    """

    tenant = models.ForeignKey(
        "jfintech.Tenant", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    definition = models.ForeignKey(
        Definition, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    run = models.ForeignKey(  # null: a manual match
        Run, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
        related_name="+",
    )  # fmt: skip
    pass_no = models.PositiveSmallIntegerField()
    pass_name = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=MatchStatus.choices, default=MatchStatus.ACTIVE)
    score = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    # What the run proposed (active or suggested); analysts' later decisions change ``status``, never
    # this: impact simulations compare a past run's outcome with a replay. Blank for manual matches.
    run_outcome = models.CharField(max_length=10, blank=True, db_default="")
    differences = models.JSONField(null=True, blank=True)  # only when not exact
    created_at = models.DateTimeField()
    # db_default: the engine's INSERT … SELECT names only the columns it fills.
    created_by = models.CharField(max_length=200, blank=True, db_default="")  # a manual match's analyst
    # The last analyst decision: accepted/rejected (a suggestion), undone (unmatch), expired (a run).
    decided_by = models.CharField(max_length=200, blank=True, db_default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, db_default="")
    # A force-match decided on a case (exceptions): the case's id. Such a match is undone only by
    # undoing the decision (four-eyes), never by a plain unmatch (matching.decisions).
    case_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # A run's matches are written together, so they lie together on disk: a block-range
            # summary finds them, 0.14-0.78 s cheaper a million matches written than a b-tree on
            # the run (bench/outcome_writes.py). Pages of a run's matches are read by id between
            # the run's first and last match id (Run.first_match_id). autosummarize: a block range
            # is summarized as soon as it fills, so a lookup by run does not read every block
            # written since the last vacuum.
            BrinIndex(fields=["run"], name="match_run_brin", autosummarize=True),
            # Suggestions to review and rejected sets to skip: few rows, read by every run.
            models.Index(
                fields=["definition", "status"],
                condition=Q(status__in=["suggested", "rejected"]),
                name="match_pending_idx",
            ),
            # Decided matches (few): found by case, and counted per run window (matching.decisions).
            models.Index(fields=["case_id"], condition=Q(case_id__isnull=False), name="match_case_idx"),
        ]
        verbose_name_plural = "matches"

    def __str__(self):
        return f"match {self.pk} ({self.pass_name})"


def _record_pointer() -> models.ForeignKey:
    """A bulk table's pointer at a record: no foreign-key constraint and no index of its own, with
    the record's ``business_date`` beside it (see the module docstring)."""
    return models.ForeignKey(
        "reconciliation.Record",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )


class MatchItem(models.Model):
    pk = models.CompositePrimaryKey("match", "record_id")
    match = models.ForeignKey(
        Match, related_name="items", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False
    )
    record = _record_pointer()
    business_date = models.DateField()
    side = models.CharField(max_length=8, choices=Side.choices)
    # Denormalised from the match so the invariant below is one partial unique index.
    tenant = models.ForeignKey(
        "jfintech.Tenant", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    definition = models.ForeignKey(
        Definition, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        db_table = "reconciliation_match_item"
        constraints = [
            # THE invariant: a record belongs to at most one active match (per definition: the same
            # trade may be reconciled against settlements by one definition and the ledger by another).
            models.UniqueConstraint(
                fields=["tenant", "definition", "record", "business_date"],
                condition=Q(is_active=True),
                name="match_item_one_active_match",
            ),
        ]

    def __str__(self):
        return f"match {self.match_id} {self.side} record {self.record_id}"


class BreakType(models.TextChoices):
    MISSING_LEFT = "missing_left"  # a right record nothing on the left matches
    MISSING_RIGHT = "missing_right"  # a left record nothing on the right matches
    AMOUNT_MISMATCH = "amount_mismatch"
    QUANTITY_MISMATCH = "quantity_mismatch"
    DATE_MISMATCH = "date_mismatch"
    DUPLICATE = "duplicate"
    POSITION_BREAK = "position_break"  # aggregate: opening + traded != closing; consumes no record


class Break(TenantOwned):
    """One break a run found. Its case (exceptions app) is keyed by the fingerprint."""

    definition = models.ForeignKey(Definition, related_name="+", on_delete=models.PROTECT)
    run = models.ForeignKey(Run, related_name="breaks", on_delete=models.CASCADE)
    break_type = models.CharField(max_length=20, choices=BreakType.choices)
    # sha256 of definition id + sorted natural keys of its records (not the type): the same item in the
    # next run lands on the same case. exceptions.types.fingerprint_of computes the same in Python.
    fingerprint = models.CharField(max_length=64)
    record_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    record_dates = ArrayField(models.DateField(), default=list, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    amount_at_stake = models.DecimalField(max_digits=28, decimal_places=6, null=True, blank=True)
    reference = models.CharField(max_length=140, blank=True)
    account = models.CharField(max_length=64, blank=True)
    instrument = models.CharField(max_length=64, blank=True)
    differences = models.JSONField(default=dict, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    rule = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "fingerprint"], name="uniq_break_fingerprint_per_run")
        ]
        indexes = [GinIndex(fields=["record_ids"], name="break_record_ids_gin")]

    def __str__(self):
        return f"{self.break_type} in run {self.run_id}"


class RunExclusion(models.Model):
    """A record in scope deliberately not matched (an exclude pass, or a three-way position), keyed
    by (run, record). The engine writes these by the thousand in one statement, so no foreign-key
    constraints (see the module docstring)."""

    pk = models.CompositePrimaryKey("run", "record_id")
    run = models.ForeignKey(
        Run, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    record = _record_pointer()
    business_date = models.DateField()
    side = models.CharField(max_length=8, choices=Side.choices)

    reason = models.CharField(max_length=64)

    class Meta:
        db_table = "reconciliation_run_exclusion"

    def __str__(self):
        return f"run {self.run_id} excluded record {self.record_id} ({self.reason})"
