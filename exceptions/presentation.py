"""What the case page shows, computed from the case's snapshot (no access to reconciliation)."""

from __future__ import annotations

from exceptions import selectors
from exceptions.models import CaseStatus
from jfintech.audit import Actor
from jfintech.tenancy.models import Role
from jfintech.tenancy.selectors import role_of

SIDE_LABELS = {"left": "Left", "right": "Right"}


def records_side_by_side(case) -> dict:
    """The snapshot as one table: a column per record (grouped by side), a row per field.

    A row is highlighted when its values differ between records, or when reconciliation named the
    field in the case's differences.
    """
    snapshot = case.snapshot if isinstance(case.snapshot, dict) else {}
    columns = []
    for side, records in snapshot.items():
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            continue
        label = SIDE_LABELS.get(side, side.replace("_", " ").title())
        if not records:
            columns.append({"side": side, "label": f"{label}: missing", "record": None})
        for i, record in enumerate(records):
            suffix = f" #{i + 1}" if len(records) > 1 else ""
            columns.append({"side": side, "label": f"{label}{suffix}", "record": record})
    fields: list[str] = []
    for column in columns:
        for key in column["record"] or {}:
            if key not in fields:
                fields.append(key)
    named = set(case.differences or {}) if isinstance(case.differences, dict) else set()
    rows = []
    for field in fields:
        values = [(c["record"] or {}).get(field) if c["record"] is not None else None for c in columns]
        present = {str(v) for v, c in zip(values, columns, strict=True) if c["record"] is not None}
        differs = field in named or len(present) > 1
        rows.append({"field": field, "values": values, "differs": differs})
    return {"columns": columns, "rows": rows}


def case_page_context(request, case) -> dict:
    role = role_of(request.user, case.tenant)
    pending = selectors.case_pending_approval(case=case)
    maker = pending is not None and pending.requested_by_principal == f"user:{request.user.pk}"
    return {
        "case": case,
        "table": records_side_by_side(case),
        "differences": sorted((case.differences or {}).items()) if isinstance(case.differences, dict) else [],
        "comments": selectors.case_comments(case=case),
        "history": selectors.case_history(case=case),
        "pending": pending,
        "role": role,
        "can_approve": pending is not None and role == Role.APPROVER and not maker,
        "is_maker": maker,
        "age_days": selectors.case_age_days(tenant=case.tenant, case=case),
        "is_resolved": case.status == CaseStatus.RESOLVED,
        "is_pending": case.status == CaseStatus.PENDING_APPROVAL,
        "actor": Actor.for_user(request.user),
    }
