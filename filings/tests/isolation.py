"""Isolation registrations of the filings API (see jfintech.testing.isolation)."""

from datetime import UTC, date, datetime

from filings.models import Filing, Package
from jfintech.testing.isolation import tenant_object


def _filing(tenant, kind="ctr") -> Filing:
    return Filing.objects.create(
        tenant=tenant,
        kind=kind,
        subject_key="C-1",
        period_start=date(2026, 11, 20),
        period_end=date(2026, 11, 20),
        due_date=date(2026, 12, 5),
        preparer="probe",
        prepared_at=datetime(2026, 11, 25, tzinfo=UTC),
    )


@tenant_object(
    "filing-detail",
    "filing-validate",
    "filing-request-approval",
    "filing-approve",
    "filing-send-back",
    "filing-amend",
    "filing-history",
    bodies={"filing-send-back": {"reason": "probe"}},
)
def a_filing(tenant) -> dict:
    return {"filing_id": _filing(tenant).pk}


@tenant_object("filing-sar-edit", bodies={"filing-sar-edit": {"narrative": "probe"}})
def a_sar(tenant) -> dict:
    return {"filing_id": _filing(tenant, kind="sar").pk}


@tenant_object(
    "filing-package-detail", "filing-package-xml", "filing-package-submit", "filing-package-acknowledgement"
)
def a_package(tenant) -> dict:
    package = Package.objects.create(
        tenant=tenant,
        kind="ctr",
        xml=b"<x/>",
        sha256="0" * 64,
        size_bytes=4,
        manifest={"filings": []},
        created_at=datetime(2026, 11, 25, tzinfo=UTC),
        created_by="probe",
    )
    return {"package_id": package.pk}
