"""What the case page shows, computed from the case's snapshot (no access to reconciliation)."""

from __future__ import annotations

from django.utils import timezone

from exceptions import selectors, workflow
from exceptions.models import CaseStatus
from jfintech.audit import Actor
from jfintech.tenancy import permissions
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


def differences_rows(case) -> list[tuple[str, str]]:
    """Each named difference as "left 100.00 · right 99.50 · delta 0.50"."""
    diffs = case.differences if isinstance(case.differences, dict) else {}
    rows = []
    for field, detail in sorted(diffs.items()):
        if isinstance(detail, dict):
            text = " · ".join(f"{k} {'—' if v is None else v}" for k, v in detail.items())
        else:
            text = str(detail)
        rows.append((field, text))
    return rows


def history_rows(case) -> list[dict]:
    """The audit events of the case as "what changed": before → after for the keys that moved."""
    rows = []
    for event in selectors.case_history(case=case):
        before, after = event.before or {}, event.after or {}
        changes = [
            (key, before.get(key), after.get(key))
            for key in after
            if key in before and before.get(key) != after.get(key)
        ]
        facts = [
            (key, value) for key, value in after.items() if key not in before and value not in (None, "")
        ]
        rows.append({"event": event, "changes": changes, "facts": facts})
    return rows


def case_page_context(request, case) -> dict:
    role = role_of(request.user, case.tenant)
    pending = selectors.case_pending_approval(case=case)
    maker = pending is not None and pending.requested_by_principal == f"user:{request.user.pk}"
    return {
        "case": case,
        "table": records_side_by_side(case),
        "differences": differences_rows(case),
        "comments": selectors.case_comments(case=case),
        "history": history_rows(case),
        "is_breached": bool(case.sla_due_at and case.sla_due_at < timezone.now()),
        "pending": pending,
        "role": role,
        "can_approve": pending is not None and permissions.may(role, "case", "approve") and not maker,
        "is_maker": maker,
        "age_days": selectors.case_age_days(tenant=case.tenant, case=case),
        "is_resolved": case.status == CaseStatus.RESOLVED,
        # A final decision (its records excluded or force-matched) is undone by a four-eyes request,
        # not reopened (services.case_request_undo).
        "is_final_decision": case.resolution_reason in workflow.FINAL_REASONS,
        "is_pending": case.status == CaseStatus.PENDING_APPROVAL,
        "actor": Actor.for_user(request.user),
    }
