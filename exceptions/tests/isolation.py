"""Isolation registrations of the exceptions desk API (see jfintech.testing.isolation)."""

from exceptions import services
from exceptions.models import Case
from exceptions.tests.factories import break_input
from jfintech.audit import Actor
from jfintech.testing.isolation import tenant_object

RECON = Actor.for_system("recon")


def _case(tenant) -> Case:
    brk = break_input(1, amount="5000")
    services.cases_sync_for_run(
        tenant=tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="",
        breaks=[brk],
        actor=RECON,
    )
    return Case.objects.get(tenant=tenant, fingerprint=brk.fingerprint)


@tenant_object(
    "case-detail",
    "case-assign",
    "case-transition",
    "case-priority",
    "case-comments",
    "case-resolution-request",
    bodies={
        "case-assign": {"assignee": None},
        "case-transition": {"to_status": "investigating"},
        "case-priority": {"priority": "high"},
        "case-comments": {"body": "probe"},
        "case-resolution-request": {"kind": "write_off", "note": "probe"},
    },
)
def a_case(tenant) -> dict:
    return {"case_id": _case(tenant).pk}


@tenant_object("approval-approve", "approval-reject")
def a_pending_approval(tenant) -> dict:
    from jfintech.tenancy.models import Role
    from jfintech.tests.factories import member

    case = _case(tenant)
    maker = member(tenant, Role.ANALYST)
    result = services.case_request_resolution(
        tenant=tenant,
        actor=Actor.for_user(maker),
        user=maker,
        case_id=case.pk,
        kind="write_off",
        note="probe",
    )
    return {"approval_id": result["approval"].pk}
