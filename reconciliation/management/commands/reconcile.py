"""Start a reconciliation run from the command line.

    python manage.py reconcile --tenant SLUG --definition NAME [--as-of DATE] [--wait] [--json]

The run goes to the workers like any other (chord of fetches, then the compute). ``--wait`` polls
until it is terminal; ``--json`` prints one JSON object with run_id, status, records_in_scope,
matched, in_breaks, excluded, breaks_by_type and duration_s. ``--inline`` runs the same services in
this process instead of the workers (no chord; for a machine without workers). Exit status 1 when
the run failed. ``--dry-run`` computes what a run would do now and writes nothing but a simulation
report (reconciliation.matching.simulation), in this process, and prints its summary.
"""

import json
import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jfintech.audit import Actor
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Tenant
from reconciliation.matching import simulation
from reconciliation.runs import selectors, services
from reconciliation.runs.models import Run, RunStatus, RunTrigger


def run_summary(run: Run) -> dict:
    end = run.completed_at or timezone.now()
    return {
        "run_id": run.pk,
        "status": run.status,
        "records_in_scope": run.records_in_scope,
        "matched": run.matched,
        "in_breaks": run.in_breaks,
        "excluded": run.excluded,
        "breaks_by_type": run.breaks_by_type,
        "duration_s": round((end - run.created_at).total_seconds(), 3),
    }


class Command(BaseCommand):
    help = "Start a reconciliation run of a definition (optionally wait for it and print JSON)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--definition", required=True, help="definition name")
        parser.add_argument("--as-of", type=date.fromisoformat, help="YYYY-MM-DD (default: tenant's today)")
        parser.add_argument("--wait", action="store_true", help="wait until the run is completed or failed")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print the run summary as JSON"
        )
        parser.add_argument(
            "--inline", action="store_true", help="run in this process instead of the workers"
        )
        parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls while waiting")
        parser.add_argument(
            "--dry-run", action="store_true", help="compute in this process, write nothing but a report"
        )

    def handle(self, *args, tenant, definition, as_of, wait, as_json, inline, poll, dry_run=False, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant {tenant!r}.")
        defn = selectors.definition_get(tenant=found, name=definition)
        if defn is None:
            raise CommandError(f"No definition {definition!r} in tenant {tenant}.")
        if dry_run:
            self._dry_run(found, defn, as_of, as_json=as_json)
            return
        try:
            run = services.run_start(
                tenant=found,
                actor=Actor.for_system("cli"),
                definition=defn,
                trigger=RunTrigger.CLI,
                as_of=as_of,
                dispatch=not inline,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if inline:
            run = services.run_execute_inline(run)
        elif wait:
            run = self._wait(run, poll)
        self._report(run, as_json=as_json)
        if run.status == RunStatus.FAILED:
            raise CommandError(f"run {run.pk} failed ({run.error_code}): {run.error}")

    def _dry_run(self, tenant, defn, as_of, *, as_json: bool) -> None:
        try:
            report = simulation.simulation_request(
                tenant=tenant,
                actor=Actor.for_system("cli"),
                kind="dry_run",
                definition_id=defn.pk,
                as_of=as_of,
                dispatch=False,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        simulation.simulation_execute(report_id=report.pk)
        report.refresh_from_db()
        if report.status != "completed":
            raise CommandError(f"dry run {report.pk} failed: {report.error}")
        keys = ("records_in_scope", "matched", "suggested", "in_breaks", "excluded", "breaks_by_type")
        summary = {"simulation_id": report.pk, "dry_run": True} | {k: report.summary[k] for k in keys}
        summary["duration_s"] = report.duration_s
        if as_json:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(f"dry run {report.pk} (nothing written but the report): {summary}")

    def _wait(self, run: Run, poll: float) -> Run:
        # Bounded by the run's deadline: the reaper fails a run that outlives it, and so do we.
        while True:
            run.refresh_from_db()
            if run.is_terminal:
                return run
            if timezone.now() > run.deadline:
                services.run_fail(
                    run_id=run.pk, error="no answer before the deadline (cli --wait)", code="deadline"
                )
                run.refresh_from_db()
                return run
            time.sleep(poll)

    def _report(self, run: Run, *, as_json: bool) -> None:
        summary = run_summary(run)
        if as_json:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(
            f"run {run.pk} {run.status}: {run.records_in_scope} in scope, {run.matched} matched, "
            f"{run.in_breaks} in breaks, {run.excluded} excluded; breaks {run.breaks_by_type or {}} "
            f"({summary['duration_s']} s)"
        )
