"""The only writes of reporting: storing a generated artifact (immutable) with its audit event."""

from __future__ import annotations

import hashlib

import structlog
from django.db import transaction

from jfintech import audit
from jfintech.tenancy import permissions
from reporting.models import ReportArtifact
from reporting.reports import GENERATOR_VERSION

log = structlog.get_logger(__name__)


def artifact_store(
    *,
    tenant,
    actor,
    kind: str,
    fmt: str,
    filename: str,
    content: bytes,
    filters: dict,
    inputs_as_of,
    generated_at,
    generated_by: str,
) -> ReportArtifact:
    """Store ``content`` once (idempotent: the same bytes of the same kind are the same artifact)."""
    permissions.require(tenant=tenant, actor=actor, area="report", verb="generate")
    digest = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        existing = ReportArtifact.objects.filter(tenant=tenant, kind=kind, sha256=digest).first()
        if existing is not None:
            return existing
        artifact = ReportArtifact(
            tenant=tenant,
            kind=kind,
            format=fmt,
            filename=filename,
            content=content,
            sha256=digest,
            size=len(content),
            generator_version=GENERATOR_VERSION,
            filters=filters,
            inputs_as_of=inputs_as_of,
            generated_at=generated_at,
            generated_by=generated_by,
        )
        artifact.full_clean(exclude=["tenant", "content"])
        artifact.save()
        audit.record(
            tenant=tenant,
            actor=actor,
            action="report.artifact_generated",
            obj=artifact,
            after={
                "kind": kind,
                "filename": filename,
                "sha256": digest,
                "size": len(content),
                "filters": filters,
            },
        )
    log.info(
        "report_artifact_generated", kind=kind, sha256=digest, size=len(content), artifact_id=artifact.pk
    )
    return artifact
