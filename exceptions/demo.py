"""`make demo`: the demo tenant's desk — open cases of every break type, some assigned, one pending approval.

Cases are opened through ``exceptions.services`` exactly as reconciliation runs open them (with
realistic snapshots), by three simulated runs of two definitions on earlier business days, so the
desk shows every age bucket. Idempotent: the runs have fixed ids, and a run never touches a case
twice; the workflow steps only apply to cases still in their starting state.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from exceptions import services, sla
from exceptions.models import ApprovalRequest, Case, CaseStatus, RootCauseCategory
from exceptions.types import BreakInput, fingerprint_of
from jfintech.audit import Actor
from jfintech.tenancy import calendar
from jfintech.tenancy.demo import DEMO_ACTOR, DEMO_USERS, demo_tenant
from jfintech.tenancy.models import Role

GL_VS_BANK, SECURITIES = (9001, "demo-gl-vs-bank"), (9002, "demo-securities-3way")
RECON = Actor.for_system("reconciliation")
ROOT_CAUSES = [
    ("late-booking", "Late booking", "Booked in the ledger after the statement date."),
    ("bank-fee", "Bank fee / charge", "Charges deducted by the bank, not booked."),
    ("fx-rate", "FX rate difference", "Converted at a different rate on each side."),
    ("reference-typo", "Reference typo", "Same payment, mistyped reference."),
    ("failed-settlement", "Failed settlement", "Trade did not settle on the intended date."),
]


def _rec(rid, kind, ext, ref, account, ccy, amount, day, **extra):
    return {
        "id": rid,
        "kind": kind,
        "external_id": ext,
        "reference": ref,
        "account": account,
        "currency": ccy,
        "amount": amount,
        "value_date": day,
        **extra,
    }


def _cash_break(
    n, btype, ref, amount_l, amount_r, ccy="GBP", account="GB29NWBK60161331926819", day="2026-11-18"
):
    left = [_rec(100 + n, "ledger", f"GL-{ref}", ref, account, ccy, amount_l, day)] if amount_l else []
    right = [_rec(200 + n, "statement", f"ST-{ref}", ref, account, ccy, amount_r, day)] if amount_r else []
    # A duplicate puts the whole amount at stake (paid twice), not the zero difference.
    delta = abs(Decimal(amount_l or "0") - Decimal(amount_r or "0")) or Decimal(amount_l or "0")
    return BreakInput(
        fingerprint=fingerprint_of(GL_VS_BANK[0], [f"ledger:{ref}", f"statement:{ref}"]),
        break_type=btype,
        record_ids=[r["id"] for r in left + right],
        snapshot={"left": left, "right": right},
        differences={"amount": {"left": amount_l, "right": amount_r, "delta": str(delta)}},
        amount_at_stake=delta,
        currency=ccy,
        reference=ref,
        account=account,
        instrument="",
        rule="v2/pass:exact_ref",
    )


def _sec_break(
    n, btype, ref, isin, qty_l, qty_r, price="101.25", ccy="EUR", date_l="2026-11-17", date_r="2026-11-17"
):
    account = "CUST-ACC-7781"
    left = [
        {
            "id": 300 + n,
            "kind": "trade",
            "external_id": f"TR-{ref}",
            "reference": ref,
            "account": account,
            "instrument": isin,
            "quantity": qty_l,
            "price": price,
            "currency": ccy,
            "trade_date": date_l,
        }
    ]
    right = [
        {
            "id": 400 + n,
            "kind": "settlement",
            "external_id": f"SE-{ref}",
            "reference": ref,
            "account": account,
            "instrument": isin,
            "quantity": qty_r,
            "currency": ccy,
            "trade_date": date_r,
        }
    ]
    stake = abs(Decimal(qty_l) - Decimal(qty_r)) * Decimal(price) or Decimal(qty_l) * Decimal(price)
    diffs = {"quantity": {"left": qty_l, "right": qty_r}} if qty_l != qty_r else {}
    if date_l != date_r:
        diffs["trade_date"] = {"left": date_l, "right": date_r}
    return BreakInput(
        fingerprint=fingerprint_of(SECURITIES[0], [f"trade:{ref}", f"settlement:{ref}"]),
        break_type=btype,
        record_ids=[300 + n, 400 + n],
        snapshot={"left": left, "right": right},
        differences=diffs,
        amount_at_stake=stake,
        currency=ccy,
        reference=ref,
        account=account,
        instrument=isin,
        rule="v1/pass:isin_qty_date",
    )


def _position_break():
    isin, account = "GB00B03MLX29", "CUST-ACC-7781"
    snapshot = {
        "opening_position": [
            {"account": account, "instrument": isin, "quantity": "12000", "as_of": "2026-11-16"}
        ],
        "trades": [{"account": account, "instrument": isin, "quantity": "1500", "trade_date": "2026-11-17"}],
        "closing_position": [
            {"account": account, "instrument": isin, "quantity": "13250", "as_of": "2026-11-17"}
        ],
    }
    return BreakInput(
        fingerprint=fingerprint_of(SECURITIES[0], [f"position:{account}:{isin}"]),
        break_type="position_break",
        record_ids=[],
        snapshot=snapshot,
        differences={"quantity": {"expected": "13500", "actual": "13250", "delta": "-250"}},
        amount_at_stake=Decimal("6812.50"),
        currency="GBP",
        reference="",
        account=account,
        instrument=isin,
        rule="v1/pass:position_roll",
    )


# (definition, run id, business days ago, breaks)
RUNS = [
    (
        GL_VS_BANK,
        990001,
        12,
        [
            _cash_break(1, "missing_right", "INV-2026-11873", "48250.00", None),
            _cash_break(2, "amount_mismatch", "PAY-884120", "15000.00", "14985.00"),
        ],
    ),
    (
        SECURITIES,
        990002,
        5,
        [
            _sec_break(
                3, "quantity_mismatch", "T-55120", "US0378331005", "2500", "2400", price="189.40", ccy="USD"
            ),
            _sec_break(4, "date_mismatch", "T-55133", "DE0007164600", "800", "800", date_r="2026-11-18"),
            _position_break(),
        ],
    ),
    (
        GL_VS_BANK,
        990003,
        1,
        [
            _cash_break(5, "missing_left", "DD-GOCARDLESS-2291", None, "129.99"),
            _cash_break(6, "duplicate", "PAY-884301", "2750000.00", "2750000.00"),
            _cash_break(7, "amount_mismatch", "FX-EURGBP-1102", "250000.00", "248730.55"),
            _cash_break(8, "missing_right", "INV-2026-11990", "3150.00", None),
        ],
    ),
]


def _backdate(tenant, run_id: int, days_ago: int) -> None:
    """Demo only: place a simulated run's new cases on an earlier business day (as if it ran then)."""
    now = timezone.now()
    local = calendar.tenant_now(tenant, now)
    day = calendar.add_business_days(tenant, local.date(), -days_ago)
    seen = now - timedelta(days=(local.date() - day).days)
    for case in Case.objects.filter(tenant=tenant, first_run_id=run_id, run_count=1):
        due = sla.sla_due_at(tenant=tenant, priority=case.priority, opened_at=seen)
        Case.objects.filter(pk=case.pk).update(
            first_seen_at=seen, last_seen_at=seen, opened_at=seen, created_at=seen, sla_due_at=due
        )


def seed_demo_cases(out) -> None:
    tenant = demo_tenant()
    users = {role: get_user_model().objects.get(username=name) for role, name in DEMO_USERS.items()}
    analyst = users[Role.ANALYST]
    for code, name, description in ROOT_CAUSES:
        if not RootCauseCategory.objects.filter(tenant=tenant, code=code).exists():
            services.root_cause_save(
                tenant=tenant, actor=DEMO_ACTOR, code=code, name=name, description=description
            )
    for currency, amount in (("GBP", "10000"), ("EUR", "10000"), ("USD", "12500")):
        services.approval_threshold_set(
            tenant=tenant, actor=DEMO_ACTOR, currency=currency, amount=Decimal(amount)
        )
    for (definition_id, definition_name), run_id, days_ago, breaks in RUNS:
        counts = services.cases_sync_for_run(
            tenant=tenant,
            definition_id=definition_id,
            definition_name=definition_name,
            run_id=run_id,
            trace_id=f"{run_id:032x}",
            breaks=breaks,
            actor=RECON,
        )
        if counts["opened"]:
            with transaction.atomic():
                _backdate(tenant, run_id, days_ago)
    services.case_open_for_failed_run(
        tenant=tenant,
        definition_id=SECURITIES[0],
        definition_name=SECURITIES[1],
        run_id=990004,
        trace_id=f"{990004:032x}",
        error="fetch_settlements: custodian SFTP timed out after 3 attempts",
        actor=RECON,
    )
    # A scheduled report that could not be delivered (reporting): loud, on the desk like a failed run.
    services.case_open_for_failed_delivery(
        tenant=tenant,
        subscription_id=9101,
        subscription_name="demo-morning-aging",
        delivery_id=990101,
        error="email delivery of morning-aging.pdf failed after 6 attempt(s): SMTPRecipientsRefused",
        trace_id=f"{990101:032x}",
        actor=Actor.for_system("report-subscription"),
    )
    cases = {c.reference: c for c in Case.objects.filter(tenant=tenant)}
    as_analyst = {"tenant": tenant, "actor": Actor.for_user(analyst)}

    def untouched(ref):
        return ref in cases and cases[ref].status == CaseStatus.OPEN and cases[ref].assignee_id is None

    for ref in ("PAY-884120", "T-55120"):
        if untouched(ref):
            services.case_assign(**as_analyst, case_id=cases[ref].pk, assignee=analyst)
    if untouched("T-55133"):
        services.case_start_investigating(**as_analyst, user=analyst, case_id=cases["T-55133"].pk)
        services.case_comment_add(
            **as_analyst,
            user=analyst,
            case_id=cases["T-55133"].pk,
            body="Custodian confirms settlement moved to T+1; chasing the SSI.",
        )
    if untouched("INV-2026-11873"):
        case_id = cases["INV-2026-11873"].pk
        services.case_start_investigating(**as_analyst, user=analyst, case_id=case_id)
        services.case_request_resolution(
            **as_analyst,
            user=analyst,
            case_id=case_id,
            kind="write_off",
            note="Customer insolvent; receivable uncollectable (ref. credit memo 7712).",
        )
    open_n = Case.objects.filter(tenant=tenant).exclude(status=CaseStatus.RESOLVED).count()
    pending = ApprovalRequest.objects.filter(tenant=tenant, status="pending").count()
    types = Case.objects.filter(tenant=tenant).values("break_type").distinct().count()
    out.write(f"demo desk: {open_n} open cases of {types} break types, {pending} pending approval")
