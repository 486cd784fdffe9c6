"""Verification of the audit trail, as a service for the command and the daily beat task."""

import time

from jfintech.audit.chain import ChainReport, verify_all
from jfintech.audit.metrics import AUDIT_CHAIN_EVENTS, AUDIT_CHAIN_VERIFIED, AUDIT_VERIFICATION_TIMESTAMP
from jfintech.observability.logging import get_logger

log = get_logger(__name__)


def audit_chains_verify(*, tenants=None) -> list[ChainReport]:
    """Verify chains, log each broken one loudly and export the result as metrics."""
    reports = verify_all(tenants)
    for report in reports:
        name = report.tenant_slug or "platform"
        AUDIT_CHAIN_VERIFIED.labels(tenant=name).set(1 if report.ok else 0)
        AUDIT_CHAIN_EVENTS.labels(tenant=name).set(report.events)
        if report.ok:
            log.info("audit_chain_verified", tenant=name, events=report.events)
        else:
            log.error(
                "audit_chain_broken",
                tenant=name,
                event_id=report.bad_event_id,
                seq=report.bad_seq,
                reason=report.error,
            )
    AUDIT_VERIFICATION_TIMESTAMP.set(time.time())
    return reports
