"""Isolation registrations of the reports API (see jfintech.testing.isolation)."""

from django.utils import timezone

from jfintech.audit import Actor
from jfintech.testing.isolation import tenant_object
from reconciliation.runs.tests.isolation import a_run
from reporting import services


@tenant_object("report-run")
def a_run_report(tenant) -> dict:
    return a_run(tenant)


@tenant_object("report-artifact-download")
def an_artifact(tenant) -> dict:
    now = timezone.now()
    artifact = services.artifact_store(
        tenant=tenant,
        actor=Actor.for_system("isolation-test"),
        kind="aging-pdf",
        fmt="pdf",
        filename="probe.pdf",
        content=b"%PDF-probe " + tenant.slug.encode(),
        filters={},
        inputs_as_of=now,
        generated_at=now,
        generated_by="system",
    )
    return {"artifact_id": artifact.pk}


@tenant_object("report-export-detail")
def an_export_job(tenant) -> dict:
    from reporting.models import ExportJob

    return {"job_id": ExportJob.objects.create(tenant=tenant, format="csv", requested_by="probe").pk}


@tenant_object(
    "report-subscription-detail",
    bodies={
        "report-subscription-detail": {"kind": "aging", "recipients": ["a@b.example"], "cron": "0 7 * * *"}
    },
)
def a_subscription(tenant) -> dict:
    sub = services.subscription_save(
        tenant=tenant,
        actor=Actor.for_system("isolation-test"),
        name="probe",
        kind="aging",
        recipients=["probe@bank.example"],
        cron="0 7 * * *",
    )
    return {"subscription_id": sub.pk}
