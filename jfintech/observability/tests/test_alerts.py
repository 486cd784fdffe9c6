"""Alert rules: valid, unit-tested with promtool, shipped identically in the chart, each with a runbook."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
RULES = ROOT / "alerts" / "jfintech.rules.yaml"
TESTS = ROOT / "alerts" / "tests" / "jfintech.rules.test.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.fixture
def promtool() -> str:
    # `make test` installs it (make system-deps); a missing promtool is a failure, never a skip.
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool is missing: run `make system-deps` (Debian's prometheus package)")
    return PROMTOOL


def alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_rules_are_valid(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests(promtool):
    result = subprocess.run([promtool, "test", "rules", str(TESTS)], capture_output=True, text=True,
                            cwd=TESTS.parent, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    tested = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", TESTS.read_text()))
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)) == 20  # a new alert comes with its test
    missing = set(names) - tested
    assert not missing, f"alerts without a firing promtool test: {sorted(missing)}"


def test_the_chart_ships_the_same_rules():
    shipped = ROOT / "helm" / "jfintech" / "files" / "alerts.yaml"
    assert shipped.read_text() == RULES.read_text(), (
        "cp alerts/jfintech.rules.yaml helm/jfintech/files/alerts.yaml"
    )


def test_every_alert_links_a_runbook_section():
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^### (\S+)", runbook, flags=re.MULTILINE)}
    for alert in alerts():
        assert alert["annotations"]["runbook_url"] == f"docs/runbook.md#{alert['alert'].lower()}"
        assert alert["alert"].lower() in anchors, f"docs/runbook.md has no section for {alert['alert']}"
