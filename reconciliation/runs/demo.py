"""`make demo`: the demo tenant's two reconciliations, defined, scheduled and run once.

Runs after ``reconciliation.ingestion.demo.seed_ingestion_demo`` (its sources and a month of data):

- ``securities-3way``: positions (custody-positions) + trades (fo-trades) vs settlements
  (custodian-settlements). Trades carry the trade id in external_id and the settlement date in
  value_date; the custodian quotes the trade id as reference and settles on business_date: the
  rules' field_map lines them up. Exact pass, then a pass allowing a cent and a day.
- ``gl-vs-bank``: the general ledger's cash account (gl-cash) vs the bank's camt.053 statements
  (bank-camt053), on the end-to-end reference.

Both as of the last day of the demo month, in this process (the workers are not up yet while the
demo is seeded; the same services the chord runs). Each run's summary is printed. Idempotent: a
definition that already has a completed run for that date is not run again (its summary is shown).
"""

from __future__ import annotations

from django.db.models import Max

from jfintech.audit import Actor
from jfintech.tenancy.models import Tenant
from reconciliation.management.commands.reconcile import run_summary
from reconciliation.models import DataSource, Record
from reconciliation.runs import services
from reconciliation.runs.models import Definition, Run, RunStatus, RunTrigger

ACTOR = Actor.for_system("demo-seed")
SCHEDULE = "0 6 * * 1-5"  # weekdays at 06:00 in the tenant's time zone

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
            ],
        },
    },
    "gl-vs-bank": {
        "kind": "two_way",
        "sources": {"left": ["gl-cash"], "right": ["bank-camt053"]},
        "description": "General-ledger cash account against the bank's camt.053 statements.",
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


def _as_of(tenant, source_names) -> object | None:
    """The demo month's last loaded day (positions' as-of date, or the ledger's last posting)."""
    sources = DataSource.objects.filter(tenant=tenant, name__in=source_names)
    return Record.objects.filter(tenant=tenant, source__in=sources).aggregate(day=Max("business_date"))["day"]


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
        anchor = spec["sources"]["position"] if "position" in spec["sources"] else spec["sources"]["left"]
        as_of = _as_of(tenant, anchor)
        if as_of is None:
            out.write(f"demo reconciliation {name}: no data loaded, skipped")
            continue
        run = Run.objects.filter(definition=definition, as_of=as_of, status=RunStatus.COMPLETED).first()
        if run is None:
            run = services.run_start(
                tenant=tenant,
                actor=ACTOR,
                definition=definition,
                trigger=RunTrigger.DEMO,
                as_of=as_of,
                dispatch=False,
            )
            run = services.run_execute_inline(run)
        s = run_summary(run)
        out.write(
            f"demo reconciliation {name} as of {as_of}: run {run.pk} {run.status}, "
            f"{s['records_in_scope']} in "
            f"scope, {s['matched']} matched, {s['in_breaks']} in breaks, {s['excluded']} excluded; "
            f"breaks {s['breaks_by_type']}; {s['duration_s']} s"
        )
