"""The ``reconciliations`` section of the configuration file (``manage.py apply_config``).

    reconciliations:
      - name: gl-vs-bank                 # the upsert key (per tenant)
        kind: two_way                    # two_way | three_way (fixed once created)
        description: GL cash vs bank statements
        sources: {left: [gl-cash], right: [bank-camt053]}   # three_way: position, left, right
        rules: {passes: [...]}           # docs/reconciliation.md; a change publishes a new version
        lookback_days: 35
        lookahead_days: 7
        deadline_seconds: 1800
        active: true
        schedule: {cron: "0 6 * * 1-5", expire_seconds: 3600, enabled: true}   # or null: none

Validated entirely before anything is written (rules through the engine's own parser); applied
through the services (audited), after the sources section. Changed rules become a new PENDING
rule version (four-eyes: another person approves it before runs use it). Sources are named, and
must exist once the sources section has been applied (a missing one fails the whole file).
"""

from __future__ import annotations

from jfintech.common.errors import ApplicationError
from reconciliation.ingestion.config_file import ConfigContext, register_section
from reconciliation.matching.passes import DEFAULT_RULES, parse_rules
from reconciliation.runs import services
from reconciliation.runs.models import SIDES_OF_KIND, Definition

KEYS = {
    "name",
    "kind",
    "description",
    "sources",
    "rules",
    "lookback_days",
    "lookahead_days",
    "deadline_seconds",
    "active",
    "schedule",
}
NUMBERS = {"lookback_days": (0, 3650), "lookahead_days": (0, 3650), "deadline_seconds": (10, 7 * 24 * 3600)}


def _validate_item(item, where: str) -> list[str]:
    errors = []
    unknown = set(item) - KEYS
    if unknown:
        errors.append(
            f"{where}: unknown keys {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(KEYS))})"
        )
    if not isinstance(item.get("name"), str) or not item.get("name"):
        errors.append(f"{where}.name: required")
    kind = item.get("kind")
    if kind not in SIDES_OF_KIND:
        errors.append(f"{where}.kind: two_way or three_way")
        return errors
    sources = item.get("sources")
    sides = [str(s) for s in SIDES_OF_KIND[kind]]
    if not isinstance(sources, dict) or set(sources) != set(sides):
        errors.append(f"{where}.sources: a mapping with exactly the sides {sides}")
    else:
        for side, names in sources.items():
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                errors.append(f"{where}.sources.{side}: a non-empty list of source names")
    if item.get("rules") is not None:
        try:
            parse_rules(item["rules"])
        except ApplicationError as exc:
            errors.append(f"{where}.rules: {exc.message}")
    for key, (low, high) in NUMBERS.items():
        value = item.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
        ):
            errors.append(f"{where}.{key}: a whole number from {low} to {high}")
    if not isinstance(item.get("active", True), bool):
        errors.append(f"{where}.active: true or false")
    schedule = item.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, dict) or set(schedule) - {"cron", "expire_seconds", "enabled"}:
            errors.append(f"{where}.schedule: {{cron, expire_seconds, enabled}} or null")
        else:
            if not isinstance(schedule.get("cron"), str) or len(schedule["cron"].split()) != 5:
                errors.append(f"{where}.schedule.cron: five crontab fields, e.g. '0 6 * * 1-5'")
            expire = schedule.get("expire_seconds", 3600)
            if not isinstance(expire, int) or isinstance(expire, bool) or expire < 1:
                errors.append(f"{where}.schedule.expire_seconds: a whole number of seconds >= 1")
    return errors


def validate(value, tenant) -> list[str]:
    if not isinstance(value, list):
        return ["reconciliations: must be a list"]
    errors, seen = [], set()
    for i, item in enumerate(value):
        where = f"reconciliations[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: must be a mapping")
            continue
        where = f"{where} ({item.get('name')})" if item.get("name") else where
        if item.get("name") in seen:
            errors.append(f"{where}.name: appears twice")
        seen.add(item.get("name"))
        errors.extend(_validate_item(item, where))
        existing = Definition.objects.filter(tenant=tenant, name=item.get("name")).first() if tenant else None
        if existing is not None and existing.kind != item.get("kind"):
            errors.append(f"{where}.kind: the definition exists as {existing.kind}; a kind never changes")
    return errors


def _schedule_state(definition: Definition) -> dict | None:
    return services.schedule_snapshot(
        Definition.objects.select_related("schedule__crontab").get(pk=definition.pk)
    )


def apply(value, ctx: ConfigContext) -> dict:
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for item in value:
        fields = {
            k: item[k]
            for k in ("description", "lookback_days", "lookahead_days", "deadline_seconds")
            if k in item
        }
        existing = Definition.objects.filter(tenant=ctx.tenant, name=item["name"]).first()
        if existing is None:
            definition = services.definition_create(
                tenant=ctx.tenant,
                actor=ctx.actor,
                name=item["name"],
                kind=item["kind"],
                sources=item["sources"],
                rules=item.get("rules") or DEFAULT_RULES[item["kind"]],
                **fields,
            )
            if not item.get("active", True):
                services.definition_update(definition=definition, actor=ctx.actor, is_active=False)
            outcome = "created"
        else:
            definition = existing
            before = (
                services.definition_snapshot(existing),
                _schedule_state(existing),
                existing.rule_versions.order_by("-version").values_list("version", flat=True).first(),
            )
            definition = services.definition_update(
                definition=existing,
                actor=ctx.actor,
                sources=item["sources"],
                is_active=item.get("active", True),
                **fields,
            )
            if item.get("rules") is not None:
                services.rules_publish(
                    definition=definition, actor=ctx.actor, rules=item["rules"], comment="apply_config"
                )
            outcome = None
        schedule = item.get("schedule")
        services.definition_schedule_set(
            definition=definition,
            actor=ctx.actor,
            cron=schedule["cron"] if schedule else None,
            expire_seconds=(schedule or {}).get("expire_seconds", 3600),
            enabled=(schedule or {}).get("enabled", True),
        )
        if outcome is None:
            after = (
                services.definition_snapshot(definition),
                _schedule_state(definition),
                definition.rule_versions.order_by("-version").values_list("version", flat=True).first(),
            )
            outcome = "unchanged" if after == before else "updated"
        counts[outcome] += 1
    return counts


register_section("reconciliations", validate=validate, apply=apply, order=20)
