"""apply_config's reconciliations section: validated with the sources, idempotent, audited."""

import pytest
from django.core.management import CommandError, call_command

from jfintech.audit.models import AuditEvent
from jfintech.tests.factories import TenantFactory
from reconciliation.runs.config_section import validate
from reconciliation.runs.models import Definition

pytestmark = pytest.mark.django_db

CONFIG = """
version: 1
tenant: {slug}
sources:
  - {{name: gl-cash, kind: ledger, format: json}}
  - {{name: bank, kind: statement, format: json}}
reconciliations:
  - name: gl-vs-bank
    kind: two_way
    sources: {{left: [gl-cash], right: [bank]}}
    rules:
      passes:
        - {{name: exact, type: exact, keys: [reference]}}
        - {{name: near, type: tolerance, keys: [reference], amount: {{absolute: "{tolerance}"}}}}
    lookback_days: 35
    schedule: {{cron: "0 6 * * 1-5", expire_seconds: 900}}
"""


def test_apply_config_creates_then_leaves_alone_then_versions_the_rules(tmp_path, capsys):
    tenant = TenantFactory()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(slug=tenant.slug, tolerance="0.01"))
    call_command("apply_config", str(path))
    assert "reconciliations: 1 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    definition = Definition.objects.get(tenant=tenant, name="gl-vs-bank")
    assert (definition.lookback_days, definition.schedule.expire_seconds) == (35, 900)
    call_command("apply_config", str(path))
    assert "reconciliations: 0 created, 0 updated, 1 unchanged" in capsys.readouterr().out
    path.write_text(CONFIG.format(slug=tenant.slug, tolerance="0.05"))
    call_command("apply_config", str(path))
    assert "reconciliations: 0 created, 1 updated, 0 unchanged" in capsys.readouterr().out
    latest = definition.rule_versions.order_by("-version").first()
    assert (latest.version, latest.status) == (2, "pending")
    assert AuditEvent.objects.filter(tenant=tenant, action="recon_rules.published").count() == 1


def test_apply_config_reports_every_reconciliation_error(tmp_path):
    tenant = TenantFactory()
    path = tmp_path / "config.yaml"
    path.write_text(
        f"version: 1\ntenant: {tenant.slug}\nreconciliations:\n"
        "  - {name: a, kind: two_way, sources: {left: [x]}, rules: {passes: []}, lookback_days: -1}\n"
        "  - {name: b, kind: four_way}\n"
    )
    with pytest.raises(CommandError) as exc:
        call_command("apply_config", str(path))
    message = str(exc.value)
    for expected in ("reconciliations[0] (a).sources", "reconciliations[0] (a).rules",
                     "reconciliations[0] (a).lookback_days", "reconciliations[1] (b).kind"):  # fmt: skip
        assert expected in message, message
    assert not Definition.objects.filter(tenant=tenant).exists()


DATED_AGGREGATE = """
version: 1
tenant: {slug}
sources:
  - {{name: gl-cash, kind: ledger, format: json}}
  - {{name: bank, kind: statement, format: json}}
reconciliations:
  - name: batches
    kind: two_way
    sources: {{left: [gl-cash], right: [bank]}}
    rules:
      passes:
        - {{name: exact, type: exact, keys: [reference]}}
        - name: batch
          type: aggregate
          cardinality: one_to_many
          keys: [reference]
          date: {{field: value_date, window_days: 2{group}}}
"""


def test_apply_config_takes_an_aggregate_date_group_and_refuses_a_bad_one_saying_where(tmp_path):
    tenant = TenantFactory()
    path = tmp_path / "config.yaml"
    path.write_text(DATED_AGGREGATE.format(slug=tenant.slug, group=", group: spread"))
    with pytest.raises(CommandError) as exc:
        call_command("apply_config", str(path))
    assert "reconciliations[0] (batches).rules: passes[1].date.group: 'member'" in str(exc.value)
    assert not Definition.objects.filter(tenant=tenant).exists()

    for group in ("", ", group: span"):  # none given: member, the default
        path.write_text(DATED_AGGREGATE.format(slug=tenant.slug, group=group))
        call_command("apply_config", str(path))
    versions = Definition.objects.get(tenant=tenant, name="batches").rule_versions.order_by("version")
    assert [v.rules["passes"][1]["date"].get("group") for v in versions] == [None, "span"]


def test_the_documented_reconciliations_example_is_valid():
    """docs/config-file.md's "Reconciliations and their rules" example passes the section's checks."""
    from pathlib import Path

    import yaml

    docs = (Path(__file__).resolve().parents[3] / "docs" / "config-file.md").read_text()
    section = docs.split("## Reconciliations and their rules", 1)[1].split("\n## ", 1)[0]
    (block,) = [yaml.safe_load(b.split("```", 1)[0]) for b in section.split("```yaml\n")[1:]]
    assert validate(block["reconciliations"], tenant=None) == []
    assert block["reconciliations"][0]["rules"]["passes"][1]["date"]["group"] == "member"
