"""Reads of reporting's own rows (artifacts), scoped by tenant. Other apps' rows are read through
their selectors (reporting.reports), never here."""

from __future__ import annotations

from django.db.models import QuerySet

from reporting.models import ExportJob, ReportArtifact, ReportSubscription


def artifact_list(*, tenant) -> QuerySet[ReportArtifact]:
    return ReportArtifact.objects.filter(tenant=tenant).defer("content")


def artifact_get(*, tenant, artifact_id: int) -> ReportArtifact | None:
    return ReportArtifact.objects.filter(tenant=tenant, pk=artifact_id).first()


def export_job_get(*, tenant, job_id: int) -> ExportJob | None:
    return ExportJob.objects.filter(tenant=tenant, pk=job_id).first()


def subscription_list(*, tenant) -> QuerySet[ReportSubscription]:
    return ReportSubscription.objects.filter(tenant=tenant).select_related("tenant", "schedule__crontab")


def subscription_get(*, tenant, subscription_id: int) -> ReportSubscription | None:
    return subscription_list(tenant=tenant).filter(pk=subscription_id).first()
