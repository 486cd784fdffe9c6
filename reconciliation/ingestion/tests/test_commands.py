"""The ingest CLI (exit codes, --json) and apply_config (validated, idempotent, audited)."""

import json
import os
import subprocess
import sys
from datetime import date

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jfintech.audit.models import AuditEvent
from jfintech.testing.processes import ROOT, database_url_for_current_connection
from reconciliation.ingestion.tests.factories import TRADE_HEADER, SourceFactory
from reconciliation.models import DataSource

D = date.today().isoformat()


def run_ingest(*args):
    """The command as an operator runs it: a real process, its stdout and exit status."""
    env = {**os.environ, "DATABASE_URL": database_url_for_current_connection(),
           "DJANGO_SETTINGS_MODULE": "config.settings.test", "LOG_LEVEL": "WARNING"}  # fmt: skip
    return subprocess.run([sys.executable, "manage.py", "ingest", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_ingest_cli_json_and_exit_codes(tmp_path):
    source = SourceFactory()
    good = tmp_path / "good.csv"
    good.write_text(TRADE_HEADER + f"T1,{D},A,I,10,EUR,\nT2,{D},A,I,oops,EUR,\n")
    base = ["--tenant", source.tenant.slug, "--source", source.name]
    loaded = run_ingest(*base, str(good), "--json")
    assert loaded.returncode == 0, loaded.stderr
    body = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert {k: body[k] for k in ("status", "rows_total", "rows_accepted", "rows_rejected")} == {
        "status": "loaded", "rows_total": 2, "rows_accepted": 1, "rows_rejected": 1
    }  # fmt: skip
    assert body["control_totals"]["computed"]["by_currency"]["EUR"]["count"] == 1
    assert body["rejections"][0]["reason"] == "malformed_amount"
    duplicate = run_ingest(*base, str(good), "--json", "--format", "csv")
    assert (duplicate.returncode, json.loads(duplicate.stdout.strip().splitlines()[-1])["status"]) == (
        0,
        "duplicate",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("no,header\n")
    rejected = run_ingest(*base, str(bad))
    assert rejected.returncode == 1
    assert "malformed_file" in rejected.stdout
    missing = run_ingest("--tenant", "nope", "--source", "x", str(good))
    assert missing.returncode == 2
    assert "no tenant" in missing.stderr


CONFIG = """
version: 1
tenant: {slug}
sources:
  - name: fo-trades
    kind: trade
    format: csv
    mapping:
      columns: {{external_id: id, business_date: d, amount: amt, currency: ccy}}
      date_format: "%d.%m.%Y"
  - name: bank-camt
    kind: statement
    format: camt053
    connector: {{type: directory, path: /tmp/drop}}
"""


@pytest.mark.django_db
def test_apply_config_upserts_idempotently_and_audits(tmp_path, capsys):
    tenant = SourceFactory().tenant
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(slug=tenant.slug))
    call_command("apply_config", str(path))
    assert "applied sources: 2 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert DataSource.objects.get(tenant=tenant, name="fo-trades").mapping["date_format"] == "%d.%m.%Y"
    events = AuditEvent.objects.filter(tenant=tenant).count()
    call_command("apply_config", str(path))
    assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out
    assert AuditEvent.objects.filter(tenant=tenant).count() == events
    path.write_text(CONFIG.format(slug=tenant.slug).replace("%d.%m.%Y", "%Y%m%d"))
    call_command("apply_config", str(path))
    assert "1 updated" in capsys.readouterr().out
    assert AuditEvent.objects.filter(tenant=tenant, action="source.update").count() == 1


@pytest.mark.django_db
def test_apply_config_lists_every_error_and_writes_nothing(tmp_path):
    tenant = SourceFactory().tenant
    path = tmp_path / "config.yaml"
    path.write_text(
        f"version: 1\ntenant: {tenant.slug}\nwidgets: []\nsources:\n"
        "  - {name: a, kind: trade, mapping: {columns: {external_id: id}}}\n"
        "  - {name: b, kind: nonsense, format: json}\n"
        "  - {name: c, kind: trade, format: json, colour: red}\n"
        "  - {name: d, kind: trade, format: json}\n"
        "  - {name: d, kind: trade, format: json, connector: {type: http}}\n"
    )
    with pytest.raises(CommandError) as error:
        call_command("apply_config", str(path))
    message = str(error.value)
    expected = [
        "widgets: unknown section", "sources[0] (a): columns must map amount, business_date",
        "sources[1] (b): kind must be one of", "sources[2] (c): unknown keys colour",
        "sources[4] (d).name: 'd' appears twice", "an http connector needs an http(s) url",
    ]  # fmt: skip
    assert [e for e in expected if e not in message] == []
    assert not DataSource.objects.filter(tenant=tenant, name="d").exists()
    path.write_text("version: 1\ntenant: [unclosed\n")
    with pytest.raises(CommandError, match="not valid YAML"):
        call_command("apply_config", str(path))
