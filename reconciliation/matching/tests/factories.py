"""Helpers for the matching-depth tests, on top of the runs' factories (definitions through the
services, records set-based into the partitioned table)."""

from __future__ import annotations

from django.db import connection

from jfintech.audit import Actor
from jfintech.tests.factories import member
from reconciliation.matching import approval
from reconciliation.runs import services
from reconciliation.runs.models import Break, Match, MatchItem, Run
from reconciliation.runs.tests.factories import (
    ACTOR,
    AS_OF,
    SourceFactory,
    TenantFactory,
    definition,
    records,
    source_of,
)

__all__ = [
    "ACTOR",
    "AS_OF",
    "SourceFactory",
    "TenantFactory",
    "approve",
    "definition",
    "outcome_of",
    "reconcile",
    "records",
    "source_of",
    "two_way",
]


def reconcile(defn, **kwargs) -> Run:
    """A run executed in this process through the same services the chord calls."""
    run = services.run_start(
        tenant=defn.tenant, actor=ACTOR, definition=defn, trigger="cli", as_of=AS_OF, dispatch=False, **kwargs
    )
    return services.run_execute_inline(run)


def two_way(passes, tenant=None, **rules):
    defn = definition(tenant or TenantFactory(), rules={"passes": passes, **rules})
    return defn, source_of(defn, "left"), source_of(defn, "right")


def outcome_of(run: Run) -> dict:
    """{record id: "matched:<pass>" | "suggested:<pass>" | <break type> | "excluded"}, from what
    PostgreSQL stored for the run; fails if a record has two outcomes."""
    out = {}
    for item in MatchItem.objects.filter(match__run_id=run.pk).select_related("match"):
        label = "matched" if item.match.status == "active" else "suggested"
        assert item.record_id not in out, f"record {item.record_id} in two matches"
        out[item.record_id] = f"{label}:{item.match.pass_name}"
    for brk in Break.objects.filter(run=run).exclude(break_type="position_break"):
        for rid in brk.record_ids:
            assert rid not in out, f"record {rid} in two outcomes"
            out[rid] = brk.break_type
    with connection.cursor() as cursor:
        cursor.execute("SELECT record_id FROM reconciliation_run_exclusion WHERE run_id = %s", [run.pk])
        for (rid,) in cursor.fetchall():
            assert rid not in out
            out[rid] = "excluded"
    return out


def groups_of(run: Run) -> dict:
    """{match pass name: [sorted record ids of each match]} for the run's matches."""
    groups: dict = {}
    for match in Match.objects.filter(run_id=run.pk).order_by("pk"):
        ids = sorted(MatchItem.objects.filter(match=match).values_list("record_id", flat=True))
        groups.setdefault(match.pass_name, []).append(ids)
    return {name: sorted(v) for name, v in groups.items()}


def approver_of(tenant):
    user = member(tenant, role="approver")
    return user, Actor.for_user(user)


def approve(version) -> None:
    """Approve a pending rule version as a fresh approver of its tenant."""
    user, actor = approver_of(version.tenant)
    approval.rule_version_decide(
        tenant=version.tenant, actor=actor, user=user, version_id=version.pk, approve=True
    )
