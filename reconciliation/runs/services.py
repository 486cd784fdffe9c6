"""Writes for definitions, rule versions and runs. State moves by compare-and-set on the run row.

A run's life (docs/reconciliation.md):

    pending ──fetch (first header)──▶ fetching ──compute──▶ matching ──▶ completed
        └───────────────┴──────────── any ─────────────────────┴──────▶ failed

- ``run_start`` creates the row and, after commit, sends the chord (tasks.run_chord).
- ``run_fetch_side`` (a header task per side) calls the ingest connectors, then freezes the side's
  scope and writes a RunPart in ONE transaction; a second delivery finds the part and does nothing.
- ``run_compute`` (the callback) runs the engine, syncs the break cases and completes the run in ONE
  transaction; a second delivery waits on the run's advisory lock, then finds it terminal.
- ``run_fail`` moves any non-terminal run to FAILED exactly once: logged with the trace id, counted,
  and a case opened for the analysts. The reaper calls it for runs past their deadline.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from jfintech import audit
from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.observability import business_span
from jfintech.observability.logging import get_logger
from jfintech.observability.tracing import current_trace_id
from jfintech.tenancy import permissions
from jfintech.tenancy.calendar import tenant_today
from reconciliation.ingestion.connectors import fetch_for_window
from reconciliation.matching import approval, engine
from reconciliation.matching.passes import DEFAULT_RULES, parse_rules
from reconciliation.models import DataSource, HandedOffKind, RecordKind
from reconciliation.runs import dispatch, metrics
from reconciliation.runs.lifecycle import (
    RUNNER,
    RunHeartbeat,
    RunProgress,
    Superseded,
    run_begin_matching,
    run_complete,
    run_context,
    run_fail,
    run_freeze_scope,
    run_freeze_trade_flow,
    run_lock_for_compute,
    run_missing_sides,
    run_observe_completed,
    run_redrive,
)
from reconciliation.runs.models import (
    ACTIVE_RUN_STATUSES,
    SIDES_OF_KIND,
    Definition,
    DefinitionKind,
    DefinitionSource,
    RuleVersion,
    RuleVersionStatus,
    Run,
    RunPart,
    RunStatus,
    RunTrigger,
    Side,
)

log = get_logger(__name__)

# --- definitions and rules --------------------------------------------------------------------


def definition_snapshot(definition: Definition) -> dict:
    return {
        "name": definition.name,
        "kind": definition.kind,
        "description": definition.description,
        "lookback_days": definition.lookback_days,
        "lookahead_days": definition.lookahead_days,
        "deadline_seconds": definition.deadline_seconds,
        "is_active": definition.is_active,
        "sources": {
            side: sorted(s.source.name for s in definition.sources.all() if s.side == side)
            for side in SIDES_OF_KIND[definition.kind]
        },
    }


def _set_sources(definition: Definition, sources: dict) -> None:
    sides = SIDES_OF_KIND[definition.kind]
    unknown = set(sources) - set(sides)
    if unknown:
        raise ApplicationError(
            f"A {definition.kind} definition has sides {list(sides)}; not {sorted(unknown)}.",
            code="invalid_sides",
            extra={"sides": list(sides)},
        )
    missing = [side for side in sides if not sources.get(side)]
    if missing:
        raise ApplicationError(f"Name at least one source for side(s) {missing}.", code="missing_sources")
    rows = []
    for side in sides:
        for source in sources[side]:
            if isinstance(source, str):
                source = DataSource.objects.filter(tenant=definition.tenant, name=source).first()
                if source is None:
                    raise ApplicationError(f"No source named {source!r}.", code="unknown_source", status=404)
            if source.tenant_id != definition.tenant_id:
                raise ApplicationError("A source of another tenant.", code="unknown_source", status=404)
            if source.kind in HandedOffKind.values:
                raise ApplicationError(
                    f"{source.name} holds {source.kind}, which filings keep: no run reads them.",
                    code="invalid_source_kind",
                )
            if definition.kind == DefinitionKind.THREE_WAY:
                expected = {
                    Side.POSITION: RecordKind.POSITION,
                    Side.LEFT: RecordKind.TRADE,
                    Side.RIGHT: RecordKind.SETTLEMENT,
                }[side]
                if source.kind != expected:
                    raise ApplicationError(
                        f"Three-way side {side} takes {expected} sources; {source.name} holds {source.kind}.",
                        code="invalid_source_kind",
                    )
            rows.append(DefinitionSource(definition=definition, side=side, source=source))
    DefinitionSource.objects.filter(definition=definition).delete()
    try:
        with transaction.atomic():
            DefinitionSource.objects.bulk_create(rows)
    except IntegrityError:
        raise ApplicationError("A source can feed only one side.", code="source_on_two_sides") from None


def definition_create(
    *,
    tenant,
    actor: Actor,
    name: str,
    kind: str,
    sources: dict,
    rules: dict | None = None,
    description: str = "",
    lookback_days: int = 30,
    lookahead_days: int = 5,
    deadline_seconds: int = 1800,
) -> Definition:
    """A definition with its sources per side and rule version 1 (the kind's default rules if none)."""
    permissions.require(tenant=tenant, actor=actor, area="definition", verb="add")
    if kind not in DefinitionKind.values:
        raise ApplicationError(f"kind must be one of {DefinitionKind.values}.", code="invalid_kind")
    rules = rules if rules is not None else DEFAULT_RULES[kind]
    parse_rules(rules)
    with transaction.atomic():
        definition = Definition(
            tenant=tenant,
            name=name,
            kind=kind,
            description=description,
            lookback_days=lookback_days,
            lookahead_days=lookahead_days,
            deadline_seconds=deadline_seconds,
        )
        definition.full_clean(validate_constraints=False)
        if Definition.objects.filter(tenant=tenant, name=name).exists():
            raise ApplicationError(
                f"A definition named {name!r} exists.", code="definition_exists", status=409
            )
        definition.save()
        _set_sources(definition, sources)
        version = RuleVersion.objects.create(
            tenant=tenant,
            definition=definition,
            version=1,
            rules=rules,
            comment="initial",
            created_by=actor.display,
            **approval.bootstrap_fields(actor),
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="recon_definition.created",
            obj=definition,
            after=definition_snapshot(definition) | {"rule_version": version.version, "rules": rules},
        )
    log.info("recon_definition_created", definition_id=definition.pk, tenant=tenant.slug, kind=kind)
    return definition


DEFINITION_FIELDS = ("description", "lookback_days", "lookahead_days", "deadline_seconds", "is_active")


def definition_update(
    *, definition: Definition, actor: Actor, sources: dict | None = None, **changes
) -> Definition:
    permissions.require(tenant=definition.tenant, actor=actor, area="definition", verb="change")
    unknown = set(changes) - set(DEFINITION_FIELDS)
    if unknown:
        raise ApplicationError(f"Cannot change {sorted(unknown)} here.", code="invalid_fields")
    with transaction.atomic():
        definition = Definition.objects.select_for_update().get(pk=definition.pk)
        before = definition_snapshot(definition)
        for field, value in changes.items():
            setattr(definition, field, value)
        definition.full_clean(validate_constraints=False)
        definition.save()
        if sources is not None:
            _set_sources(definition, sources)
        after = definition_snapshot(definition)
        if after != before:
            audit.record(
                tenant=definition.tenant,
                actor=actor,
                action="recon_definition.updated",
                obj=definition,
                before=before,
                after=after,
            )
    return definition


def rule_version_current(definition: Definition) -> RuleVersion:
    """The version runs use: the latest one an approver approved (four-eyes, matching.approval)."""
    version = definition.rule_versions.filter(status=RuleVersionStatus.APPROVED).order_by("-version").first()
    if version is None:
        raise ApplicationError("The definition has no approved rules.", code="no_rules", status=422)
    return version


def rules_publish(*, definition: Definition, actor: Actor, rules: dict, comment: str = "") -> RuleVersion:
    """A new rule version if ``rules`` differ from the latest one (else the latest one). Audited.

    Versions are immutable: a run records the version it used, and that version still says what
    the run did after any later change. A new version is PENDING: runs keep using the current
    approved one until an approver other than its author approves it (matching.approval).
    """
    permissions.require(tenant=definition.tenant, actor=actor, area="definition", verb="change")
    parse_rules(rules)
    with transaction.atomic():
        Definition.objects.select_for_update().filter(pk=definition.pk).first()  # serialise publishers
        current = definition.rule_versions.order_by("-version").first()
        if current.rules == rules:
            return current
        version = RuleVersion.objects.create(
            tenant=definition.tenant,
            definition=definition,
            version=current.version + 1,
            rules=rules,
            comment=comment[:200],
            created_by=actor.display,
            status=RuleVersionStatus.PENDING,
            author_principal=approval.principal(actor),
        )
        audit.record(
            tenant=definition.tenant,
            actor=actor,
            action="recon_rules.published",
            obj=version,
            before={"version": current.version, "rules": current.rules},
            after={"version": version.version, "rules": rules, "comment": comment},
        )
    log.info("recon_rules_published", definition_id=definition.pk, version=version.version)
    return version


# --- beat schedule per definition -----------------------------------------------------------------

SCHEDULED_TASK = "reconciliation.start_scheduled_run"


def definition_schedule_set(
    *,
    definition: Definition,
    actor: Actor,
    cron: str | None,
    expire_seconds: int = 3600,
    enabled: bool = True,
) -> Definition:
    """Create, change or remove the definition's beat entry (django-celery-beat crontab).

    ``cron`` is "minute hour day-of-month month day-of-week" in the tenant's time zone. The entry
    carries ``expire_seconds`` — a tick not picked up within it is dropped, not run late — and never
    ``expires`` (an absolute date that would switch the entry off for good).
    """
    permissions.require(tenant=definition.tenant, actor=actor, area="definition", verb="change")
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    with transaction.atomic():
        definition = (
            Definition.objects.select_for_update(of=("self",))
            .select_related("tenant", "schedule")
            .get(pk=definition.pk)
        )
        before = schedule_snapshot(definition)
        if cron is None:
            if definition.schedule is not None:
                definition.schedule.delete()
            definition.schedule = None
        else:
            parts = cron.split()
            if len(parts) != 5:
                raise ApplicationError("cron: five fields, e.g. '0 6 * * 1-5'.", code="invalid_cron")
            if expire_seconds is None or expire_seconds < 1:
                raise ApplicationError("expire_seconds must be >= 1.", code="invalid_expire_seconds")
            fields = {
                "minute": parts[0],
                "hour": parts[1],
                "day_of_month": parts[2],
                "month_of_year": parts[3],
                "day_of_week": parts[4],
                "timezone": definition.tenant.timezone or "UTC",
            }
            crontab = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(
                **fields
            )
            task = definition.schedule or PeriodicTask(
                name=f"reconcile {definition.tenant.slug}/{definition.name}"
            )
            task.task = SCHEDULED_TASK
            task.crontab = crontab
            task.interval = None
            task.kwargs = f'{{"definition_id": {definition.pk}}}'
            task.queue = "reconciliation"
            task.expire_seconds = expire_seconds
            task.expires = None
            task.enabled = enabled
            task.description = (
                f"Starts a run of reconciliation definition {definition.pk} ({definition.name})."
            )
            task.full_clean()
            task.save()
            definition.schedule = task
        definition.save(update_fields=["schedule", "updated_at"])
        after = schedule_snapshot(definition)
        if after != before:
            audit.record(
                tenant=definition.tenant,
                actor=actor,
                action="recon_definition.schedule_set",
                obj=definition,
                before=before,
                after=after,
            )
    return definition


def schedule_snapshot(definition: Definition) -> dict | None:
    task = definition.schedule
    if task is None:
        return None
    c = task.crontab
    cron = f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}" if c else None
    return {
        "cron": cron,
        "timezone": str(c.timezone) if c else None,
        "expire_seconds": task.expire_seconds,
        "enabled": task.enabled,
    }


# --- runs: start ------------------------------------------------------------------------------------


def run_window(
    definition: Definition,
    as_of: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> tuple[date, date, date]:
    """(as_of, date_from, date_to): as-of defaults to today in the tenant's time zone.

    An as-of date after today there is refused (400 ``as_of_in_future``): no statement or
    settlement is dated by then, so such a run would complete with an empty scope and prove
    nothing. The window alone may reach ahead (lookahead_days, or an explicit date_to with as_of)."""
    if (date_from is None) != (date_to is None):
        raise ApplicationError("Give both date_from and date_to, or neither.", code="invalid_window")
    today = tenant_today(definition.tenant)
    if date_from is not None:
        if date_from > date_to:
            raise ApplicationError("date_from is after date_to.", code="invalid_window")
        _refuse_future_as_of(as_of or date_to, today, definition)
        return as_of or date_to, date_from, date_to
    as_of = as_of or today
    _refuse_future_as_of(as_of, today, definition)
    return (
        as_of,
        as_of - timedelta(days=definition.lookback_days),
        as_of + timedelta(days=definition.lookahead_days),
    )


def _refuse_future_as_of(as_of: date, today: date, definition: Definition) -> None:
    if as_of > today:
        raise ApplicationError(
            f"as_of {as_of.isoformat()} is after today ({today.isoformat()} in the tenant's time zone,"
            f" {definition.tenant.timezone or 'UTC'}): a run reconciles what has happened.",
            code="as_of_in_future",
            status=400,
            extra={"as_of": as_of.isoformat(), "today": today.isoformat()},
        )


def run_start(
    *,
    tenant,
    actor: Actor,
    definition: Definition,
    trigger: str,
    as_of: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    request_key: str = "",
    dispatch: bool = True,
) -> Run:
    """Create a pending run with the current rule version and send its chord after commit.

    One run per definition is in flight at a time (a constraint): a second start is refused with
    409 ``run_in_progress``. A repeated ``request_key`` returns the run it started.
    """
    permissions.require(tenant=tenant, actor=actor, area="run", verb="start")
    if definition.tenant_id != tenant.pk:
        raise ApplicationError("No such definition.", code="not_found", status=404)
    if trigger not in RunTrigger.values:
        raise ApplicationError(f"trigger must be one of {RunTrigger.values}.", code="invalid_trigger")
    if request_key:
        existing = Run.objects.filter(tenant=tenant, request_key=request_key).first()
        if existing is not None:
            return existing
    if not definition.is_active:
        raise ApplicationError(
            f"Definition {definition.name} is not active.", code="definition_inactive", status=422
        )
    as_of, first, last = run_window(definition, as_of, date_from, date_to)
    rule_version = rule_version_current(definition)
    now = timezone.now()
    try:
        with transaction.atomic():
            run = Run.objects.create(
                tenant=tenant,
                definition=definition,
                rule_version=rule_version,
                kind=definition.kind,
                as_of=as_of,
                date_from=first,
                date_to=last,
                trigger=trigger,
                requested_by=actor.display,
                request_key=request_key,
                deadline=now + timedelta(seconds=definition.deadline_seconds),
                trace_id=current_trace_id(),
                progress_total=0,
            )
            audit.record(
                tenant=tenant,
                actor=actor,
                action="recon_run.started",
                obj=run,
                after={
                    "definition": definition.name,
                    "rule_version": rule_version.version,
                    "as_of": as_of,
                    "date_from": first,
                    "date_to": last,
                    "trigger": trigger,
                },
            )
            if dispatch:
                transaction.on_commit(lambda: _dispatch(run.pk))
    except IntegrityError:
        if request_key:
            existing = Run.objects.filter(tenant=tenant, request_key=request_key).first()
            if existing is not None:
                return existing
        active = Run.objects.filter(definition=definition, status__in=ACTIVE_RUN_STATUSES).first()
        raise ApplicationError(
            f"A run of {definition.name} is already in progress.",
            code="run_in_progress",
            status=409,
            extra={"run_id": active.pk if active else None},
        ) from None
    log.info(
        "recon_run_started",
        definition_id=definition.pk,
        trigger=trigger,
        as_of=str(as_of),
        **{"recon.run_id": run.pk},
    )
    return run


def schedule_slot(crontab, now: datetime) -> datetime | None:
    """The latest time at or before ``now`` at which ``crontab`` (celery's, with its ``tz``) fires,
    in its time zone (None only past eight years back: celery refuses a date that never occurs)."""
    t = now.astimezone(crontab.tz).replace(second=0, microsecond=0)
    for _ in range(8 * 366):  # a day at a time, back from today
        if (
            t.month in crontab.month_of_year
            and t.day in crontab.day_of_month
            and t.isoweekday() % 7 in crontab.day_of_week  # celery: 0 is Sunday; both days must match
        ):
            for hour in sorted((h for h in crontab.hour if h <= t.hour), reverse=True):
                minutes = [m for m in crontab.minute if hour < t.hour or m <= t.minute]
                if minutes:
                    return t.replace(hour=hour, minute=max(minutes))
        t = (t - timedelta(days=1)).replace(hour=23, minute=59)
    return None


def run_start_scheduled(*, definition_id: int, request_key: str | None = None, now=None) -> int | None:
    """Beat's start: the run id, or None when the definition is inactive, has no schedule or a run is
    in flight.

    One run per slot of the schedule: the request key is the slot this tick belongs to, the latest
    time at or before ``now`` at which the definition's crontab fires (``beat:<definition>:<slot>``).
    Beat sends a slot again when it restarts from a ``last_run_at`` it had not yet written (it writes
    it every three minutes, so a killed beat forgets the ticks it sent since), and a redelivered
    tick arrives again: both find the slot's run. A beat that was stopped across slots sends one
    tick when it starts, which starts the run of the latest missed slot (docs/reliability.md)."""
    definition = Definition.objects.select_related("tenant", "schedule__crontab").get(pk=definition_id)
    if not definition.is_active:
        log.warning("recon_scheduled_run_skipped", definition_id=definition_id, reason="inactive")
        return None
    if request_key is None:
        crontab = definition.schedule.crontab if definition.schedule else None
        slot = schedule_slot(crontab.schedule, now or timezone.now()) if crontab else None
        if slot is None:  # the schedule was removed after beat sent this tick
            log.warning("recon_scheduled_run_skipped", definition_id=definition_id, reason="no_schedule")
            return None
        request_key = f"beat:{definition_id}:{slot.isoformat()}"
    try:
        run = run_start(
            tenant=definition.tenant,
            actor=Actor.for_system("beat"),
            definition=definition,
            trigger=RunTrigger.BEAT,
            request_key=request_key,
        )
    except ApplicationError as exc:
        if exc.code != "run_in_progress":
            raise
        log.warning(
            "recon_scheduled_run_skipped",
            definition_id=definition_id,
            reason="run_in_progress",
            **{"recon.run_id": exc.extra.get("run_id")},
        )
        return None
    return run.pk


def _dispatch(run_id: int) -> None:
    """Send a committed run's chord. The committed PENDING row is the outbox: when the broker is
    unreachable the request still answers with its run (it exists and will be driven), the failure
    is loud (error log, ``recon_run_enqueue_failures_total``) and the reaper re-sends the chord once
    the run's heartbeat is stale, as for a run whose worker died (docs/reconciliation.md)."""
    kind = Run.objects.only("kind").get(pk=run_id).kind
    try:
        dispatch.run_chord(run_id, kind).apply_async()
    except Exception as exc:  # kombu's OperationalError, or the Redis result
        # backend's RuntimeError when it gives up reconnecting: either way the run is durable and
        # the reaper re-drives it, and a bug here fails it loudly after RUN_MAX_ATTEMPTS.
        metrics.RUN_ENQUEUE_FAILURES.labels(kind=kind).inc()
        log.error(
            "recon_run_enqueue_failed",
            exc_info=True,
            error_type=type(exc).__name__,
            error=str(exc)[:500],
            outcome="left pending for the reaper's re-drive",
            **{"recon.run_id": run_id},
        )


# --- runs: fetch (chord headers) --------------------------------------------------------------------


def run_fetch_side(*, run_id: int, side: str) -> str:
    """Header task body: pull the side's sources through the connectors, then freeze its scope.

    Idempotent: the RunPart row (unique per run and side) is written in the same transaction as the
    scope rows, so a redelivered fetch either finds it and returns, or redoes a rolled-back attempt.
    """
    run = Run.objects.select_related("definition", "tenant").get(pk=run_id)
    if run.is_terminal:
        return "terminal"
    if RunPart.objects.filter(run_id=run_id, side=side).exists():
        return "already_fetched"
    moved = Run.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
        status=RunStatus.FETCHING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if moved:
        log.info("recon_run_fetching", **{"recon.run_id": run_id})
    started = time.perf_counter()
    sources = list(
        DataSource.objects.filter(pk__in=run.definition.sources.filter(side=side).values("source_id"))
    )
    with (
        business_span("recon.fetch", run_id=run_id, definition=run.definition.name, **{"recon.side": side}),
        RunHeartbeat(run_id, (RunStatus.PENDING, RunStatus.FETCHING)),
    ):
        try:
            fetched = [_fetch_source(run, source) for source in sources]
        except ApplicationError as exc:
            # A connector that cannot deliver fails the run with its own words, then the task fails
            # too (link_error finds the run already FAILED and changes nothing).
            run_fail(run_id=run_id, error=f"fetch of side {side} failed: {exc.message}", code=exc.code)
            raise
        with transaction.atomic():
            with connection.cursor() as cursor:
                # The part row first: a concurrent second delivery blocks here until we commit, then
                # inserts nothing and rolls back its (empty) transaction.
                cursor.execute(_CLAIM_PART, [run_id, side])
                part = cursor.fetchone()
                if part is None:
                    return "already_fetched"
                records = run_freeze_scope(cursor, run, side, [s.pk for s in sources])
                if run.kind == DefinitionKind.THREE_WAY and side == Side.LEFT:
                    run_freeze_trade_flow(cursor, run, [s.pk for s in sources])
            duration = time.perf_counter() - started
            RunPart.objects.filter(pk=part[0]).update(
                records=records, fetched=fetched, duration_s=round(duration, 4)
            )
            Run.objects.filter(pk=run_id).update(
                heartbeat_at=timezone.now(), progress_total=F("progress_total") + records
            )
    log.info(
        "recon_side_fetched",
        side=side,
        records=records,
        duration_ms=round(duration * 1000, 1),
        **{"recon.run_id": run_id},
    )
    return "fetched"


def _fetch_source(run: Run, source: DataSource) -> dict:
    """Ask the ingest connector for the window's data ("database": already loaded, nothing to do)."""
    result = fetch_for_window(source=source, date_from=run.date_from, date_to=run.date_to, actor=RUNNER)
    return {
        "source": source.name,
        "connector": result.connector,
        "batch_id": result.batch_id,
        "rows_loaded": result.rows_loaded,
    }


_CLAIM_PART = """
INSERT INTO reconciliation_runpart (run_id, side, records, fetched, duration_s, completed_at)
VALUES (%s, %s, 0, '[]', 0, now())
ON CONFLICT (run_id, side) DO NOTHING RETURNING id
"""

# --- runs: compute (chord callback) -----------------------------------------------------------------


def run_compute(*, run_id: int) -> str:
    """Callback body. Returns "completed", "failed", "terminal" (nothing to do), "missing" (a fetch
    part is not there yet: the task retries until the deadline) or "busy" (another delivery holds the
    run's lock: the task retries)."""
    run = Run.objects.select_related("definition", "tenant", "rule_version").get(pk=run_id)
    if run.is_terminal:
        return "terminal"
    missing = run_missing_sides(run)
    if missing:
        if timezone.now() < run.deadline:
            return "missing"
        run_fail(
            run_id=run_id,
            error=f"fetch parts missing at the deadline: {', '.join(missing)}",
            code="parts_missing",
        )
        return "failed"
    progress = RunProgress(run_id)
    started = time.perf_counter()
    try:
        with business_span("recon.compute", run_id=run_id, definition=run.definition.name):
            outcome = _compute_in_transaction(run, progress, started)
    except engine.ConservationError as exc:
        run_fail(run_id=run_id, error=str(exc), code="conservation", conservation=exc.conservation)
        return "failed"
    except Superseded:
        log.warning("recon_compute_superseded", **{"recon.run_id": run_id})
        return "terminal"
    finally:
        progress.close()
    return outcome


def _compute_in_transaction(run: Run, progress: RunProgress, started: float) -> str:
    run_id = run.pk
    with transaction.atomic():
        if not run_lock_for_compute(run_id):
            return "busy"
        # Re-read under the lock: an earlier delivery may have finished while we waited.
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).get()
        if status in (RunStatus.COMPLETED, RunStatus.FAILED):
            return "terminal"
        # fetching -> matching; matching -> matching is a redelivery or a re-drive after a crash
        # (attempt + 1: an older attempt can no longer complete the run). Committed at once on its
        # own connection so the admin sees the phase.
        attempt = progress.attempt = run_begin_matching(run_id)
        rules = parse_rules(run.rule_version.rules)
        with RunHeartbeat(run_id, (RunStatus.MATCHING,), attempt):
            result = engine.reconcile(run_context(run), rules, progress)
            timings = run_complete(run, result, started, attempt)
    run_observe_completed(run, result, timings)
    return "completed"


# --- runs: failure and the reaper -------------------------------------------------------------------


def runs_reap(*, now=None) -> list[int]:
    """Fail every run still in flight after its deadline (the beat task calls this every minute,
    before runs_redrive_stale)."""
    now = now or timezone.now()
    stuck = list(
        Run.objects.filter(status__in=ACTIVE_RUN_STATUSES, deadline__lt=now).values_list("pk", "status")
    )
    failed = []
    for run_id, status in stuck:
        if run_fail(run_id=run_id, error=f"deadline passed while {status}", code="deadline"):
            failed.append(run_id)
    return failed


def runs_redrive_stale(
    *, now=None, fetch_queue: str = dispatch.FETCH_QUEUE, compute_queue: str = dispatch.COMPUTE_QUEUE
) -> dict[str, list[int]]:
    """Re-drive every run in flight whose heartbeat is older than RUN_STALE_HEARTBEAT_SECONDS (its
    worker is gone), or fail it once it has been driven RUN_MAX_ATTEMPTS times (lifecycle.run_redrive).
    The beat task calls this every minute; a test passes its private worker's queues."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.RUN_STALE_HEARTBEAT_SECONDS)
    stale = (
        Run.objects.filter(status__in=ACTIVE_RUN_STATUSES, deadline__gte=now)
        .filter(Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, created_at__lt=stale_before))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    outcomes: dict[str, list[int]] = {"redriven": [], "failed": []}
    for run_id in list(stale):
        outcome = run_redrive(run_id=run_id, now=now, fetch_queue=fetch_queue, compute_queue=compute_queue)
        if outcome in outcomes:
            outcomes[outcome].append(run_id)
    return outcomes


# --- running without workers (demo seeding, benchmarks) ---------------------------------------------


def run_execute_inline(run: Run) -> Run:
    """Run the fetches and the compute in this process, one after the other (no chord): for seeding
    the demo before the workers are up and for measuring the engine. Same services, same effects."""
    for side in SIDES_OF_KIND[run.kind]:
        run_fetch_side(run_id=run.pk, side=side)
    while (outcome := run_compute(run_id=run.pk)) == "busy":  # a worker is computing it: wait for it
        time.sleep(0.5)
    if outcome not in ("completed", "failed", "terminal"):
        raise RuntimeError(f"run {run.pk}: compute returned {outcome}")
    run.refresh_from_db()
    return run
