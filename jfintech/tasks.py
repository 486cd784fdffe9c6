"""Celery discovers tasks per installed app as ``<app>.tasks``; the core's live in subpackages."""

from jfintech.api.tasks import purge_idempotency_keys
from jfintech.audit.tasks import verify_chains
from jfintech.health.tasks import pipeline_complete, pipeline_probe

__all__ = ["pipeline_complete", "pipeline_probe", "purge_idempotency_keys", "verify_chains"]
