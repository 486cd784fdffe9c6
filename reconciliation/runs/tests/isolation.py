"""Isolation registrations of the runs API (see jfintech.testing.isolation)."""

from jfintech.testing.isolation import tenant_object
from reconciliation.runs import services
from reconciliation.runs.tests.factories import ACTOR, definition


@tenant_object("recon-definition-detail")
def a_definition(tenant) -> dict:
    return {"definition_id": definition(tenant).pk}


@tenant_object("recon-run-detail", "recon-run-break-list")
def a_run(tenant) -> dict:
    defn = definition(tenant)
    run = services.run_start(tenant=tenant, actor=ACTOR, definition=defn, trigger="api", dispatch=False)
    return {"run_id": run.pk}
