"""The catalog is the truth: code, platform collectors, dashboards and alert rules agree with it."""

import importlib
import importlib.util
import json
from pathlib import Path

import promql_parser
import pytest
import yaml
from django.conf import settings
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary

from jfintech.observability.catalog import BY_NAME, CATALOG, query_names
from jfintech.observability.platform import platform_registry

ROOT = Path(settings.BASE_DIR)
PROJECT_APPS = ("jfintech", "reconciliation", "exceptions", "reporting", "filings")
TYPES = {Counter: "counter", Gauge: "gauge", Histogram: "histogram", Summary: "summary"}


def _import_every_metrics_module() -> list[str]:
    modules = []
    for app in PROJECT_APPS:
        for path in sorted((ROOT / app).rglob("metrics.py")):
            if "tests" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            importlib.import_module(module)
            modules.append(module)
    return modules


def _project_metrics() -> dict[str, object]:
    """Metric objects defined by project code (third-party ones are checked by name only)."""
    _import_every_metrics_module()
    found = {}
    for collector in list(REGISTRY._collector_to_names):
        module = type(collector).__module__
        if type(collector) in TYPES and module.startswith("prometheus_client"):
            name = collector._name + ("_total" if isinstance(collector, Counter) else "")
            if not name.startswith(("django_", "python_", "process_")):
                found[name] = collector
    return found


def test_every_metric_defined_in_code_is_in_the_catalog_with_its_type_and_labels():
    defined = _project_metrics()
    assert "recon_task_duration_seconds" in defined
    for name, metric in defined.items():
        assert name in BY_NAME, f"{name} is exported but missing from jfintech/observability/catalog.py"
        spec = BY_NAME[name]
        assert TYPES[type(metric)] == spec.type, name
        assert tuple(metric._labelnames) == spec.labels, name
        if isinstance(metric, Gauge):
            # The default mode ("all") adds a pid label: every gauge must choose.
            assert metric._multiprocess_mode != "all", f"{name} declares no multiprocess_mode"


def test_forbidden_labels_appear_nowhere():
    for spec in CATALOG:
        assert not {"pid", "pod", "run_id", "instance", "case_id"} & set(spec.labels), spec.name


def test_django_prometheus_names_in_the_catalog_exist():
    from django_prometheus.middleware import Metrics

    Metrics.get_instance()
    registered = {
        getattr(c, "_name", "") + ("_total" if isinstance(c, Counter) else "")
        for c in REGISTRY._collector_to_names
    }
    for spec in CATALOG:
        if spec.owner == "django-prometheus":
            assert spec.name in registered, spec.name


@pytest.mark.django_db
def test_every_platform_family_is_in_the_catalog():
    families = {m.name for m in platform_registry().collect()}
    # Counters' family names lack _total in the client library.
    families = {name if name in BY_NAME else f"{name}_total" for name in families}
    assert {"celery_queue_length", "exception_cases_open", "platform_collector_up"} <= families
    for name in families:
        assert name in BY_NAME, name
        assert BY_NAME[name].served_by == "platform", name


def metric_names(expr: str) -> set[str]:
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# Grafana's interval variables are not PromQL; the values don't matter to the parser.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def grafana_expressions() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = list(dashboard["panels"])
        while panels:
            panel = panels.pop()
            panels.extend(panel.get("panels", []))  # rows nest panels
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((path.name, panel["title"], expr))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                query = query["query"] if isinstance(query, dict) else query
                inner = query.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)[0]
                found.append((path.name, f"variable {variable['name']}", inner))
    return found


def alert_expressions() -> list[tuple[str, str, str]]:
    rules = yaml.safe_load((ROOT / "alerts" / "jfintech.rules.yaml").read_text())
    return [
        ("alerts/jfintech.rules.yaml", rule.get("alert") or rule.get("record"), rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def test_dashboards_exist():
    names = {p.name for p in (ROOT / "dashboards").glob("*.json")}
    assert {"reconciliation-overview.json", "queues-and-workers.json", "database.json", "api.json"} <= names


@pytest.mark.parametrize(("where", "what", "expr"), grafana_expressions() + alert_expressions())
def test_every_query_parses_and_names_only_exported_metrics(where, what, expr):
    names = metric_names(expr)  # raises on invalid PromQL
    assert names, f"{where} / {what}: no metric in {expr!r}"
    unknown = names - query_names()
    assert not unknown, f"{where} / {what}: {sorted(unknown)} not in jfintech/observability/catalog.py"


def test_dashboard_files_are_the_builders_output():
    spec = importlib.util.spec_from_file_location("dashboards_build", ROOT / "dashboards" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, text in build.render().items():
        assert (ROOT / "dashboards" / name).read_text() == text, f"run: python dashboards/build.py ({name})"
