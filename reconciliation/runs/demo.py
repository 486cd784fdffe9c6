"""`make demo`: the demo tenant's two reconciliations, defined, scheduled and run on the demo data.

Runs after ``reconciliation.ingestion.demo.seed_ingestion_demo`` (its sources and the data of the
last ~30 days up to today):

- ``securities-3way``: positions (custody-positions) + trades (fo-trades) vs settlements
  (custodian-settlements). Trades carry the trade id in external_id and the settlement date in
  value_date; the custodian quotes the trade id as reference and settles on business_date: the
  rules' field_map lines them up. Exact pass, a pass allowing a cent and a day, then an aggregate
  pass (1:N) for a trade settled in parts, every part within two days of the settlement date (the
  demo's late second half stays a break).
- ``gl-vs-bank``: the general ledger's cash account (gl-cash) vs the bank's intraday camt.054
  notifications and end-of-day camt.053 statements (bank-camt054, bank-camt053; the statement's
  copies of notified entries are linked, so each entry is in scope once), on the reference: the
  end-to-end id, or the invoice number the bank source's extractors found in the remittance text.

Each is run as the desk would have seen it over the last weeks (``HISTORY``: business days before
the data's last day), in this process (the workers are not up yet while the demo is seeded; the
same services the chord runs). The breaks open the desk's cases through the real path, and each
run with the cases it opened is placed on its day (``_place_on_day``) so the desk
shows every age bucket. One securities run fails, as a custodian outage fails it (run_fail: the
failure's case on the desk). Each run's summary is printed. Idempotent: a definition that already
has a run for a date is not run again (its summary is shown).
"""

from __future__ import annotations

from django.db.models import F, Max
from django.utils import timezone

from exceptions.demo import backdate_cases, demo_moment
from jfintech.audit import Actor
from jfintech.observability import business_span
from jfintech.tenancy import calendar
from jfintech.tenancy.models import Tenant
from reconciliation.management.commands.reconcile import run_summary
from reconciliation.models import DataSource, Record
from reconciliation.runs import services
from reconciliation.runs.models import Definition, Run, RunStatus, RunTrigger

ACTOR = Actor.for_system("demo-seed")
SCHEDULE = "0 6 * * 1-5"  # weekdays at 06:00 in the tenant's time zone
# Business days before the data's last day each definition was run. A record an earlier run matched
# is out of later runs' scope, so a duplicate of it reads as missing there: the ledger's duplicate
# (posted yesterday) is first seen by today's run, and none runs in between.
HISTORY = {"securities-3way": [5, 0], "gl-vs-bank": [12, 0]}
# (definition, business days back, error): a run that failed as the fetch of a side fails.
FAILED = ("securities-3way", 3, "fetch of side right failed: custodian SFTP timed out after 3 attempts")

DEFINITIONS = {
    "securities-3way": {
        "kind": "three_way",
        "sources": {
            "position": ["custody-positions"],
            "left": ["fo-trades"],
            "right": ["custodian-settlements"],
        },
        "description": "Custody positions and front-office trades against the custodian's settlements.",
        "rules": {
            "field_map": {"left": {"reference": "external_id"}, "right": {"value_date": "business_date"}},
            "passes": [
                {
                    "name": "exact",
                    "type": "exact",
                    "keys": ["reference"],
                    "quantity": {"absolute": "0"},
                    "date": {"field": "value_date"},
                },
                {
                    "name": "cent_and_day",
                    "type": "tolerance",
                    "keys": ["reference"],
                    "amount": {"absolute": "0.01"},
                    "quantity": {"absolute": "0"},
                    "date": {"field": "value_date", "window_days": 1},
                },
                {  # a trade the custodian settled in parts: within two days of the settlement date
                    "name": "partials_2d",
                    "type": "aggregate",
                    "cardinality": "one_to_many",
                    "keys": ["reference"],
                    "amount": {"absolute": "0.01"},
                    "quantity": {"absolute": "0"},
                    "date": {"field": "value_date", "window_days": 2, "group": "member"},
                },
            ],
        },
    },
    "gl-vs-bank": {
        "kind": "two_way",
        # The statement re-reports the notifications (its copies linked): each entry is in scope once.
        "sources": {"left": ["gl-cash"], "right": ["bank-camt054", "bank-camt053"]},
        "description": "General-ledger cash account against the bank's camt.054 notifications and "
        "camt.053 statements.",
        "rules": {
            "passes": [
                {"name": "exact", "type": "exact", "keys": ["reference"], "date": {"field": "value_date"}},
                {
                    "name": "cent_and_day",
                    "type": "tolerance",
                    "keys": ["reference"],
                    "amount": {"absolute": "0.01"},
                    "date": {"field": "value_date", "window_days": 1},
                },
            ]
        },
    },
}


def _last_day(tenant, source_names) -> object | None:
    """The demo data's last business day (the anchor of HISTORY), None before any data is loaded."""
    sources = DataSource.objects.filter(tenant=tenant, name__in=source_names)
    day = Record.objects.filter(tenant=tenant, source__in=sources).aggregate(day=Max("business_date"))["day"]
    if day is None or calendar.is_business_day(tenant, day):
        return day
    return calendar.add_business_days(tenant, day, -1)


def _definition(tenant, name: str, spec: dict) -> Definition | None:
    existing = Definition.objects.filter(tenant=tenant, name=name).first()
    if existing is not None:
        return existing
    names = [n for side in spec["sources"].values() for n in side]
    if DataSource.objects.filter(tenant=tenant, name__in=names).count() != len(names):
        return None  # the ingestion demo did not run: nothing to reconcile
    definition = services.definition_create(
        tenant=tenant,
        actor=ACTOR,
        name=name,
        kind=spec["kind"],
        sources=spec["sources"],
        rules=spec["rules"],
        description=spec["description"],
        lookback_days=35,
        lookahead_days=7,
    )
    services.definition_schedule_set(definition=definition, actor=ACTOR, cron=SCHEDULE, expire_seconds=3600)
    return definition


def _place_on_day(tenant, run: Run, as_of) -> None:
    """Demo only: the run ran on its as-of day (its timestamps moved back), and so were the cases
    it opened first seen then."""
    shift = timezone.now() - demo_moment(tenant, as_of)
    moved = ("created_at", "started_at", "fetched_at", "completed_at", "heartbeat_at", "deadline")
    Run.objects.filter(pk=run.pk).update(**{f: F(f) - shift for f in moved})
    backdate_cases(tenant, run.pk, as_of)


def _run(tenant, definition, as_of, *, error: str = "") -> Run:
    """The definition's run as of ``as_of``: the one already made, else a new one executed here (or
    failed with ``error``), then placed on its day."""
    run = Run.objects.filter(definition=definition, as_of=as_of, trigger=RunTrigger.DEMO).first()
    if run is not None:
        return run
    # One trace per run, as a worker's run has (run_start keeps the current trace id).
    with business_span("recon.demo_run", definition=definition.name, tenant=tenant):
        run = services.run_start(
            tenant=tenant,
            actor=ACTOR,
            definition=definition,
            trigger=RunTrigger.DEMO,
            as_of=as_of,
            dispatch=False,
        )
        if error:
            services.run_fail(run_id=run.pk, error=error, code="fetch_timeout")
            run.refresh_from_db()
        else:
            run = services.run_execute_inline(run)
    _place_on_day(tenant, run, as_of)
    run.refresh_from_db()
    return run


def seed_recon_demo(out) -> None:
    tenant = Tenant.objects.filter(slug="demo").first()
    if tenant is None:
        out.write("demo reconciliations: no demo tenant, skipped")
        return
    for name, spec in DEFINITIONS.items():
        definition = _definition(tenant, name, spec)
        if definition is None:
            out.write(f"demo reconciliation {name}: its sources are missing, skipped")
            continue
        last = _last_day(tenant, [n for side in spec["sources"].values() for n in side])
        if last is None:
            out.write(f"demo reconciliation {name}: no data loaded, skipped")
            continue
        days = {calendar.add_business_days(tenant, last, -back): "" for back in HISTORY[name]}
        if FAILED[0] == name:
            days[calendar.add_business_days(tenant, last, -FAILED[1])] = FAILED[2]
        for as_of, error in sorted(days.items()):
            run = _run(tenant, definition, as_of, error=error)
            if run.status != RunStatus.COMPLETED:
                out.write(f"demo reconciliation {name} as of {as_of}: run {run.pk} {run.status}: {run.error}")
                continue
            s = run_summary(run)
            out.write(
                f"demo reconciliation {name} as of {as_of}: run {run.pk} {run.status}, "
                f"{s['records_in_scope']} in "
                f"scope, {s['matched']} matched, {s['in_breaks']} in breaks, {s['excluded']} excluded; "
                f"breaks {s['breaks_by_type']}; {s['duration_s']} s"
            )
