"""The services themselves ask the permission table (docs/tenancy.md, "Who asks the table").

The admin and the API ask ``jfintech.tenancy.permissions`` before they call a service; a shell, a
management command acting as a person or a future surface calls the service directly. So each domain
write service that acts for a person or an API key calls ``permissions.require`` first. Here:

- every such service, called directly by each actor the table refuses for its area and verb (each
  role it does not list, and an admin of another tenant), answers 403 ``permission_denied`` and
  writes nothing (no row changed in any domain table, no audit event); then called by a role the
  table allows, it succeeds and its audit event names that actor. The roles come from the table.
- every public function of the service modules that takes an ``actor`` either calls ``require`` or
  is in ALLOWED_WITHOUT_ASKING with the reason; every one that calls it has a row in ROWS.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps

from exceptions import services as desk
from exceptions.tests.factories import break_input
from jfintech.audit import Actor
from jfintech.audit.models import AuditEvent
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import permissions
from jfintech.tenancy import services as tenancy
from jfintech.tenancy.models import Role
from jfintech.tests.factories import TenantFactory, member
from reconciliation.ingestion import services as ingestion
from reconciliation.ingestion.tests.factories import TRADE_HEADER, TRADE_MAPPING
from reconciliation.matching import approval, manual, simulation, suggestions
from reconciliation.matching.tests.factories import reconcile, records, two_way
from reconciliation.models import DataSource
from reconciliation.runs import lifecycle
from reconciliation.runs import services as runs
from reconciliation.runs.models import Match
from reconciliation.runs.tests.factories import definition

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = Actor.for_system("tests")  # the platform sets the scene: it is not asked
EXACT = {"name": "exact_ref", "type": "exact", "keys": ["reference"]}
SUGGEST = {
    "name": "fuzzy",
    "type": "fuzzy",
    "min_similarity": "0.3",
    "auto_threshold": "0.9",
    "suggest_threshold": "0.5",
}
# The allowed actor is the first role of this order the table lists: a key where a key may, else the
# least senior person.
ROLE_ORDER = (Role.INTEGRATION, Role.ANALYST, Role.APPROVER, Role.ADMIN)


@dataclass
class World:
    tenant: Any
    people: dict  # role -> user with that role in the tenant
    key: Any  # an integration API key of the tenant
    outsider: Any  # an admin of another tenant

    def actor(self, who: str) -> tuple[Actor, Any]:
        """(actor, user) for a role or "outsider"; an integration acts through its key (no user)."""
        if who == Role.INTEGRATION:
            return Actor.for_api_key(self.key), None
        user = self.outsider if who == "outsider" else self.people[who]
        return Actor.for_user(user), user


@pytest.fixture
def world() -> World:
    tenant = TenantFactory()
    # The people; integration is a machine role: it acts through a key.
    people = {r: member(tenant, r, username=f"{r.value}-of-{tenant.slug}") for r in ROLE_ORDER[1:]}
    key = tenancy.api_key_create(tenant=tenant, actor=SYSTEM, name="erp", role=Role.INTEGRATION).key
    return World(tenant, people, key, member(TenantFactory(), Role.ADMIN))


@dataclass(frozen=True)
class Row:
    service: Callable  # the module function under test (its name is the row's id)
    area: str
    verb: str
    setup: Callable[[World], dict]  # what the call needs, written by the platform (SYSTEM)
    kwargs: Callable[[World, dict], dict]  # the call's arguments besides actor, tenant and user


# --- scenes ----------------------------------------------------------------------------------------


def _nothing(world: World) -> dict:
    return {}


def _defn(world: World) -> dict:
    return {"defn": definition(world.tenant)}


def _sources(world: World) -> dict:
    return {
        side: DataSource.objects.create(tenant=world.tenant, name=f"src-{side}", kind=kind)
        for side, kind in (("left", "ledger"), ("right", "statement"))
    }


def _pending_run(world: World) -> dict:
    defn = definition(world.tenant)
    run = runs.run_start(tenant=world.tenant, actor=SYSTEM, definition=defn, trigger="cli", dispatch=False)
    return {"run": run}


def _json_source(world: World) -> dict:
    return {
        "source": DataSource.objects.create(tenant=world.tenant, name="push", kind="trade", format="json")
    }


def _csv_source(world: World) -> dict:
    return {
        "source": DataSource.objects.create(
            tenant=world.tenant, name="trades", kind="trade", format="csv", mapping=dict(TRADE_MAPPING)
        )
    }


def _pushed(n: int) -> list[dict]:
    return [
        {
            "external_id": f"J{i}",
            "business_date": date.today().isoformat(),
            "amount": "1.50",
            "currency": "GBP",
        }
        for i in range(n)
    ]


def _loaded_batch(world: World) -> dict:
    source = _json_source(world)["source"]
    batch = ingestion.batch_ingest_records(
        tenant=world.tenant, actor=SYSTEM, source=source, records=_pushed(2)
    )
    assert batch.status == "loaded"
    return {"batch": batch}


def _open_items(world: World) -> dict:
    defn, left, right = two_way([EXACT], tenant=world.tenant)
    (lid,) = records(left, {"reference": "A", "amount": "1"})
    (rid,) = records(right, {"reference": "B", "amount": "1"})
    return {"defn": defn, "ids": [lid, rid]}


def _manual_match(world: World) -> dict:
    scene = _open_items(world)
    match = manual.match_create_manual(
        tenant=world.tenant, actor=SYSTEM, definition_id=scene["defn"].pk, record_ids=scene["ids"], reason="r"
    )
    return {"match": match}


def _suggestion(world: World) -> dict:
    defn, left, right = two_way([EXACT, SUGGEST], tenant=world.tenant, break_keys=["account"])
    records(left, {"reference": "ACME Corp", "amount": "20", "account": "1"})
    records(right, {"reference": "acme corporation", "amount": "20", "account": "2"})
    run = reconcile(defn)
    return {"match": Match.objects.get(run_id=run.pk, status="suggested")}


def _pending_rules(world: World) -> dict:
    defn = definition(world.tenant)
    return {"version": runs.rules_publish(definition=defn, actor=SYSTEM, rules={"passes": [EXACT, SUGGEST]})}


def _open_case(world: World) -> dict:
    b = break_input(1)
    desk.cases_sync_for_run(
        tenant=world.tenant,
        definition_id=1,
        definition_name="gl-vs-bank",
        run_id=1,
        trace_id="",
        breaks=[b],
        actor=SYSTEM,
    )
    case = desk.Case.objects.get(tenant=world.tenant, fingerprint=b.fingerprint)
    cause = desk.root_cause_save(tenant=world.tenant, actor=SYSTEM, code="fee", name="Bank fee")
    return {"case": case, "cause": cause}


def _resolved_case(reason: str) -> Callable[[World], dict]:
    def scene(world: World) -> dict:
        case = _open_case(world)["case"]
        desk.case_resolve(tenant=world.tenant, actor=SYSTEM, case_id=case.pk, reason=reason, note="n")
        return {"case": case}

    return scene


def _pending_write_off(world: World) -> dict:
    case = _open_case(world)["case"]
    result = desk.case_request_resolution(
        tenant=world.tenant, actor=SYSTEM, user=None, case_id=case.pk, kind="write_off", note="uncollectable"
    )
    assert result["approval"] is not None  # no threshold for EUR: it waits for an approver
    return {"case": case}


# --- the services and how each is called -----------------------------------------------------------


def _case(s: dict) -> dict:
    return {"case_id": s["case"].pk}


ROWS = [
    # definitions and rules (admin: DefinitionAdmin's save; the config file: apply_config)
    Row(runs.definition_create, "definition", "add", _sources, lambda w, s: {
        "name": "new", "kind": "two_way", "sources": {"left": [s["left"]], "right": [s["right"]]}}),
    Row(runs.definition_update, "definition", "change", _defn,
         lambda w, s: {"definition": s["defn"], "description": "changed"}),
    Row(runs.rules_publish, "definition", "change", _defn,
         lambda w, s: {"definition": s["defn"], "rules": {"passes": [EXACT, SUGGEST]}}),
    Row(runs.definition_schedule_set, "definition", "change", _defn,
         lambda w, s: {"definition": s["defn"], "cron": "0 6 * * 1-5"}),
    Row(approval.rule_version_decide, "rule_version", "approve", _pending_rules,
         lambda w, s: {"version_id": s["version"].pk, "approve": True}),
    # runs (API: POST runs/; admin: start_runs, fail_runs)
    Row(runs.run_start, "run", "start", _defn,
         lambda w, s: {"definition": s["defn"], "trigger": "api", "dispatch": False}),
    Row(lifecycle.run_fail, "run", "fail", _pending_run,
         lambda w, s: {"run_id": s["run"].pk, "error": "stuck", "code": "manual"}),
    # ingestion (API: upload, push, reverse, sources; admin: upload view, reverse_batches, source save)
    Row(ingestion.batch_ingest_file, "source", "upload", _csv_source, lambda w, s: {
        "source": s["source"], "file_name": "t.csv",
        "fileobj": io.BytesIO(f"{TRADE_HEADER}T1,{date.today()},ACC1,XS1,100.50,EUR,\n".encode())}),
    Row(ingestion.batch_ingest_records, "source", "upload", _json_source,
         lambda w, s: {"source": s["source"], "records": _pushed(1)}),
    Row(ingestion.batch_reverse, "batch", "reverse", _loaded_batch,
         lambda w, s: {"batch": s["batch"], "reason": "wrong file"}),
    Row(ingestion.source_upsert, "source", "add", _nothing,
         lambda w, s: {"name": "new-source", "kind": "trade", "format": "json"}),
    # match decisions (API: manual match, unmatch, suggestion decisions; admin: accept, reject, unmatch)
    Row(manual.match_create_manual, "match", "decide", _open_items,
         lambda w, s: {"definition_id": s["defn"].pk, "record_ids": s["ids"], "reason": "phone call"}),
    Row(manual.match_unmatch, "match", "decide", _manual_match,
         lambda w, s: {"match_id": s["match"].pk, "reason": "wrong customer"}),
    Row(manual.match_undo, "match", "decide", _manual_match,
         lambda w, s: {"match_id": s["match"].pk, "reason": "wrong customer"}),
    Row(suggestions.suggestion_accept, "match", "decide", _suggestion,
         lambda w, s: {"match_id": s["match"].pk}),
    Row(suggestions.suggestion_reject, "match", "decide", _suggestion,
         lambda w, s: {"match_id": s["match"].pk, "reason": "different customers"}),
    Row(simulation.simulation_request, "simulation", "add", _defn,
         lambda w, s: {"kind": "dry_run", "definition_id": s["defn"].pk, "dispatch": False}),
    # the exceptions desk (API: cases/…; admin: the case page's act view and the list's actions)
    Row(desk.case_assign, "case", "work", _open_case,
         lambda w, s: _case(s) | {"assignee": w.people[Role.ANALYST]}),
    Row(desk.case_start_investigating, "case", "work", _open_case, lambda w, s: _case(s)),
    Row(desk.case_resolve, "case", "work", _open_case,
         lambda w, s: _case(s) | {"reason": "fixed_at_source", "note": "rebooked"}),
    Row(desk.case_reopen, "case", "work", _resolved_case("fixed_at_source"),
         lambda w, s: _case(s) | {"note": "still there"}),
    Row(desk.case_set_priority, "case", "work", _open_case,
         lambda w, s: _case(s) | {"priority": "critical"}),
    Row(desk.case_set_root_cause, "case", "work", _open_case,
         lambda w, s: _case(s) | {"root_cause_id": s["cause"].pk}),
    Row(desk.case_comment_add, "case", "work", _open_case, lambda w, s: _case(s) | {"body": "bank fee"}),
    Row(desk.case_request_resolution, "case", "work", _open_case,
         lambda w, s: _case(s) | {"kind": "write_off", "note": "uncollectable"}),
    Row(desk.case_request_undo, "case", "work", _resolved_case("not_a_break"),
         lambda w, s: _case(s) | {"note": "bank disputes it"}),
    Row(desk.approval_withdraw, "case", "work", _pending_write_off,
         lambda w, s: _case(s) | {"note": "oops"}),
    Row(desk.approval_decide, "case", "approve", _pending_write_off,
         lambda w, s: _case(s) | {"approve": True, "note": "ok"}),
    # desk configuration (admin: RootCauseCategoryAdmin, ApprovalThresholdAdmin, SlaWebhookAdmin)
    Row(desk.approval_threshold_set, "approval_threshold", "add", _nothing,
         lambda w, s: {"currency": "EUR", "amount": Decimal("1000")}),
    Row(desk.root_cause_save, "root_cause", "add", _nothing,
         lambda w, s: {"code": "timing", "name": "Timing"}),
    Row(desk.sla_webhook_set, "sla_webhook", "add", _nothing,
         lambda w, s: {"url": "https://hooks.example.invalid/sla", "secret": "s3cret"}),
]  # fmt: skip


def _call(case: Row, world: World, scene: dict, who: str):
    """The service as a shell would call it: as ``who``, in the world's tenant (a person's services
    also take the person as ``user``; a key has none)."""
    actor, user = world.actor(who)
    params = inspect.signature(case.service).parameters
    extra = {"tenant": world.tenant} if "tenant" in params else {}
    extra |= {"user": user} if "user" in params else {}
    return case.service(actor=actor, **extra, **case.kwargs(world, scene))


def _domain_state() -> dict:
    """Every row of every domain, audit and beat table, as sorted tuples: an UPDATE shows too."""
    state = {}
    for model in apps.get_models():
        if model._meta.proxy or not model.__module__.startswith(
            ("reconciliation.", "exceptions.", "jfintech.audit.", "django_celery_beat.")
        ):
            continue
        state[model._meta.label] = sorted(map(repr, model.objects.values_list()))
    return state


def _refused_and_allowed(area: str, verb: str) -> tuple[list[str], str]:
    allowed = permissions.verbs(area)[verb]
    refused = [role for role in ROLE_ORDER if role not in allowed]
    return [*refused, "outsider"], next(role for role in ROLE_ORDER if role in allowed)


@pytest.mark.parametrize("case", ROWS, ids=[c.service.__name__ for c in ROWS])
def test_the_service_refuses_whom_the_table_refuses_and_writes_nothing(world, case):
    scene = case.setup(world)
    refused, allowed = _refused_and_allowed(case.area, case.verb)
    before, events = _domain_state(), AuditEvent.objects.count()
    for who in refused:
        with pytest.raises(ApplicationError) as err:
            _call(case, world, scene, who)
        assert (err.value.code, err.value.status) == ("permission_denied", 403), who
        assert (err.value.extra["area"], err.value.extra["verb"]) == (case.area, case.verb), who
        assert AuditEvent.objects.count() == events, who
        assert _domain_state() == before, f"{who}: refused, yet something was written"

    _call(case, world, scene, allowed)
    actor, _ = world.actor(allowed)
    assert AuditEvent.objects.filter(actor_kind=actor.kind, actor_id=actor.id).exists(), allowed
    assert _domain_state() != before


def test_the_refusal_is_the_tables_verb_when_the_row_exists(world):
    """Upserts ask "change" for an existing row and "add" for a new one, as the admin's forms do."""
    desk.root_cause_save(tenant=world.tenant, actor=SYSTEM, code="fee", name="Fee")
    actor, _ = world.actor(Role.ANALYST)
    with pytest.raises(ApplicationError) as err:
        desk.root_cause_save(tenant=world.tenant, actor=actor, code="fee", name="Fees")
    assert err.value.extra["verb"] == "change"
    desk.approval_threshold_set(tenant=world.tenant, actor=SYSTEM, currency="EUR", amount=Decimal("5"))
    actor, _ = world.actor(Role.APPROVER)
    with pytest.raises(ApplicationError) as err:
        desk.approval_threshold_set(tenant=world.tenant, actor=actor, currency="EUR", amount=None)
    assert err.value.extra["verb"] == "delete"


# --- every service asks, or says why not --------------------------------------------------------------

SERVICE_MODULES = (
    "exceptions.services",
    "exceptions.decisions",
    "jfintech.tenancy.services",
    "reconciliation.ingestion.services",
    "reconciliation.ingestion.config_file",
    "reconciliation.ingestion.connectors",
    "reconciliation.matching.approval",
    "reconciliation.matching.decisions",
    "reconciliation.matching.manual",
    "reconciliation.matching.simulation",
    "reconciliation.matching.suggestions",
    "reconciliation.runs.lifecycle",
    "reconciliation.runs.services",
)

# Public functions taking an actor that do not call require themselves, and why.
ALLOWED_WITHOUT_ASKING = {
    # run-driven: the engine's steps, called with the runner's system actor or inside a service that asked
    "exceptions.services.cases_sync_for_run": "run-driven: the run's compute step (system actor)",
    "exceptions.services.cases_resolve_matched": "a step of a run or of a match decision, which asked",
    "exceptions.services.case_open_for_failed_run": "a step of run_fail, which asked (run.fail)",
    "exceptions.services.case_open_for_failed_delivery": "a report delivery's last retry, by the platform",
    "exceptions.services.case_transition": "dispatches to case_assign/_start_investigating/_resolve/_reopen, "
    "each of which asks",
    "exceptions.decisions.decision_of": "builds a value, writes nothing",
    "reconciliation.matching.manual.expire_suggestions_holding": "a step of a match decision, which asked",
    "reconciliation.matching.manual.resolve_cases_of": "a step of a match decision, which asked",
    "reconciliation.matching.approval.principal": "formats an actor, writes nothing",
    "reconciliation.matching.approval.bootstrap_fields": "formats an actor, writes nothing",
    "reconciliation.ingestion.connectors.fetch_for_window": "run-driven (the fetch step's system actor); "
    "what it loads goes through batch_ingest_*, which ask",
    "reconciliation.ingestion.config_file.config_apply": "each section applies through services that ask "
    "(source_upsert, definition_create/_update, rules_publish, definition_schedule_set)",
    # tenancy: asked through its own gates
    "jfintech.tenancy.services.tenant_create": "a platform act: require_platform (superuser or platform)",
    "jfintech.tenancy.services.tenant_holiday_add": "delegates to tenant_update, which asks",
    "jfintech.tenancy.services.membership_create": "asks through _check_membership_manager (require + ranks)",
    "jfintech.tenancy.services.membership_change_role": "asks through _check_membership_manager",
    "jfintech.tenancy.services.membership_delete": "asks through _check_membership_manager",
}


def _services_taking_an_actor() -> dict[str, bool]:
    """{"module.function": calls require} for every public function with an ``actor`` parameter."""
    found = {}
    for name in SERVICE_MODULES:
        module = importlib.import_module(name)
        for node in ast.parse(inspect.getsource(module)).body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
            if "actor" not in params:
                continue
            found[f"{name}.{node.name}"] = any(
                isinstance(call, ast.Call)
                and (getattr(call.func, "attr", None) or getattr(call.func, "id", None)) == "require"
                for call in ast.walk(node)
            )
    return found


def test_every_service_taking_an_actor_asks_the_table_or_says_why_not():
    found = _services_taking_an_actor()
    silent = sorted(f for f, asks in found.items() if not asks and f not in ALLOWED_WITHOUT_ASKING)
    assert not silent, f"These services act for an actor without asking the permission table: {silent}"
    stale = sorted(f for f in ALLOWED_WITHOUT_ASKING if found.get(f) is not False)
    assert not stale, f"Allow-listed but gone or asking now (take them off the list): {stale}"


def test_every_service_that_asks_is_exercised_here():
    asking = {f for f, asks in _services_taking_an_actor().items() if asks}
    covered = {f"{c.service.__module__}.{c.service.__name__}" for c in ROWS}
    tenancy_tested_elsewhere = {
        "jfintech.tenancy.services.tenant_update",
        "jfintech.tenancy.services.api_key_create",
        "jfintech.tenancy.services.api_key_revoke",
    }  # jfintech/tests/test_api_keys.py, test_role_matrix.py
    assert asking - tenancy_tested_elsewhere == covered
