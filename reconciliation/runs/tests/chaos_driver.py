"""The fault suite's scenario driver: a Django process on the suite's PRIVATE PostgreSQL and Redis
(docs/reliability.md, "Isolation"), which the test process talks to in JSON lines on a pipe.

The test process keeps its own database (the shared server's test database) untouched; everything a
trial does to the system goes through this driver or the worker subprocesses, all pointed at the
private servers by DATABASE_URL/REDIS_URL. One request per line on stdin, one answer per line on the
original stdout (everything else this process prints, its logs included, goes to stderr).

    python -m reconciliation.runs.tests.chaos_driver
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import uuid


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


# An independent count (not the engine's, not failed_conservation's): every record id of the frozen
# scope, every outcome row the run wrote, and how they overlap.
_ACCOUNTING = """
WITH scope AS (
  SELECT g.id FROM reconciliation_run_scope s, unnest(s.record_ids) r,
       generate_series(lower(r), upper(r) - 1) g(id)
  WHERE s.run_id = %(run)s
), outcomes AS (
  SELECT mi.record_id AS id FROM reconciliation_match m
    JOIN reconciliation_match_item mi ON mi.match_id = m.id WHERE m.run_id = %(run)s
  UNION ALL
  SELECT unnest(record_ids) FROM reconciliation_break
    WHERE run_id = %(run)s AND break_type <> 'position_break'
  UNION ALL
  SELECT record_id FROM reconciliation_run_exclusion WHERE run_id = %(run)s
)
SELECT (SELECT count(*) FROM scope), (SELECT count(DISTINCT id) FROM scope),
       (SELECT count(*) FROM outcomes), (SELECT count(DISTINCT id) FROM outcomes),
       (SELECT count(*) FROM outcomes WHERE id NOT IN (SELECT id FROM scope))
"""


def check(definition: int, acknowledged: dict[str, int], unacknowledged: int = 0) -> dict[str, dict]:
    """The invariants of docs/reliability.md for every run of ``definition`` and the requests the
    API acknowledged ({Idempotency-Key: run id}). Each entry: {"ok": bool, "detail": ...}."""
    from django.db import connection
    from django.db.models import Count

    from exceptions.models import Case
    from jfintech.audit.models import AuditEvent
    from jfintech.audit.services import audit_chains_verify
    from reconciliation.runs.models import Break, Run, RunStatus

    runs = list(Run.objects.filter(definition_id=definition).order_by("pk"))
    out: dict[str, dict] = {}

    # Each acknowledged request had exactly one effect: the run its 202 named exists, once, and no
    # other run exists beyond one per request that was not acknowledged (its work may still have
    # been done: the client was not told it was, and its retry finds it by the Idempotency-Key).
    ids = [r.pk for r in runs]
    missing = [k for k, pk in acknowledged.items() if ids.count(pk) != 1]
    unasked = [pk for pk in ids if pk not in acknowledged.values()]
    out["one_effect_per_request"] = {
        "ok": not missing and len(unasked) <= unacknowledged and bool(runs),
        "detail": {"runs": ids, "missing": missing, "unasked": unasked},
    }

    late = [
        (r.pk, r.status)
        for r in runs
        if r.status not in (RunStatus.COMPLETED, RunStatus.FAILED)
        or not r.completed_at
        or r.completed_at > r.deadline
    ]
    out["terminal_before_deadline"] = {"ok": not late, "detail": late}

    accounting = []
    for r in runs:
        with connection.cursor() as cursor:
            cursor.execute(_ACCOUNTING, {"run": r.pk})
            scope, scope_distinct, outcomes, distinct, stray = cursor.fetchone()
        proof = r.conservation or {}
        unprocessed = proof.get("unprocessed", 0)
        ok = (
            scope == scope_distinct == proof.get("in_scope")
            and outcomes == distinct  # no record with two outcomes
            and stray == 0  # no outcome outside the scope
            and distinct + unprocessed == scope  # every record accounted exactly once
            and (unprocessed == 0 or bool(proof.get("unprocessed_reason")))
            and (r.status != RunStatus.COMPLETED or (proof.get("ok") is True and unprocessed == 0))
        )
        accounting.append(
            {"run": r.pk, "status": r.status, "scope": scope, "outcomes": outcomes, "distinct": distinct,
             "stray": stray, "unprocessed": unprocessed, "ok": ok}
        )  # fmt: skip
    out["every_record_accounted_once"] = {"ok": all(a["ok"] for a in accounting), "detail": accounting}

    fingerprints = set(
        Break.objects.filter(run__definition_id=definition).values_list("fingerprint", flat=True)
    )
    cases = Case.objects.filter(definition_id=definition)
    case_ids = [str(pk) for pk in cases.values_list("pk", flat=True)]
    opened_twice = list(
        AuditEvent.objects.filter(action="case.opened", object_id__in=case_ids)
        .values("object_id").annotate(n=Count("id")).filter(n__gt=1).values_list("object_id", flat=True)
    )  # fmt: skip
    case_fps = list(cases.values_list("fingerprint", flat=True))
    run_failed_cases = [c for c in cases.values_list("break_type", flat=True) if c == "run_failed"]
    ok = not opened_twice and len(case_fps) == len(set(case_fps))
    ok = ok and set(case_fps) - fingerprints <= set(
        cases.filter(break_type="run_failed").values_list("fingerprint", flat=True)
    )
    out["no_case_opened_twice"] = {
        "ok": ok,
        "detail": {"cases": len(case_fps), "break_fingerprints": len(fingerprints),
                   "run_failed_cases": len(run_failed_cases), "opened_twice": opened_twice},
    }  # fmt: skip

    tenant = runs[0].tenant if runs else None
    reports = audit_chains_verify(tenants=[tenant]) if tenant else []
    out["audit_chain_verifies"] = {"ok": bool(reports) and all(r.ok for r in reports),
                                   "detail": [r.describe() for r in reports]}  # fmt: skip
    return out


def check_ingest(source: int, rows: int) -> dict[str, dict]:
    """The invariants of an ingest for ``source``, which was sent one file of ``rows`` valid rows
    (each with its own external id), perhaps more than once: no partial batch (a batch that is not
    loaded holds no record, a loaded one exactly its accepted rows), one batch's records loaded
    (once, not twice), every batch closed with a status that says what happened, the audit chain."""
    from django.db.models import Count

    from jfintech.audit.services import audit_chains_verify
    from reconciliation.models import DataSource, IngestionBatch, Record

    source_obj = DataSource.objects.select_related("tenant").get(pk=source)
    batches = list(IngestionBatch.objects.filter(source_id=source).order_by("pk"))
    per_batch = Record.objects.filter(source_id=source).values("batch_id").annotate(n=Count("id"))
    held = {r["batch_id"]: r["n"] for r in per_batch}
    partial = [
        (b.pk, b.status, held.get(b.pk, 0), b.rows_accepted)
        for b in batches
        if held.get(b.pk, 0) != (b.rows_accepted if b.status == "loaded" else 0)
    ]
    loaded = [b.pk for b in batches if b.status == "loaded"]
    records = Record.objects.filter(source_id=source, status="active")
    keys = records.values("external_id").distinct().count()
    tenant = source_obj.tenant
    reports = audit_chains_verify(tenants=[tenant])
    return {
        "no_partial_batch": {"ok": not partial, "detail": partial},
        "loaded_once": {"ok": len(loaded) == 1 and records.count() == keys == rows,
                        "detail": {"loaded": loaded, "records": records.count(), "keys": keys, "rows": rows}},
        "every_batch_closed": {"ok": all(b.completed_at for b in batches),
                               "detail": [(b.pk, b.status, b.reject_code) for b in batches]},
        "audit_chain_verifies": {"ok": bool(reports) and all(r.ok for r in reports),
                                 "detail": [r.describe() for r in reports]},
    }  # fmt: skip


def metrics() -> dict[str, float]:
    """Every recon_* counter sample of every process sharing PROMETHEUS_MULTIPROC_DIR (the workers,
    dead or alive, and this driver, which runs the reaper): {'name{labels}': value}."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    samples = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name.startswith("recon_") and s.name.endswith("_total"):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def handle(request: dict):
    from django.db import connections

    connections.close_all()  # a server restarted since the last request: connect afresh
    op = request["op"]
    if op == "migrate":
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        return {}
    if op == "seed":
        from jfintech.tenancy import services as tenancy
        from reconciliation.matching.tests.test_sharding import RULES, load
        from reconciliation.runs.tests.factories import ACTOR, TenantFactory, definition

        tenant = TenantFactory()
        defn = definition(tenant, rules=RULES, deadline_seconds=request.get("deadline", 240))
        load(defn, accounts=request.get("accounts", 12))
        key = tenancy.api_key_create(tenant=tenant, actor=ACTOR, name=f"chaos-{uuid.uuid4().hex[:6]}",
                                     role=request.get("role", "integration"))  # fmt: skip
        return {"definition": defn.pk, "tenant": tenant.pk, "key": key.plaintext}
    if op == "start":  # through the API, as a client does: 202 is the acknowledgement
        from rest_framework.test import APIClient

        client = APIClient(raise_request_exception=False)  # what a real client sees: the status
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {request['key']}")
        response = client.post("/api/v1/reconciliation/runs/", {"definition": str(request["definition"])},
                               format="json", HTTP_IDEMPOTENCY_KEY=request["idem"])  # fmt: skip
        body = response.json() if response.get("Content-Type", "").startswith("application/json") else {}
        return {"status": response.status_code, "body": body}
    if op == "seed_source":  # a tenant, a CSV trade source, an integration key
        from jfintech.tenancy import services as tenancy
        from reconciliation.ingestion.tests.factories import SourceFactory
        from reconciliation.runs.tests.factories import ACTOR, TenantFactory

        source = SourceFactory(tenant=TenantFactory())
        key = tenancy.api_key_create(tenant=source.tenant, actor=ACTOR, name=f"chaos-{uuid.uuid4().hex[:6]}",
                                     role="integration")  # fmt: skip
        return {"source": source.pk, "key": key.plaintext}
    if op == "upload":  # a file through the API, as a client uploads it
        from django.core.files.uploadedfile import SimpleUploadedFile
        from rest_framework.test import APIClient

        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {request['key']}")
        headers = {"HTTP_IDEMPOTENCY_KEY": request["idem"]} if request.get("idem") else {}
        upload = SimpleUploadedFile("chaos.csv", request["content"].encode())
        response = client.post(f"/api/v1/ingestion/sources/{request['source']}/batches/", {"file": upload},
                               format="multipart", **headers)  # fmt: skip
        body = response.json() if response.get("Content-Type", "").startswith("application/json") else {}
        return {"status": response.status_code, "body": body}
    if op == "reap_batches":  # beat's ingestion.fail_abandoned_batches, without its minimum age
        from reconciliation.ingestion.services import batches_fail_abandoned

        return batches_fail_abandoned(older_than_s=0)
    if op == "check_ingest":
        return check_ingest(request["source"], request["rows"])
    if op == "create":  # a committed run whose messages are left to the test (``send``)
        from jfintech.audit import Actor
        from reconciliation.runs.models import Definition, RunTrigger
        from reconciliation.runs.services import run_start

        definition = Definition.objects.select_related("tenant").get(pk=request["definition"])
        run = run_start(tenant=definition.tenant, actor=Actor.for_system("chaos"), definition=definition,
                        trigger=RunTrigger.API, request_key=request["idem"], dispatch=False)  # fmt: skip
        return {"id": run.pk}
    if op == "schedule":  # the definition's beat entry (a crontab), as an admin sets it
        from reconciliation.runs.models import Definition
        from reconciliation.runs.services import definition_schedule_set
        from reconciliation.runs.tests.factories import ACTOR

        definition = Definition.objects.get(pk=request["definition"])
        definition = definition_schedule_set(definition=definition, actor=ACTOR, cron=request["cron"],
                                             expire_seconds=request.get("expire_seconds", 50))  # fmt: skip
        return {"periodic_task": definition.schedule_id}
    if op == "send":  # a raw message, as a broker redelivery or a lost callback would leave it
        from celery import group

        from reconciliation.runs import dispatch
        from reconciliation.runs.models import Run

        run = Run.objects.get(pk=request["run"])
        what = request["what"]
        if what == "header":  # the chord's parts without its callback: the callback is lost
            group(
                dispatch.task(name, run.pk, queue=dispatch.FETCH_QUEUE)
                for name in dispatch.FETCH_TASKS[run.kind]
            ).apply_async()
        elif what == "compute":
            dispatch.compute(run.pk).apply_async()
        elif what == "chord":
            dispatch.run_chord(run.pk, run.kind).apply_async()
        return {}
    if op == "reap":  # what beat's reap_stuck_runs does: fail past the deadline, re-drive the stale
        from reconciliation.runs import services

        return {"past_deadline": services.runs_reap(), **services.runs_redrive_stale()}
    if op == "run":
        from reconciliation.runs.models import Run

        r = Run.objects.filter(pk=request["run"]).values(
            "status", "attempts", "redrives", "error_code", "error", "created_at", "completed_at",
            "request_key", "trigger",
        ).first()  # fmt: skip
        return {k: (str(v) if k.endswith("_at") else v) for k, v in (r or {}).items()}
    if op == "runs":
        from reconciliation.runs.models import Run

        return list(Run.objects.filter(definition_id=request["definition"]).values_list("pk", "status"))
    if op == "check":
        return check(request["definition"], request.get("acknowledged", {}), request.get("unacknowledged", 0))
    if op == "metrics":
        return metrics()
    raise ValueError(f"unknown op {op}")


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # logs and prints go to stderr; stdout carries only answers
    sys.stdout = sys.stderr
    _setup()
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        try:
            answer = {"ok": True, "result": handle(json.loads(line))}
        except Exception as exc:  # the test sees every failure, with its traceback
            answer = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        answers.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
