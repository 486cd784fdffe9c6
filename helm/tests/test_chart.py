"""Offline tests of the jfintech Helm chart.

The chart is linted and rendered with helm-python-sdk (Helm's Go SDK through ctypes, no helm
binary, no cluster) and every rendered manifest is checked against the Kubernetes JSON schemas
shipped with kubernetes-validate. No Django import: these tests run inside the project's pytest
session but only need PyYAML, helm_python and kubernetes_validate.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).parents[1] / "jfintech"
RELEASE = "jfintech"
NAMESPACE = "bank"
# A recent Kubernetes minor the chart must validate against (strict schemas: unknown fields fail).
KUBE_VERSION = "1.33.0"
OLDEST_KUBE_VERSION = "1.27.0"  # keep in sync with kubeVersion in Chart.yaml
QUEUES = ("default", "ingest", "reconciliation", "fetch")
SECRET_KEYS = ("SECRET_KEY", "DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "AUDIT_HMAC_KEY")
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
# Custom resources: kubernetes-validate does not know them; test_chart_crds.py checks them
# against their CRDs' schemas.
CRD_KINDS = MONITORING_KINDS | KEDA_KINDS
WORKLOAD_KINDS = {"Deployment", "Job"}

# Every optional feature switched on (dev Secret included, since it is mutually exclusive with
# existingSecret).
FULL_VALUES: dict[str, Any] = {
    "image": {"digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "regcred"}],
    "secret": {
        "create": True,
        "values": {
            "SECRET_KEY": "dev-secret-key",
            "DATABASE_URL": "postgres://app:app@db:5432/jfintech",
            "DATABASE_OWNER_URL": "postgres://owner:owner@db:5432/jfintech",
            "REDIS_URL": "redis://redis:6379/0",
            "AUDIT_HMAC_KEY": "dev-audit-key",
        },
    },
    "config": {
        "allowedHosts": ["api.jfintech.example"],
        "otel": {"tracesExporter": "otlp", "endpoint": "http://otel:4318"},
        "extraEnv": {"FEATURE_X": "on", "MAX_ROWS": 5000},
    },
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "serviceAccount": {"annotations": {"example.com/role": "jfintech"}},
    "podAnnotations": {"example.com/team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "bank", "effect": "NoSchedule"}],
    "priorityClassName": "high",
    "tmpVolume": {"medium": "Memory", "sizeLimit": "128Mi"},
    "web": {
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "50m"},
        "hosts": [{"host": "jfintech.bank.example", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "jfintech-tls", "hosts": ["jfintech.bank.example"]}],
    },
    "workerDefaults": {"autoscaling": {"enabled": True}},
    "keda": {
        "redis": {
            "address": "redis:6379",
            "auth": {"passwordKey": "REDIS_PASSWORD", "usernameKey": "REDIS_USER"},
        }
    },
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "additionalGroups": [
                {
                    "name": "jfintech.custom",
                    "rules": [{"alert": "JfintechCustom", "expr": "vector(0) > 1", "for": "5m"}],
                }
            ],
        },
    },
}


# The production-like values file shipped with the chart (ci/, as chart-testing expects).
PRODUCTION_VALUES: dict[str, Any] = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render the chart and return the parsed, non-empty manifests (NOTES.txt excluded)."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    found = [
        d
        for d in by_kind(docs, kind)
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} for component {component}, got {len(found)}"
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(doc)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Worker Deployments keyed by queue."""
    return {
        d["metadata"]["labels"]["jfintech/queue"]: d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    }


def arg_after(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def env_var(container: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [e for e in container.get("env", []) if e["name"] == name]
    assert len(matches) == 1, f"env {name} defined {len(matches)} times in {container['name']}"
    return matches[0]


def secret_ref(container: dict[str, Any], name: str) -> dict[str, Any]:
    ref: dict[str, Any] = env_var(container, name)["valueFrom"]["secretKeyRef"]
    return ref


def hook_annotations(doc: dict[str, Any]) -> tuple[set[str], set[str], int]:
    ann = doc["metadata"].get("annotations", {})
    hooks = set(ann.get("helm.sh/hook", "").split(",")) - {""}
    policy = set(ann.get("helm.sh/hook-delete-policy", "").split(",")) - {""}
    return hooks, policy, int(ann.get("helm.sh/hook-weight", "0"))


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def full_docs() -> list[dict[str, Any]]:
    return render(FULL_VALUES)


@pytest.fixture(scope="module")
def production_docs() -> list[dict[str, Any]]:
    return render(PRODUCTION_VALUES)


@pytest.fixture(params=["default", "full", "production"])
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    fixture: list[dict[str, Any]] = request.getfixturevalue(f"{request.param}_docs")
    return fixture


# --------------------------------------------------------------------------------------------
# lint / render / schema validation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values", [None, FULL_VALUES, PRODUCTION_VALUES], ids=["default", "full", "production"]
)
def test_lint_has_no_errors_or_warnings(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # severity: 1=info (e.g. "icon is recommended"), 2=warning, 3=error
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_default_render_has_expected_resources(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds.count("Deployment") == 1 + len(QUEUES) + 1  # web + workers + beat
    for kind in ("ConfigMap", "Service", "ServiceAccount", "Job", "PodDisruptionBudget"):
        assert kind in kinds
    # Optional features are off by default.
    for kind in ("Ingress", "HorizontalPodAutoscaler", "Secret", "NetworkPolicy", *CRD_KINDS):
        assert kind not in kinds, f"{kind} should be disabled by default"


def test_full_render_has_optional_resources(full_docs: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in full_docs}
    assert {"Ingress", "HorizontalPodAutoscaler", "Secret", *MONITORING_KINDS} <= kinds


def test_manifests_pass_kubernetes_schema(docs: list[dict[str, Any]]) -> None:
    checked = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_default_manifests_pass_oldest_supported_kubernetes(
    default_docs: list[dict[str, Any]],
) -> None:
    # Chart.yaml declares kubeVersion >=1.27; the defaults must not need newer API fields.
    for doc in default_docs:
        kubernetes_validate.validate(doc, OLDEST_KUBE_VERSION, strict=True)


def test_schema_validation_is_not_vacuous(default_docs: list[dict[str, Any]]) -> None:
    web = copy.deepcopy(one(default_docs, "Deployment", "web"))
    pod_spec(web)["containers"][0]["livenessProbes"] = {}  # typo of livenessProbe
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBE_VERSION, strict=True)


def test_monitoring_crds_are_well_formed(full_docs: list[dict[str, Any]]) -> None:
    for doc in full_docs:
        if doc["kind"] in MONITORING_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["metadata"]["name"]
            # labels from values (e.g. the label Prometheus selects on) are applied
            assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    web_svc = one(full_docs, "Service", "web")
    (sm,) = by_kind(full_docs, "ServiceMonitor")
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= web_svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in web_svc["spec"]["ports"]}

    pm, beat_pm = sorted(
        by_kind(full_docs, "PodMonitor"), key=lambda d: not d["metadata"]["name"].endswith("-workers")
    )
    # Beat serves the platform metrics (global figures computed once, docs/observability.md).
    beat = one(full_docs, "Deployment", "beat")
    assert beat_pm["metadata"]["name"].endswith("-beat")
    assert (
        beat_pm["spec"]["selector"]["matchLabels"].items()
        <= beat["spec"]["template"]["metadata"]["labels"].items()
    )
    (beat_container,) = containers(beat)
    assert {"name": "metrics", "containerPort": 9809, "protocol": "TCP"} in beat_container["ports"]
    assert {"name": "BEAT_METRICS_PORT", "value": "9809"} in beat_container["env"]
    assert beat_pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    selector = pm["spec"]["selector"]["matchLabels"]
    worker_deps = workers(full_docs)
    assert set(worker_deps) == set(QUEUES)
    for dep in worker_deps.values():
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        ports = {p["name"] for c in containers(dep) for p in c.get("ports", [])}
        assert pm["spec"]["podMetricsEndpoints"][0]["port"] in ports

    (rule,) = by_kind(full_docs, "PrometheusRule")
    groups = rule["spec"]["groups"]
    assert groups, "PrometheusRule without groups"
    for group in groups:
        assert group["name"]
        assert group["rules"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r)
            assert isinstance(r["expr"], str)
            assert r["expr"].strip()
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    shipped = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    shipped_alerts = {r["alert"] for g in shipped["groups"] for r in g["rules"] if "alert" in r}
    assert shipped_alerts, "files/alerts.yaml ships no alerts"
    assert shipped_alerts | {"JfintechCustom"} <= alerts


# --------------------------------------------------------------------------------------------
# process topology
# --------------------------------------------------------------------------------------------
def test_beat_is_single_replica_with_recreate(docs: list[dict[str, Any]]) -> None:
    beat = one(docs, "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(beat)["containers"]
    assert container["args"] == [
        "celery",
        "-A",
        "config",
        "beat",
        "--scheduler",
        "django_celery_beat.schedulers:DatabaseScheduler",
    ]
    # Nothing may scale beat.
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] != beat["metadata"]["name"]


def test_beat_replicas_cannot_be_configured() -> None:
    with pytest.raises(helm.HelmValuesError):
        render({"beat": {"replicas": 2}})


def test_one_worker_deployment_per_queue(docs: list[dict[str, Any]]) -> None:
    deps = workers(docs)
    assert set(deps) == set(QUEUES)
    for queue, dep in deps.items():
        (container,) = pod_spec(dep)["containers"]
        cmd = container["args"]
        assert "command" not in container  # the image's ENTRYPOINT (tini) stays PID 1
        assert cmd[:4] == ["celery", "-A", "config", "worker"]
        assert arg_after(cmd, "-Q") == queue
        assert arg_after(cmd, "-n") == f"{queue}@%h"
        assert int(arg_after(cmd, "--concurrency")) >= 1
        assert "--without-gossip" in cmd
        assert "--without-mingle" in cmd
        assert env_var(container, "WORKER_METRICS_PORT")["value"] == "9808"
        assert {"name": "metrics", "containerPort": 9808, "protocol": "TCP"} in container["ports"]
        # acks_late tasks need time to finish on SIGTERM
        assert pod_spec(dep)["terminationGracePeriodSeconds"] >= 120 + 30
    names = [d["metadata"]["name"] for d in deps.values()]
    assert len(set(names)) == len(names)


def test_fetch_worker_uses_threads_pool(docs: list[dict[str, Any]]) -> None:
    (container,) = pod_spec(workers(docs)["fetch"])["containers"]
    cmd = container["args"]
    assert arg_after(cmd, "--pool") == "threads"
    assert int(arg_after(cmd, "--concurrency")) >= 3
    for queue, dep in workers(docs).items():
        if queue != "fetch":
            assert "--pool" not in pod_spec(dep)["containers"][0]["args"]


def test_worker_overrides_and_validation() -> None:
    docs = render(
        {
            "workerDefaults": {"drainSeconds": 270},
            "workers": [
                {"queue": "default", "concurrency": 4, "replicas": 0},
                {"queue": "fetch", "concurrency": 16, "pool": "threads"},
            ],
        }
    )
    deps = workers(docs)
    assert set(deps) == {"default", "fetch"}
    assert deps["default"]["spec"]["replicas"] == 0
    assert pod_spec(deps["fetch"])["terminationGracePeriodSeconds"] == 270 + 30
    with pytest.raises(helm.HelmError, match="duplicate worker name"):
        render({"workers": [{"queue": "a", "concurrency": 1}, {"queue": "a", "concurrency": 1}]})
    with pytest.raises(helm.HelmValuesError):
        render({"workers": [{"queue": "fetch", "concurrency": 0}]})
    # The grace period is derived (drainSeconds): setting it by hand is refused.
    with pytest.raises(helm.HelmValuesError):
        render({"workerDefaults": {"terminationGracePeriodSeconds": 30}})


def test_web_deployment_service_and_probes(docs: list[dict[str, Any]]) -> None:
    web = one(docs, "Deployment", "web")
    (container,) = pod_spec(web)["containers"]
    assert container["args"] == ["gunicorn", "config.wsgi", "-c", "config/gunicorn.conf.py"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}

    def probe_target(probe: dict[str, Any]) -> tuple[str, int]:
        port = probe["httpGet"]["port"]
        return probe["httpGet"]["path"], ports[port] if isinstance(port, str) else port

    assert probe_target(container["livenessProbe"]) == ("/livez", 8000)
    assert probe_target(container["readinessProbe"]) == ("/readyz", 8000)

    svc = one(docs, "Service", "web")
    assert svc["spec"]["type"] == "ClusterIP"
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == 8000
    assert svc_port["targetPort"] == "http"
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()

    pdb = one(docs, "PodDisruptionBudget", "web")
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]


def test_workers_have_liveness_probes(docs: list[dict[str, Any]]) -> None:
    for dep in workers(docs).values():
        (container,) = pod_spec(dep)["containers"]
        assert container["livenessProbe"]["tcpSocket"]["port"] == "metrics"


def test_hpa_takes_over_web_replicas(full_docs: list[dict[str, Any]]) -> None:
    web = one(full_docs, "Deployment", "web")
    assert "replicas" not in web["spec"]
    (hpa,) = by_kind(full_docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": web["metadata"]["name"],
    }
    (ingress,) = by_kind(full_docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one(full_docs, "Service", "web")["metadata"]["name"]


# --------------------------------------------------------------------------------------------
# migrations and database roles
# --------------------------------------------------------------------------------------------
def test_migration_job_is_pre_install_upgrade_hook(docs: list[dict[str, Any]]) -> None:
    (job,) = by_kind(docs, "Job")
    hooks, policy, weight = hook_annotations(job)
    assert hooks == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in policy
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["python", "manage.py", "migrate", "--noinput"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # Everything the Job uses must exist before it runs: release resources (ConfigMap, regular
    # Secret, ServiceAccount) are not installed yet when pre-install hooks run.
    assert "envFrom" not in container or all("configMapRef" not in src for src in container["envFrom"])
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    sa_name = pod_spec(job)["serviceAccountName"]
    if ("ServiceAccount", sa_name) in by_name:
        sa_hooks, _, sa_weight = hook_annotations(by_name[("ServiceAccount", sa_name)])
        assert {"pre-install", "pre-upgrade"} <= sa_hooks
        assert sa_weight < weight
    secret_name = secret_ref(container, "DATABASE_URL")["name"]
    if ("Secret", secret_name) in by_name:
        s_hooks, _, s_weight = hook_annotations(by_name[("Secret", secret_name)])
        assert {"pre-install", "pre-upgrade"} <= s_hooks
        assert s_weight < weight


def test_migrations_use_owner_role_and_app_uses_runtime_role(
    docs: list[dict[str, Any]],
) -> None:
    (job,) = by_kind(docs, "Job")
    (migrate,) = pod_spec(job)["containers"]
    assert secret_ref(migrate, "DATABASE_URL")["key"] == "DATABASE_OWNER_URL"
    assert env_var(migrate, "DJANGO_SETTINGS_MODULE")["value"] == "config.settings.production"

    web = one(docs, "Deployment", "web")
    assert secret_ref(pod_spec(web)["containers"][0], "DATABASE_URL")["key"] == "DATABASE_URL"

    # No long-running process may see the owner credentials.
    for dep in by_kind(docs, "Deployment"):
        for container in containers(dep):
            assert secret_ref(container, "DATABASE_URL")["key"] == "DATABASE_URL"
            keys = {
                e["valueFrom"]["secretKeyRef"]["key"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            assert keys == {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AUDIT_HMAC_KEY"}


def test_existing_secret_name_is_used_everywhere() -> None:
    docs = render({"existingSecret": "jfintech-prod"})
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for d in docs
        if d["kind"] in WORKLOAD_KINDS
        for c in containers(d)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert refs
    assert {r["name"] for r in refs} == {"jfintech-prod"}
    assert {r["key"] for r in refs} == set(SECRET_KEYS)
    assert not by_kind(docs, "Secret")


def test_dev_secret(full_docs: list[dict[str, Any]]) -> None:
    secrets = {s["metadata"]["name"]: s for s in by_kind(full_docs, "Secret")}
    web = one(full_docs, "Deployment", "web")
    runtime = secrets[secret_ref(pod_spec(web)["containers"][0], "DATABASE_URL")["name"]]
    assert "helm.sh/hook" not in runtime["metadata"].get("annotations", {})
    assert "DATABASE_OWNER_URL" not in runtime["stringData"]
    (job,) = by_kind(full_docs, "Job")
    hook_secret = secrets[secret_ref(pod_spec(job)["containers"][0], "DATABASE_URL")["name"]]
    assert set(hook_secret["stringData"]) == set(SECRET_KEYS)
    # secret.create rolls pods when the secret values change
    assert "checksum/secret" in web["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"existingSecret": "x", "secret": {"create": True}}, "not both"),
        ({"secret": {"create": True}}, "secret.values.SECRET_KEY is required"),
    ],
)
def test_secret_misconfiguration_fails(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


# --------------------------------------------------------------------------------------------
# security, resources, config
# --------------------------------------------------------------------------------------------
def test_pods_and_containers_are_locked_down(docs: list[dict[str, Any]]) -> None:
    workloads = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    assert len(workloads) == 2 + len(QUEUES) + 1
    for doc in workloads:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["serviceAccountName"], name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in containers(doc):
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert "ALL" in sc["capabilities"]["drop"], name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            for path in ("/tmp", "/tmp/prometheus"):
                assert path in mounts, f"{name}: {path} not mounted"
                assert "emptyDir" in volumes[mounts[path]], f"{name}: {path} is not an emptyDir"


def test_every_container_has_resource_limits(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for container in containers(doc):
            resources = container.get("resources", {})
            where = f"{doc['metadata']['name']}/{container['name']}"
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where


def test_missing_limits_are_rejected() -> None:
    with pytest.raises(helm.HelmValuesError):
        render({"beat": {"resources": {"requests": {"cpu": "10m"}, "limits": None}}})


def test_service_accounts_do_not_automount_tokens(docs: list[dict[str, Any]]) -> None:
    accounts = by_kind(docs, "ServiceAccount")
    assert accounts
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts)


def test_configmap_content_and_env_wiring(docs: list[dict[str, Any]]) -> None:
    (cm,) = by_kind(docs, "ConfigMap")
    data = cm["data"]
    assert data["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert data["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"
    for key in (
        "ALLOWED_HOSTS",
        "LOG_LEVEL",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ):
        assert key in data
    assert all(isinstance(v, str) for v in data.values())
    assert not set(SECRET_KEYS) & set(data), "secrets leaked into the ConfigMap"
    for dep in by_kind(docs, "Deployment"):
        for container in containers(dep):
            sources = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
            assert cm["metadata"]["name"] in sources
        assert "checksum/config" in dep["spec"]["template"]["metadata"]["annotations"]


def test_allowed_hosts_include_ingress_hosts(full_docs: list[dict[str, Any]]) -> None:
    (cm,) = by_kind(full_docs, "ConfigMap")
    hosts = cm["data"]["ALLOWED_HOSTS"].split(",")
    assert "api.jfintech.example" in hosts
    assert "jfintech.bank.example" in hosts
    assert cm["data"]["MAX_ROWS"] == "5000"


def test_config_change_rolls_pods(default_docs: list[dict[str, Any]]) -> None:
    changed = render({"config": {"logLevel": "DEBUG"}})

    def checksums(docs: list[dict[str, Any]]) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in by_kind(docs, "Deployment")
        }

    before, after = checksums(default_docs), checksums(changed)
    assert before.keys() == after.keys()
    assert all(before[name] != after[name] for name in before)


def test_standard_labels(docs: list[dict[str, Any]]) -> None:
    required = (
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
    )
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        for key in required:
            assert key in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks {key}"
    selectors = []
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        pod_labels = doc["spec"]["template"]["metadata"]["labels"]
        assert "app.kubernetes.io/component" in pod_labels
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels.items()
            selectors.append(tuple(sorted(selector.items())))
    assert len(set(selectors)) == len(selectors), "two Deployments share a selector"


def test_every_container_gets_its_pod_ip_for_allowed_hosts(docs: list[dict[str, Any]]) -> None:
    # Probes and scrapes use the pod IP as Host; without POD_IP, Django answers them 400.
    for kind in ("Deployment", "Job"):
        for doc in by_kind(docs, kind):
            for container in containers(doc):
                assert env_var(container, "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


# --------------------------------------------------------------------------------------------
# the image's init, draining, probes
# --------------------------------------------------------------------------------------------
def test_no_container_overrides_the_image_entrypoint(docs: list[dict[str, Any]]) -> None:
    # `command` would replace the ENTRYPOINT (tini): Celery would be PID 1, and a PID 1 gets no
    # default signal handling from the kernel. The Dockerfile test checks the ENTRYPOINT.
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            for container in containers(doc):
                assert "command" not in container, doc["metadata"]["name"]
                assert container["args"]


def _celery_settings_from_args(args: list[str]) -> dict[str, Any]:
    """The settings a worker command passes after its options, parsed as `celery worker` does
    (celery.bin.worker: app.config_from_cmdline(ctx.args, namespace='worker'))."""
    from celery import Celery

    extra = [a for a in args if "=" in a and not a.startswith("-")]
    app = Celery("probe", set_as_current=False)
    app.config_from_cmdline(extra, namespace="worker")
    return {"worker_soft_shutdown_timeout": app.conf.worker_soft_shutdown_timeout}


def test_worker_drain_is_derived_from_the_task_time_limits(docs: list[dict[str, Any]]) -> None:
    (cm,) = by_kind(docs, "ConfigMap")
    hard = int(cm["data"]["CELERY_TASK_TIME_LIMIT"])
    assert (
        int(cm["data"]["CELERY_TASK_SOFT_TIME_LIMIT"]) < hard < int(cm["data"]["CELERY_VISIBILITY_TIMEOUT"])
    )
    for queue, dep in workers(docs).items():
        (container,) = pod_spec(dep)["containers"]
        grace = pod_spec(dep)["terminationGracePeriodSeconds"]
        remap = [e for e in container["env"] if e["name"] == "REMAP_SIGTERM"]
        if "--pool" in container["args"]:  # threads: cannot cancel a task, warm shutdown
            assert queue == "fetch"
            assert not remap
            assert not any(a.startswith("worker_soft_shutdown_timeout") for a in container["args"])
            continue
        assert remap == [{"name": "REMAP_SIGTERM", "value": "SIGQUIT"}]
        soft = _celery_settings_from_args(container["args"])["worker_soft_shutdown_timeout"]
        assert 0 < soft <= hard  # no task runs longer than the hard limit: no point waiting more
        assert grace == soft + 30  # the cold shutdown's margin before the kubelet's SIGKILL
    assert pod_spec(workers(docs)["reconciliation"])["terminationGracePeriodSeconds"] == 300 + 30


def test_drain_is_capped_by_the_hard_time_limit() -> None:
    docs = render(
        {
            "config": {"celery": {"visibilityTimeout": 600, "taskTimeLimit": 90, "taskSoftTimeLimit": 60}},
            "workerDefaults": {"drainSeconds": 500},
        }
    )
    (cm,) = by_kind(docs, "ConfigMap")
    assert cm["data"]["CELERY_TASK_TIME_LIMIT"] == "90"
    container = pod_spec(workers(docs)["default"])["containers"][0]
    assert _celery_settings_from_args(container["args"])["worker_soft_shutdown_timeout"] == 90
    assert pod_spec(workers(docs)["default"])["terminationGracePeriodSeconds"] == 120


@pytest.mark.parametrize(
    ("celery", "message"),
    [
        ({"taskTimeLimit": 3600, "visibilityTimeout": 3600}, "below visibilityTimeout"),
        ({"taskSoftTimeLimit": 3300}, "taskSoftTimeLimit must be below taskTimeLimit"),
    ],
)
def test_inconsistent_time_limits_fail(celery: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render({"config": {"celery": celery}})
    with pytest.raises(helm.HelmError, match=r"through config\.celery"):
        render({"config": {"extraEnv": {"CELERY_KEY_PREFIX": "x:"}}})


def test_worker_probes_read_the_metrics_port(docs: list[dict[str, Any]]) -> None:
    # The worker opens that port once connected to the broker (worker_ready): readiness.
    for dep in workers(docs).values():
        (container,) = pod_spec(dep)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == int(env_var(container, "WORKER_METRICS_PORT")["value"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["tcpSocket"]["port"] == "metrics", probe
        assert "initialDelaySeconds" not in container["livenessProbe"]  # the startup probe gates it


def test_beat_liveness_runs_the_heartbeat_check(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    beat = one(docs, "Deployment", "beat")
    (container,) = pod_spec(beat)["containers"]
    heartbeat = env_var(container, "BEAT_HEARTBEAT_FILE")["value"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert heartbeat.startswith("/tmp/")  # writable on a read-only root filesystem
    assert "/tmp" in mounts
    assert container["startupProbe"]["exec"] == container["livenessProbe"]["exec"]
    command = container["livenessProbe"]["exec"]["command"]
    assert command[:3] == ["python", "-m", "jfintech.observability.heartbeat"]
    assert command[3] == heartbeat

    # Run the probe's own command (the image's python is this one) on a fresh and a stale file.
    local = tmp_path / "beat-heartbeat"
    run = [sys.executable, *command[1:3], str(local), *command[4:]]
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run(run, cwd=root, capture_output=True, check=False).returncode == 1
    local.touch()
    assert subprocess.run(run, cwd=root, capture_output=True, check=False).returncode == 0
    os.utime(local, (0, 0))
    assert subprocess.run(run, cwd=root, capture_output=True, check=False).returncode == 1


# --------------------------------------------------------------------------------------------
# disruption and placement
# --------------------------------------------------------------------------------------------
def _selects(selector: dict[str, str], doc: dict[str, Any]) -> bool:
    return selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items()


def test_every_worker_deployment_has_its_own_pdb(docs: list[dict[str, Any]]) -> None:
    pdbs = by_kind(docs, "PodDisruptionBudget")
    deployments = by_kind(docs, "Deployment")
    for dep in workers(docs).values():
        mine = [p for p in pdbs if _selects(p["spec"]["selector"]["matchLabels"], dep)]
        assert len(mine) == 1, dep["metadata"]["name"]
        (pdb,) = mine
        assert pdb["spec"]["maxUnavailable"] == 1
        # It selects this Deployment's pods only, not another queue's.
        assert [d for d in deployments if _selects(pdb["spec"]["selector"]["matchLabels"], d)] == [dep]


def test_workers_beat_and_web_spread_over_zones_and_nodes(docs: list[dict[str, Any]]) -> None:
    spread = [*workers(docs).values(), one(docs, "Deployment", "beat"), one(docs, "Deployment", "web")]
    for dep in spread:
        constraints = pod_spec(dep)["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for c in constraints:
            assert c["whenUnsatisfiable"] == "ScheduleAnyway"
            # each Deployment spreads its own pods (a worker's, not every worker's)
            assert c["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


# --------------------------------------------------------------------------------------------
# scaling on queue depth (KEDA)
# --------------------------------------------------------------------------------------------
def test_a_scaled_object_per_worker_queue(production_docs: list[dict[str, Any]]) -> None:
    objects = {s["metadata"]["labels"]["jfintech/queue"]: s for s in by_kind(production_docs, "ScaledObject")}
    assert set(objects) == set(QUEUES)
    deps = workers(production_docs)
    prefix = PRODUCTION_VALUES["config"]["celery"]["keyPrefix"]
    (cm,) = by_kind(production_docs, "ConfigMap")
    assert cm["data"]["CELERY_KEY_PREFIX"] == prefix
    (auth,) = by_kind(production_docs, "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "jfintech-secrets", "key": "REDIS_PASSWORD"}
    ]
    for queue, so in objects.items():
        dep = deps[queue]
        assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": dep["metadata"]["name"]}  # fmt: skip
        assert "replicas" not in dep["spec"]  # KEDA's HPA owns it; an upgrade must not reset it
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "redis"
        meta = trigger["metadata"]
        # Celery's redis transport: the queue's list is the queue name behind global_keyprefix.
        assert meta["listName"] == f"{prefix}{queue}"
        assert meta["address"] == "redis-master.data:6379"
        assert meta["databaseIndex"] == "0"
        assert all(isinstance(v, str) for v in meta.values())  # KEDA metadata is map[string]string
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
        assert so["spec"]["cooldownPeriod"] == 300
        assert so["spec"]["maxReplicaCount"] >= so["spec"]["minReplicaCount"]
    # Scale to zero only where allowed (critical: false).
    assert objects["fetch"]["spec"]["minReplicaCount"] == 0
    assert objects["ingest"]["spec"]["minReplicaCount"] == 0
    assert objects["default"]["spec"]["minReplicaCount"] == 1
    assert objects["reconciliation"]["spec"]["minReplicaCount"] == 1
    assert objects["reconciliation"]["spec"]["triggers"][0]["metadata"]["listLength"] == "2"


def test_no_deployment_has_both_an_hpa_and_a_scaled_object(docs: list[dict[str, Any]]) -> None:
    targets = [d["spec"]["scaleTargetRef"]["name"] for d in by_kind(docs, "HorizontalPodAutoscaler")]
    targets += [d["spec"]["scaleTargetRef"]["name"] for d in by_kind(docs, "ScaledObject")]
    assert len(targets) == len(set(targets))
    beat = one(docs, "Deployment", "beat")["metadata"]["name"]
    assert beat not in targets


def test_web_keeps_its_cpu_hpa(production_docs: list[dict[str, Any]]) -> None:
    (hpa,) = by_kind(production_docs, "HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == one(production_docs, "Deployment", "web")["metadata"]["name"]
    )
    assert {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
            "averageUtilization": 70}}} in hpa["spec"]["metrics"]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workerDefaults": {"autoscaling": {"enabled": True, "minReplicas": 0}},
          "keda": {"redis": {"address": "redis:6379"}}}, "refused for a critical queue"),
        ({"workerDefaults": {"autoscaling": {"enabled": True}}}, "keda.redis.address"),
    ],
)  # fmt: skip
def test_autoscaling_misconfiguration_fails(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_keda_without_a_password_needs_no_trigger_authentication() -> None:
    docs = render(
        {"workerDefaults": {"autoscaling": {"enabled": True}}, "keda": {"redis": {"address": "r:6379"}}}
    )
    assert len(by_kind(docs, "ScaledObject")) == len(QUEUES)
    assert not by_kind(docs, "TriggerAuthentication")
    assert all("authenticationRef" not in s["spec"]["triggers"][0] for s in by_kind(docs, "ScaledObject"))
    assert by_kind(docs, "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]["listName"] in QUEUES


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------
def _policies_for(docs: list[dict[str, Any]], workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for p in by_kind(docs, "NetworkPolicy")
        if _selects(p["spec"]["podSelector"]["matchLabels"], workload)
    ]


def _egress_ports(policies: list[dict[str, Any]]) -> set[int]:
    return {
        p["port"] for pol in policies for rule in pol["spec"].get("egress", []) for p in rule.get("ports", [])
    }


def test_network_policies_default_deny_and_allow_per_role(production_docs: list[dict[str, Any]]) -> None:
    docs = production_docs
    (deny,) = [p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"].endswith("-default-deny")]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    np = PRODUCTION_VALUES["networkPolicy"]
    for workload in (d for d in docs if d["kind"] in WORKLOAD_KINDS):
        name = workload["metadata"]["name"]
        assert _selects(deny["spec"]["podSelector"]["matchLabels"], workload), name
        policies = _policies_for(docs, workload)
        role = [p for p in policies if p is not deny]
        assert role, f"{name}: no role policy"
        ports = _egress_ports(role)
        component = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        expected = {53, 5432, 4318} | ({6379} if component != "migrations" else set())
        if name.endswith("-worker-fetch"):
            expected |= {443}  # its extraEgress: the bank APIs
        assert ports == expected, name
        # every egress rule names its peers: no rule open to everything
        assert all(rule.get("to") for pol in role for rule in pol["spec"].get("egress", [])), name
        ingress = [r for pol in role for r in pol["spec"].get("ingress", [])]
        if component == "web":
            (rule,) = ingress
            assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
            assert rule["from"] == np["ingressController"]["from"] + np["scraper"]["from"]
        elif component in ("worker", "beat"):
            (rule,) = ingress
            assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
            assert rule["from"] == np["scraper"]["from"]
        else:
            assert ingress == []
    # Postgres and Redis peers come from values.
    web_rules = [
        r for p in _policies_for(docs, one(docs, "Deployment", "web")) for r in p["spec"].get("egress", [])
    ]
    assert {"to": np["postgresql"]["to"], "ports": [{"port": 5432, "protocol": "TCP"}]} in web_rules
    assert {"to": np["redis"]["to"], "ports": [{"port": 6379, "protocol": "TCP"}]} in web_rules


def test_migration_network_policy_exists_before_the_job(production_docs: list[dict[str, Any]]) -> None:
    (job,) = by_kind(production_docs, "Job")
    (policy,) = [
        p for p in _policies_for(production_docs, job) if "migrations" in p["metadata"]["labels"].values()
    ]
    hooks, _, weight = hook_annotations(policy)
    assert hooks == {"pre-install", "pre-upgrade"}
    assert weight < hook_annotations(job)[2]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"postgresql": {"to": []}}, "networkPolicy.postgresql.to"),
        ({"redis": {"to": []}}, "networkPolicy.redis.to"),
        ({"otlp": {"to": []}}, "networkPolicy.otlp.to"),
        ({"ingressController": {"from": []}}, "networkPolicy.ingressController.from"),
        ({"scraper": {"from": []}}, "networkPolicy.scraper.from"),
    ],
)
def test_network_policy_without_peers_fails(override: dict[str, Any], message: str) -> None:
    values = copy.deepcopy(PRODUCTION_VALUES)
    for key, value in override.items():
        values["networkPolicy"][key].update(value)
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_no_object_is_rendered_twice(default_docs, production_docs) -> None:
    for label, docs in (("default", default_docs), ("production", production_docs)):
        names = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
        assert len(names) == len(set(names)), f"{label}: duplicate objects"
