"""The configuration file applied by ``manage.py apply_config FILE`` (schema: docs/config-file.md).

A YAML document for one tenant::

    version: 1
    tenant: acme
    sources: [...]            # this module's section
    reconciliations: [...]    # registered by the reconciliation runs package

Each top-level section is registered here with ``register_section(name, validate=, apply=,
order=)``: ``validate(value, tenant) -> list[str]`` returns every problem as "path: message" (all of
them, not the first), ``apply(value, ctx) -> {"created": n, "updated": n, "unchanged": n}`` upserts
through the section's services (audited). The whole file is validated before anything is written,
then every section is applied in ``order`` in ONE transaction: a file applies entirely or not at
all, and applying the same file twice changes nothing the second time.

To add a section (e.g. the recon helper's ``reconciliations``), call ``register_section`` in a
module imported from ``ReconciliationConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import yaml
from django.db import transaction

from jfintech import audit
from jfintech.common.errors import ApplicationError
from jfintech.tenancy.models import Tenant


@dataclass(frozen=True)
class ConfigContext:
    tenant: Tenant
    actor: audit.Actor


@dataclass(frozen=True)
class Section:
    name: str
    validate: Callable[[object, Tenant | None], list[str]]
    apply: Callable[[object, ConfigContext], dict]
    order: int = 100


SECTIONS: dict[str, Section] = {}
TOP_LEVEL = ("version", "tenant")


def register_section(name: str, *, validate, apply, order: int = 100) -> None:
    if name in TOP_LEVEL:
        raise ValueError(f"{name} is reserved")
    SECTIONS[name] = Section(name, validate, apply, order)


class ConfigError(ApplicationError):
    def __init__(self, errors: list[str]):
        message = "The configuration file is not valid:\n  " + "\n  ".join(errors)
        super().__init__(message, code="invalid_config", extra={"errors": errors})
        self.errors = errors


def load_document(text: str) -> dict:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"]) from exc
    if not isinstance(document, dict):
        raise ConfigError(["the file must be a mapping with 'version', 'tenant' and sections"])
    return document


def config_validate(document: dict) -> tuple[Tenant | None, list[str]]:
    errors = []
    if document.get("version") != 1:
        errors.append("version: must be 1")
    tenant = None
    slug = document.get("tenant")
    if not isinstance(slug, str) or not slug:
        errors.append("tenant: the tenant's slug is required")
    else:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            errors.append(f"tenant: no tenant {slug!r} (create it first)")
    for key in document:
        if key not in TOP_LEVEL and key not in SECTIONS:
            errors.append(f"{key}: unknown section (known: {', '.join(sorted(SECTIONS)) or 'none'})")
    for name, section in sorted(SECTIONS.items(), key=lambda item: item[1].order):
        if name in document:
            errors.extend(section.validate(document[name], tenant))
    return tenant, errors


def config_apply(*, document: dict, actor, dry_run: bool = False) -> dict:
    """Validate everything, then apply every section in one transaction. Returns per-section counts."""
    tenant, errors = config_validate(document)
    if errors:
        raise ConfigError(errors)
    ctx = ConfigContext(tenant=tenant, actor=actor)
    with transaction.atomic():
        results = {
            name: section.apply(document[name], ctx)
            for name, section in sorted(SECTIONS.items(), key=lambda item: item[1].order)
            if name in document
        }
        changed = any(r.get("created") or r.get("updated") for r in results.values())
        if changed and not dry_run:
            audit.record(tenant=tenant, actor=actor, action="config.apply", object_type="config",
                         after={"sections": results})  # fmt: skip
        if dry_run:
            transaction.set_rollback(True)
    return results


# --- The sources section ---------------------------------------------------------------------

SOURCE_KEYS = {"name", "kind", "format", "mapping", "connector", "active", "accept_empty", "re_reports"}


def _validate_sources(value, tenant) -> list[str]:
    from reconciliation.ingestion.services import re_report_problems, source_validate, tenant_source_pairs

    if not isinstance(value, list):
        return ["sources: must be a list"]
    errors, seen = [], set()
    for i, item in enumerate(value):
        where = f"sources[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: must be a mapping")
            continue
        name = item.get("name")
        where = f"sources[{i}] ({name})" if name else where
        unknown = set(item) - SOURCE_KEYS
        if unknown:
            allowed = ", ".join(sorted(SOURCE_KEYS))
            errors.append(f"{where}: unknown keys {', '.join(sorted(unknown))} (allowed: {allowed})")
        if not isinstance(name, str) or not name:
            errors.append(f"{where}.name: required")
        elif name in seen:
            errors.append(f"{where}.name: {name!r} appears twice")
        seen.add(name)
        for flag, default in (("active", True), ("accept_empty", False)):
            if not isinstance(item.get(flag, default), bool):
                errors.append(f"{where}.{flag}: must be true or false")
        try:
            source_validate(
                kind=item.get("kind", ""), format=item.get("format", "csv"),
                mapping=item.get("mapping") or {}, connector=item.get("connector") or {},
            )  # fmt: skip
        except ApplicationError as exc:
            errors.append(f"{where}: {exc.message}")
        if not isinstance(item.get("re_reports") or "", str):
            errors.append(f"{where}.re_reports: must be a source's name")
    # The pairs as they will be after the file: the tenant's sources, those of the file replacing
    # them (a source of the file without re_reports leaves its pair).
    named = {
        i: item for i, item in enumerate(value)
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]
        and isinstance(item.get("re_reports") or "", str)
    }  # fmt: skip
    pairs = tenant_source_pairs(tenant)
    pairs.update(
        (item["name"], (item.get("kind"), item.get("re_reports") or None)) for item in named.values()
    )
    for i, item in named.items():
        errors.extend(
            f"sources[{i}] ({item['name']}).{problem}" for problem in re_report_problems(pairs, item["name"])
        )
    return errors


def _apply_sources(value, ctx: ConfigContext) -> dict:
    from reconciliation.ingestion.services import source_upsert

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    # Sources leaving or not in a pair first: the source a pair names exists (or was released) by
    # the time the pair is set. Pairs never chain, so one pass in this order suffices.
    for item in sorted(value, key=lambda item: bool(item.get("re_reports"))):
        _, outcome = source_upsert(
            tenant=ctx.tenant, actor=ctx.actor, name=item["name"], kind=item["kind"],
            format=item.get("format", "csv"), mapping=item.get("mapping") or {},
            connector=item.get("connector") or {}, is_active=item.get("active", True),
            accept_empty=item.get("accept_empty", False), re_reports=item.get("re_reports") or None,
        )  # fmt: skip
        counts[outcome] += 1
    return counts


register_section("sources", validate=_validate_sources, apply=_apply_sources, order=10)
