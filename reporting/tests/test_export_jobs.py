"""Large exports as a task: progress on the job, the file in a large object, downloaded in chunks,
byte for byte what the synchronous export gives for the same rows."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest

from exceptions import services as desk
from exceptions.tests.factories import TenantFactory, break_input, member
from jfintech.audit import Actor
from jfintech.tenancy.models import Role
from jfintech.testing.processes import wait_until
from jfintech.tests.conftest import client_for
from reporting import services
from reporting.models import ExportJob, ReportArtifact

RECON = Actor.for_system("reconciliation")


def _desk(n: int):
    tenant = TenantFactory(slug="export-job-bank")
    analyst = member(tenant, Role.ANALYST, username="export-analyst")
    breaks = [
        break_input(1, amount=f"{i}.25", reference=f"=cmd|{i}" if i % 7 == 0 else None) for i in range(n)
    ]
    desk.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="",
        breaks=breaks,
        actor=RECON,
    )
    return tenant, analyst


@pytest.mark.django_db
def test_an_export_job_reports_progress_and_stores_a_large_object(
    monkeypatch, django_capture_on_commit_callbacks
):
    tenant, analyst = _desk(25)
    monkeypatch.setattr(services, "EXPORT_PROGRESS_EVERY", 10)
    client = client_for(analyst, tenant_slug=tenant.slug)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            "/api/v1/reports/exports/", {"export": "csv", "status": "unresolved"}, format="json"
        )
    assert response.status_code == 202, response.content
    assert len(queued) == 1  # the task, after commit
    job_id = response.json()["id"]
    assert client.get(f"/api/v1/reports/exports/{job_id}/").json()["status"] == "queued"
    job = services.export_job_run(job_id=job_id)
    assert (job.status, job.rows_total, job.rows_done) == ("done", 25, 25)
    artifact = ReportArtifact.objects.get(pk=job.artifact_id)
    assert artifact.large_object is not None
    assert bytes(artifact.content) == b""
    body = client.get(f"/api/v1/reports/exports/{job_id}/").json()
    assert body["download"].endswith(f"/api/v1/reports/artifacts/{artifact.pk}/download/")
    download = client.get(body["download"])
    data = b"".join(download.streaming_content)
    assert len(data) == artifact.size
    assert hashlib.sha256(data).hexdigest() == artifact.sha256
    rows = [r for r in csv.reader(io.StringIO(data.decode(), newline="")) if r and not r[0].startswith("# ")]
    assert len(rows) == 26  # header + every case
    assert sum(1 for r in rows if r[6].startswith("'=cmd|")) == 4  # formula injection neutralised
    bad = client.post("/api/v1/reports/exports/", {"export": "pdf"}, format="json")
    assert bad.status_code == 400


@pytest.mark.slow
@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_export_and_the_link_downloads_it(celery_workers):
    tenant, analyst = _desk(40)
    client = client_for(analyst, tenant_slug=tenant.slug)
    job_id = client.post("/api/v1/reports/exports/", {"export": "xlsx"}, format="json").json()["id"]
    done = wait_until(
        lambda: ExportJob.objects.filter(pk=job_id, status__in=["done", "failed"]).first(),
        timeout=90,
        message="the export job did not finish",
    )
    assert (done.status, done.rows_done, done.error) == ("done", 40, "")
    body = client.get(f"/api/v1/reports/exports/{job_id}/").json()
    data = b"".join(client.get(body["download"]).streaming_content)
    assert data[:2] == b"PK"  # a workbook (zip)
    assert len(data) == done.artifact.size


@pytest.mark.django_db
def test_a_large_object_written_by_an_app_login_role_belongs_to_the_runtime_role():
    from django.db import connection

    from jfintech.db.roles import runtime_role
    from reporting import storage

    role = runtime_role()
    with connection.cursor() as cursor:
        cursor.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jf_reporting_probe') THEN "
            f"CREATE ROLE jf_reporting_probe NOLOGIN IN ROLE {role}; END IF; END $$"
        )
        cursor.execute("SET LOCAL ROLE jf_reporting_probe")  # what the web and workers log in as
        oid, digest, size = storage.lo_write(io.BytesIO(b"x" * (storage.CHUNK + 5)))
        cursor.execute("RESET ROLE")
        cursor.execute("SELECT pg_get_userbyid(lomowner) FROM pg_largeobject_metadata WHERE oid = %s", [oid])
        assert cursor.fetchone()[0] == role
    assert (size, digest) == (storage.CHUNK + 5, hashlib.sha256(b"x" * (storage.CHUNK + 5)).hexdigest())
    assert b"".join(storage.lo_chunks(oid, size)) == b"x" * (storage.CHUNK + 5)
