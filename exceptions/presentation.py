"""What the case page shows, computed from the case's snapshot (no access to reconciliation)."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from exceptions import selectors, services, workflow
from exceptions.models import ApprovalStatus, BreakType, Case, CaseStatus
from jfintech.audit import Actor
from jfintech.common.money import format_amount, format_money, format_quantity
from jfintech.tenancy import permissions
from jfintech.tenancy.selectors import role_of

SIDE_LABELS = {"left": "Left", "right": "Right"}
AMOUNT_FIELDS = {"amount", "raw_amount", "amount_at_stake"}
QUANTITY_FIELDS = {"quantity", "opening", "traded", "expected_closing", "closing"}
# Shown with the reference, not as a row of its own (a ledger record never has one).
REFERENCE_FROM = "reference_from"


def _readable(kind: str, value, currency: str):
    """An amount by its currency's minor units, a quantity without trailing zeros; else as stored."""
    if value is None or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return value
    if kind == "amount":
        return format_amount(value, currency)
    if kind == "quantity":
        return format_quantity(value)
    return value


def _kind(field: str) -> str:
    return "amount" if field in AMOUNT_FIELDS else "quantity" if field in QUANTITY_FIELDS else ""


def _with_origin(reference, record: dict | None):
    """``INV-2026-0042 (from remittance /(?P<ref>INV-\\d+)/)``: the reference and the source
    mapping's extractor that derived it (reconciliation's ingestion/references.py)."""
    origin = (record or {}).get(REFERENCE_FROM)
    return f"{reference} (from {origin})" if origin and reference is not None else reference


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
            if key not in fields and key != REFERENCE_FROM:
                fields.append(key)
    named = set(case.differences or {}) if isinstance(case.differences, dict) else set()
    rows = []
    for field in fields:
        values = [(c["record"] or {}).get(field) if c["record"] is not None else None for c in columns]
        present = {str(v) for v, c in zip(values, columns, strict=True) if c["record"] is not None}
        if field in AMOUNT_FIELDS or field in QUANTITY_FIELDS:
            values = [
                _readable(_kind(field), v, (c["record"] or {}).get("currency") or case.currency)
                for v, c in zip(values, columns, strict=True)
            ]
        elif field == "reference":
            values = [_with_origin(v, c["record"]) for v, c in zip(values, columns, strict=True)]
        differs = field in named or len(present) > 1
        rows.append({"field": field, "values": values, "differs": differs})
    return {"columns": columns, "rows": rows}


def differences_rows(case) -> list[tuple[str, str]]:
    """Each named difference as "left 100.00 · right 99.50 · delta 0.50"."""
    diffs = case.differences if isinstance(case.differences, dict) else {}
    rows = []
    for field, detail in sorted(diffs.items()):
        if isinstance(detail, dict):
            # An amount's left/right/delta in the case's currency; a quantity's without zeros.
            kind = "" if field == "value_date" else _kind(field)
            text = " · ".join(
                f"{k} {'—' if v is None else _readable('' if 'date' in k else kind, v, case.currency)}"
                for k, v in detail.items()
            )
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
    last = case.approvals.order_by("-requested_at", "-id").first()
    last_rejected = last if last is not None and last.status == ApprovalStatus.REJECTED else None
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
        "last_rejected": last_rejected,
        "rejected_mine": last_rejected is not None
        and last_rejected.requested_by_principal == f"user:{request.user.pk}",
        # A failed run has no records to write off or force-match: it is re-run or escalated.
        "is_run_failed": case.break_type == BreakType.RUN_FAILED,
        "links": case_links(case),
    }


def case_links(case) -> dict:
    """Where the case's facts live in reconciliation, by URL name (exceptions never imports it)."""
    if case.break_type == BreakType.DELIVERY_FAILED:
        # Its "definition" is a report subscription and its "run" the delivery (reporting), never a
        # reconciliation run of the same id.
        return {
            "delivery": reverse("admin:reporting_reportdelivery_change", args=[case.first_run_id]),
            "subscription": reverse("admin:reporting_reportsubscription_change", args=[case.definition_id]),
        }
    breaks = reverse("admin:reconciliation_break_changelist")
    return {
        "first_run": reverse("admin:reconciliation_run_change", args=[case.first_run_id]),
        "last_run": reverse("admin:reconciliation_run_change", args=[case.last_run_id]),
        # One break per run that found the item: the list is every run the case appeared in.
        "runs": f"{breaks}?fingerprint={case.fingerprint}",
        "last_break": f"{breaks}?fingerprint={case.fingerprint}&run__id__exact={case.last_run_id}",
        "matches": f"{reverse('admin:reconciliation_matchreview_changelist')}?case_id={case.pk}",
        "rerun": reverse("admin:reconciliation_definition_change", args=[case.definition_id]),
    }


def _threshold_text(currency: str, threshold) -> str:
    return f"the {format_money(threshold, currency)} threshold" if threshold is not None else "threshold"


def act_message(op: str, case: Case, result=None) -> str:
    """What happened, in words: "Case 44 resolved (written off, at or below the GBP 10,000.00 threshold)"."""
    case.refresh_from_db()
    reason = (case.resolution_reason or "").replace("_", " ")
    if op == "request" and isinstance(result, dict):
        approval = result.get("approval")
        if approval is None:
            limit = _threshold_text(
                case.currency, services.approval_threshold_for(tenant=case.tenant, currency=case.currency)
            )
            return f"Case {case.pk} resolved ({reason}, at or below {limit})."
        amount = (
            format_money(approval.amount, approval.currency) if approval.amount is not None else "no amount"
        )
        if approval.threshold is None:
            why = f"no four-eyes threshold is set for {approval.currency or 'its currency'}"
        else:
            why = f"above {_threshold_text(approval.currency, approval.threshold)}"
        return (
            f"Case {case.pk}: {approval.get_kind_display().lower()} of {amount} requested; {why}, "
            "so an approver decides."
        )
    if op in ("resolve", "approve") and case.status == CaseStatus.RESOLVED:
        extra = ", approved by you" if op == "approve" else ""
        return f"Case {case.pk} resolved ({reason}{extra})."
    if op == "reject":
        status = case.status.replace("_", " ")
        return (
            f"Case {case.pk}: request rejected, the case is {status} again; the requester sees your reason."
        )
    words = {
        "comment": "comment added",
        "assign_me": "assigned to you",
        "unassign": "unassigned",
        "investigate": "investigation started",
        "reopen": "reopened",
        "withdraw": "request withdrawn",
        "priority": f"priority set to {case.priority}",
        "root_cause": f"root cause set to {case.root_cause or 'none'}",
        "escalate": f"escalated (priority {case.priority})",
    }
    return f"Case {case.pk}: {words.get(op, op.replace('_', ' ') + ' done')}."
