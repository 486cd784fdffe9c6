"""Filing configuration (institution, branches, exempt persons, FX rates): one upsert service used by
the admin and by the ``filings`` section of ``manage.py apply_config`` (docs/config-file.md):

    filings:
      institution: {name: First Demo Bank, ein: "123456789", street: ..., city: ..., state: IL,
                    zip_code: "62701", contact_office: BSA Office, contact_phone: "2175550100",
                    transmitter_name: ..., transmitter_tin: "123456789", transmitter_tcc: PABCDEFG,
                    transmitter_phone: "2175550100", transmitter_contact: ..., break_threshold: "100.00"}
      branches: [{code: MAIN, name: Main branch, ein: "123456789", street: ..., city: ..., state: IL,
                  zip_code: "62701"}]
      exempt_persons: [{party_key: C-9, reason: listed public company, valid_from: 2026-01-01}]
      fx_rates: [{currency: EUR, business_date: 2026-11-20, usd_per_unit: "1.0850", source: ECB reference}]

Validated whole first (every problem with its path), idempotent (identical → unchanged, no audit).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import model_to_dict

from filings.models import Branch, ExemptPerson, FilingInstitution, FxRate
from jfintech import audit
from jfintech.tenancy.permissions import require

# section key -> (model, natural key fields, many)
KINDS = {
    "institution": (FilingInstitution, (), False),
    "branches": (Branch, ("code",), True),
    "exempt_persons": (ExemptPerson, ("party_key", "valid_from"), True),
    "fx_rates": (FxRate, ("currency", "business_date"), True),
}


def _fields(model) -> set[str]:
    return {f.name for f in model._meta.concrete_fields} - {"id", "tenant", "updated_at"}


def _state(model, obj) -> dict:
    """Comparable text of each field (decimals at the column's scale: 1.1 and 1.1000 are equal)."""
    out = {}
    for f in sorted(_fields(model)):
        value = getattr(obj, f)
        field = model._meta.get_field(f)
        if value is not None and getattr(field, "decimal_places", None) is not None:
            value = format(value, f".{field.decimal_places}f")
        out[f] = str(value)
    return out


def _instance(model, tenant, values: dict):
    obj = model(tenant=tenant, **values)
    obj.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)
    return obj


def config_upsert(
    *, tenant, actor, model, key: dict, values: dict, check_permission: bool = True
) -> tuple[object, str]:
    """Create or update one configuration row (matched by tenant + ``key``); audited when it changes."""
    if check_permission:
        require(tenant=tenant, actor=actor, area="filing_config", verb="change")
    with transaction.atomic():
        existing = model.objects.select_for_update().filter(tenant=tenant, **key).first()
        candidate = _instance(model, tenant, {**values, **key})
        after = _state(model, candidate)
        name = model._meta.model_name
        if existing is None:
            candidate.save()
            audit.record(tenant=tenant, actor=actor, action=f"{name}.create", obj=candidate, after=after)
            return candidate, "created"
        before = _state(model, existing)
        if before == after:
            return existing, "unchanged"
        for f in _fields(model):
            setattr(existing, f, getattr(candidate, f))
        existing.save()
        audit.record(
            tenant=tenant, actor=actor, action=f"{name}.update", obj=existing, before=before, after=after
        )
        return existing, "updated"


def config_save_instance(*, tenant, actor, obj) -> str:
    """The admin's save: the same upsert, by the row's natural key."""
    model = type(obj)
    keys = next(k for m, k, _ in KINDS.values() if m is model)
    values = {f: v for f, v in model_to_dict(obj).items() if f in _fields(model)}
    key = {k: values.pop(k) for k in keys}
    saved, outcome = config_upsert(tenant=tenant, actor=actor, model=model, key=key, values=values)
    obj.pk = saved.pk
    return outcome


def validate_section(value, tenant) -> list[str]:
    if not isinstance(value, dict):
        return ["filings: must be a mapping"]
    errors = [f"filings.{k}: unknown key (allowed: {', '.join(KINDS)})" for k in value if k not in KINDS]
    for section, (model, keys, many) in KINDS.items():
        if section not in value:
            continue
        items = value[section] if many else [value[section]]
        if not isinstance(items, list):
            errors.append(f"filings.{section}: must be a list")
            continue
        seen = set()
        for i, item in enumerate(items):
            where = f"filings.{section}[{i}]" if many else f"filings.{section}"
            if not isinstance(item, dict):
                errors.append(f"{where}: must be a mapping")
                continue
            unknown = set(item) - _fields(model)
            if unknown:
                errors.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
                continue
            natural = tuple(str(item.get(k)) for k in keys)
            if natural in seen:
                errors.append(f"{where}: {natural} appears twice")
            seen.add(natural)
            try:
                _instance(model, tenant, item)
            except ValidationError as exc:
                errors += [f"{where}.{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
    return errors


def apply_section(value, ctx) -> dict:
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for section, (model, keys, many) in KINDS.items():
        for item in (value.get(section) or []) if many else ([value[section]] if section in value else []):
            obj = _instance(model, ctx.tenant, item)  # typed values (dates, decimals) for the key
            key = {k: getattr(obj, k) for k in keys}
            values = {k: getattr(obj, k) for k in item if k not in keys}
            _, outcome = config_upsert(
                tenant=ctx.tenant,
                actor=ctx.actor,
                model=model,
                key=key,
                values=values,
                check_permission=False,
            )
            counts[outcome] += 1
    return counts


def register() -> None:
    from reconciliation.ingestion.config_file import register_section

    register_section("filings", validate=validate_section, apply=apply_section, order=30)
