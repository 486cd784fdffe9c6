"""The chart's custom resources (KEDA, Prometheus Operator) against their CRDs' OpenAPI schemas.

kubernetes-validate knows only built-in kinds, so these are checked here: each rendered object
is validated with jsonschema against the ``openAPIV3Schema`` of its CRD's served version. The CRD
files are vendored in helm/tests/crds (provenance in its README.md); helm/tests/crds.json pins each
by SHA-256, so a changed or missing copy fails the suite instead of validating against nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_chart import FULL_VALUES, PRODUCTION_VALUES, render

REPO = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((Path(__file__).parent / "crds.json").read_text())
CRD_GROUPS = {"keda.sh", "monitoring.coreos.com"}


def crd_dir() -> Path:
    return Path(__file__).parent / "crds"


def _structural(schema: Any) -> Any:
    """A Kubernetes structural schema as JSON Schema: int-or-string and nullable made explicit,
    RE2 inline flags moved where Python accepts them, and unknown fields refused where the API
    server would prune them (no preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [_structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _structural(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if isinstance(out.get("pattern"), str) and out["pattern"].startswith("^(?i)"):
        # Go's RE2 takes inline flags anywhere; Python's re only at the start.
        out["pattern"] = "(?i)^" + out["pattern"][len("^(?i)") :]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON schema, from the pinned CRD files."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in MANIFEST["crds"]:
        path = crd_dir() / entry["path"]
        assert path.is_file(), f"{path} missing (see helm/tests/crds/README.md)"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{path} differs from crds.json"
        crd = yaml.safe_load(data)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _structural(version["schema"]["openAPIV3Schema"])
                found[(f"{group}/{version['name']}", kind)] = schema
    return found


def custom_resources(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["apiVersion"].split("/")[0] in CRD_GROUPS]


def validate(doc: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    assert key in schemas, f"no CRD schema for {key}"
    jsonschema.validate(doc, schemas[key], cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("values", [FULL_VALUES, PRODUCTION_VALUES], ids=["full", "production"])
def test_custom_resources_match_their_crd_schema(values, schemas) -> None:
    docs = custom_resources(render(values))
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"} <= kinds
    for doc in docs:
        try:
            validate(doc, schemas)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")


def test_trigger_authentication_matches_its_crd_schema(schemas) -> None:
    (auth,) = [d for d in render(PRODUCTION_VALUES) if d["kind"] == "TriggerAuthentication"]
    validate(auth, schemas)


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        # a typo of a field name, a wrong type, a wrong trigger shape
        ("ScaledObject", lambda s: s.__setitem__("minReplicas", 1)),
        ("ScaledObject", lambda s: s.__setitem__("maxReplicaCount", "ten")),
        ("ScaledObject", lambda s: s["triggers"][0].__setitem__("metadata", {"listLength": 5})),
        ("ServiceMonitor", lambda s: s["endpoints"][0].__setitem__("intervall", "30s")),
        ("PodMonitor", lambda s: s.__setitem__("podMetricsEndpoint", [])),
        ("PrometheusRule", lambda s: s["groups"][0]["rules"][0].__setitem__("expr", ["up"])),
    ],
)
def test_crd_validation_is_not_vacuous(kind, mutate, schemas) -> None:
    doc = copy.deepcopy(next(d for d in render(PRODUCTION_VALUES) if d["kind"] == kind))
    validate(doc, schemas)
    mutate(doc["spec"])
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, schemas)
