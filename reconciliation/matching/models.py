"""Tables of matching depth (docs/matching-depth.md): simulation reports and the shards of a run.

Matches, suggestions and rule versions themselves are the runs' tables (reconciliation.runs.models).
"""

from django.db import models
from django.db.models import Q

from jfintech.tenancy.models import TenantOwned
from reconciliation.runs.models import Match, RuleVersion, Side


class SimulationKind(models.TextChoices):
    DRY_RUN = "dry_run"  # today's open items under a rule version: what a run would do now
    IMPACT = "impact"  # a past run's frozen scope replayed under another rule version, diffed


class SimulationStatus(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class SimulationReport(TenantOwned):
    """The only thing a dry run or an impact simulation writes (computed in a rolled-back savepoint)."""

    kind = models.CharField(max_length=8, choices=SimulationKind.choices)
    definition = models.ForeignKey("reconciliation.Definition", related_name="+", on_delete=models.CASCADE)
    rule_version = models.ForeignKey("reconciliation.RuleVersion", related_name="+", on_delete=models.PROTECT)
    base_run = models.ForeignKey(  # impact: the run whose frozen scope is replayed
        "reconciliation.Run", null=True, blank=True, related_name="+", on_delete=models.PROTECT
    )
    as_of = models.DateField(null=True, blank=True)
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=SimulationStatus.choices, default=SimulationStatus.PENDING
    )
    requested_by = models.CharField(max_length=200, blank=True)
    request_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(default=0)
    # {"records_in_scope", "matched", "suggested", "in_breaks", "excluded", "matches",
    #  "breaks_by_type", "passes", "conservation"}
    summary = models.JSONField(default=dict, blank=True)
    # impact: {"matches": {"gained", "lost", "changed"}, "breaks": {"new", "gone", "changed"}} with
    # counts and the first rows of each; see simulation.py.
    diff = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "request_key"],
                condition=~Q(request_key=""),
                name="uniq_simulation_request_key",
            ),
            models.CheckConstraint(
                condition=Q(kind="dry_run") | Q(base_run__isnull=False), name="impact_simulation_has_base_run"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "definition", "-id"], name="simulation_recent_idx")]
        ordering = ["-id"]

    def __str__(self):
        return f"{self.kind} {self.pk} ({self.status})"


class RunShard(models.Model):
    """Proof that one shard of a sharded run's matching phase committed its outcomes (sharding.py).
    Written in the same transaction as the shard's matches, breaks and exclusions."""

    run = models.ForeignKey("reconciliation.Run", related_name="shards", on_delete=models.CASCADE)
    shard_no = models.PositiveSmallIntegerField()
    shard_count = models.PositiveSmallIntegerField()
    records_in_scope = models.BigIntegerField(default=0)
    matched = models.BigIntegerField(default=0)
    suggested = models.BigIntegerField(default=0)
    in_breaks = models.BigIntegerField(default=0)
    excluded = models.BigIntegerField(default=0)
    matches = models.BigIntegerField(default=0)
    first_match_id = models.BigIntegerField(null=True, blank=True)  # the shard's part of the run's span
    last_match_id = models.BigIntegerField(null=True, blank=True)
    breaks_by_type = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    by_kind = models.JSONField(default=list, blank=True)  # [[kind, outcome, n], ...] for the metrics
    conservation = models.JSONField(default=dict, blank=True)  # the shard's own proof (engine)
    worker = models.CharField(max_length=200, blank=True)
    completed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "shard_no"], name="uniq_run_shard"),
            models.CheckConstraint(
                condition=Q(shard_no__lt=models.F("shard_count")), name="run_shard_in_range"
            ),
        ]

    def __str__(self):
        return f"run {self.run_id} shard {self.shard_no}/{self.shard_count}"


class RuleVersionApproval(RuleVersion):
    """The approvers' queue in the admin (a proxy: rule versions themselves are the runs' table)."""

    class Meta:
        proxy = True
        verbose_name = "rule version awaiting approval"
        verbose_name_plural = "rule versions awaiting approval"


class MatchReview(Match):
    """Matches and suggestions as the analysts review them in the admin (a proxy of the runs' table)."""

    class Meta:
        proxy = True
        verbose_name = "match or suggestion"
        verbose_name_plural = "matches and suggestions"


class DecisionExclusion(TenantOwned):
    """A record taken out of the open items by a final decision on its case (written off, not a
    break): every later run of the definition excludes it with the reason and the case id, until
    the decision is undone (four-eyes, exceptions.services.case_request_undo). Written in the
    decision's own transaction (matching.decisions).

    Keyed on the record version decided on (id and business date): an amendment is a new record,
    which the decision does not cover — the item comes back as a break and its case reopens."""

    definition = models.ForeignKey("reconciliation.Definition", related_name="+", on_delete=models.PROTECT)
    record = models.ForeignKey(
        "reconciliation.Record", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
        related_name="+",
    )  # fmt: skip
    business_date = models.DateField()
    side = models.CharField(max_length=8, choices=Side.choices)
    case_id = models.BigIntegerField()
    reason = models.CharField(max_length=24)  # the case's resolution reason
    note = models.TextField(blank=True)
    decided_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)
    undone_by = models.CharField(max_length=200, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "reconciliation_decision_exclusion"
        constraints = [
            # One live decision per record and definition (as one active match per record).
            models.UniqueConstraint(
                fields=["tenant", "definition", "record", "business_date"],
                condition=Q(is_active=True),
                name="decision_exclusion_one_active",
            ),
            models.CheckConstraint(
                condition=Q(is_active=True, undone_at__isnull=True)
                | Q(is_active=False, undone_at__isnull=False),
                name="decision_exclusion_undone_has_time",
            ),
        ]
        indexes = [models.Index(fields=["case_id"], name="decision_exclusion_case_idx")]

    def __str__(self):
        return f"record {self.record_id} {self.reason} (case {self.case_id})"
