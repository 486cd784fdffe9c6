"""Isolation registrations of the matching-depth API (see jfintech.testing.isolation)."""

from jfintech.testing.isolation import tenant_object
from reconciliation.matching import simulation
from reconciliation.matching.tests.factories import ACTOR, definition
from reconciliation.runs import services
from reconciliation.runs.models import Match

EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}


def _run(tenant):
    defn = definition(tenant)
    return services.run_start(tenant=tenant, actor=ACTOR, definition=defn, trigger="api", dispatch=False)


@tenant_object(
    "recon-match-detail",
    "recon-match-accept",
    "recon-match-reject",
    "recon-match-unmatch",
    bodies={"recon-match-reject": {"reason": "probe"}, "recon-match-unmatch": {"reason": "probe"}},
)
def a_match(tenant) -> dict:
    run = _run(tenant)  # a suggestion of it (records are not needed to be found or not)
    match = Match.objects.create(
        tenant_id=tenant.pk, definition_id=run.definition_id, run=run, pass_no=1, pass_name="fuzzy",
        status="suggested", created_at=run.created_at,
    )  # fmt: skip
    return {"match_id": match.pk}


@tenant_object(
    "recon-manual-match",
    "recon-similar-records",
    "recon-dry-run",
    bodies={"recon-manual-match": {"record_ids": [1, 2], "reason": "probe"}},
)
def a_definition(tenant) -> dict:
    return {"definition_id": definition(tenant).pk}


@tenant_object("recon-run-impact", bodies={"recon-run-impact": {"rule_version_id": 1}})
def a_run(tenant) -> dict:
    return {"run_id": _run(tenant).pk}


@tenant_object("recon-rule-version-approve", "recon-rule-version-reject")
def a_pending_rule_version(tenant) -> dict:
    defn = definition(tenant)
    version = services.rules_publish(definition=defn, actor=ACTOR, rules={"passes": [EXACT | {"name": "v2"}]})
    return {"version_id": version.pk}


@tenant_object("recon-simulation-detail")
def a_simulation(tenant) -> dict:
    defn = definition(tenant)
    report = simulation.simulation_request(
        tenant=tenant, actor=ACTOR, kind="dry_run", definition_id=defn.pk, dispatch=False
    )
    return {"report_id": report.pk}
