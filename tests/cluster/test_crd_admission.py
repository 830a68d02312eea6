"""The CRD (crds/inferenceservice.yaml, installed by the chart with its admission policy) and infadapter/spec.py
accept and refuse the same documents — on a real kube-apiserver (server-side dry run, strict field validation),
so structural-schema rules, CEL compilation, list-map keys, pruning and defaulting are Kubernetes' own."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from infadapter.errors import InvalidSpec
from infadapter.spec import parse_resource
from tests.cluster.kube import GROUP, PLURAL, VERSION, Admin, service_body

ROOT = Path(__file__).resolve().parents[2]
#: every example that declares an InferenceService (profiles and other files live beside them)
EXAMPLES = sorted(
    p for p in [*(ROOT / "examples").glob("*.yaml"), ROOT / "e2e" / "inferenceservice.yaml"] if "kind: InferenceService" in p.read_text(encoding="utf-8")
)


def service(name: str = "demo") -> dict[str, Any]:
    return service_body(name)


@pytest.fixture(scope="module")
def validator(admin: Admin, release: dict[str, Any]) -> Admin:
    return admin


def server_errors(admin: Admin, doc: dict[str, Any]) -> list[str]:
    """What the apiserver says to a create of ``doc`` (dry run): [] when it accepts it."""
    try:
        namespace = doc["metadata"].get("namespace", "default")
        if namespace not in {n.metadata.name for n in admin.core.list_namespace().items}:
            admin.core.create_namespace({"metadata": {"name": namespace}})
        admin.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy.deepcopy(doc), dry_run="All", field_validation="Strict")
    except ApiException as exc:
        return [str(exc.body)]
    return []


def with_spec(**changes: Any) -> dict[str, Any]:
    body = service()
    spec = body["spec"]
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is DELETE:
            del node[keys[-1]]
        elif isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
    return body


DELETE = object()
T4 = {"name": "t4", "count": 2, "price": 0.35, "resource": "nvidia.com/gpu", "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}}

VALID = {
    "minimal": {
        "apiVersion": "infadapter.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": {"variants": [{"name": "a", "accuracy": 0.5}]},
    },
    "defaults-written-out": service(),
    "millicores": with_spec(resources__minCpu="500m", resources__maxCpu="2", resources__cpuStep="500m", budget__cpu="7500m"),
    "fractional-cores": with_spec(resources__minCpu=0.5, budget__cpu=2.5),
    "gpu": with_spec(budget__gpu=2, resources__gpusPerReplica=[1, 2]),
    "gateway": with_spec(routing={"kind": "GatewayAPI", "gatewayRef": "gw.infra"}),
    "null-gateway": with_spec(routing={"kind": "Envoy", "gatewayRef": None}),
    "recreate": with_spec(adaptation__resizePolicy="Recreate", mode="Recommend"),
    "per-variant": with_spec(variants__0__resources={"minCpu": 1, "maxCpu": "3", "maxReplicas": 3, "minReplicas": 1, "memory": "1Gi"}),
    "s3": with_spec(variants__1__source={"uri": "s3://bucket/models/large", "format": "onnx"}),
    "batch-sizes": with_spec(variants__1__batchSizes=[4, 8], variants__1__accelerators=["t4"], accelerators=[T4]),
    "accelerator-types": with_spec(variants__1__accelerators=["t4"], accelerators=[T4, {"name": "a100", "count": 1, "price": 2.9}], budget__cpuPrice=0.04),
}

INVALID = {
    "accuracy-above-1": (with_spec(variants__0__accuracy=1.5), "variants[0].accuracy", "variants[0].accuracy"),
    "unknown-mode": (with_spec(mode="Sometimes"), "mode", "spec.mode"),
    "no-variants": (with_spec(variants=DELETE), "variants", "variants"),
    "empty-variants": (with_spec(variants=[]), "variants", "variants"),
    "bad-variant-name": (with_spec(variants__0__name="ResNet_50"), "variants[0].name", "variants[0].name"),
    "duplicate-variant": (with_spec(variants__1__name="small"), "spec", "variants[1]"),
    "zero-latency": (with_spec(slo__latencyMs=0), "slo.latencyMs", "slo.latencyMs"),
    "percentile-100": (with_spec(slo__percentile=100), "slo.percentile", "slo.percentile"),
    "unknown-forecaster": (with_spec(forecast__model="prophet"), "forecast.model", "forecast.model"),
    "quantile-1": (with_spec(forecast__quantile=1.0), "forecast.quantile", "forecast.quantile"),
    "short-window": (with_spec(forecast__windowSeconds=5), "forecast.windowSeconds", "forecast.windowSeconds"),
    "negative-budget": (with_spec(budget__cpu=-1), "budget.cpu", "budget.cpu"),
    "budget-not-a-quantity": (with_spec(budget__cpu="lots"), "budget.cpu", "budget.cpu"),
    "min-above-max": (with_spec(resources__minCpu=5, resources__maxCpu=2), "resources", "resources"),
    "unknown-field": (with_spec(replicas=3), "spec", "replicas"),
    "typo-in-nested-field": (with_spec(slo__latencyMS=100), "slo", "latencyMS"),
    "bad-resize-policy": (with_spec(adaptation__resizePolicy="Sometimes"), "adaptation.resizePolicy", "adaptation.resizePolicy"),
    "bad-routing": (with_spec(routing={"kind": "Istio"}), "routing.kind", "routing.kind"),
    "negative-min-replicas": (with_spec(variants__0__resources={"minReplicas": -1}), "minReplicas", "minReplicas"),
    "unknown-format": (with_spec(variants__0__source={"format": "pickle"}), "source.format", "source.format"),
    "empty-model-name": (with_spec(modelName=""), "modelName", "modelName"),
    "slow-load": (with_spec(variants__0__loadTimeSeconds=4000), "loadTimeSeconds", "loadTimeSeconds"),
    "zero-gpus-per-replica": (with_spec(resources__gpusPerReplica=[0]), "gpusPerReplica", "gpusPerReplica"),
    "sub-second-interval": (with_spec(adaptation__intervalSeconds=0.5), "adaptation.intervalSeconds", "adaptation.intervalSeconds"),
    "accuracy-as-text": (with_spec(variants__0__accuracy="high"), "variants[0].accuracy", "variants[0].accuracy"),
    "undeclared-accelerator": (with_spec(variants__0__accelerators=["v100"], accelerators=[T4]), "spec", "does not declare"),
    "reserved-accelerator": (with_spec(accelerators=[{"name": "gpu", "count": 1, "price": 1}]), "spec", "reserved"),
    "duplicate-accelerator": (with_spec(accelerators=[T4, T4]), "spec", "accelerators[1]"),
    "free-accelerator": (with_spec(accelerators=[T4 | {"price": 0}]), "accelerators[0].price", "accelerators[0].price"),
    "accelerator-name-clash": (with_spec(variants__1__name="small-t4", accelerators=[T4]), "spec", "rename it"),
    "batch-name-clash": (with_spec(variants__0__batchSizes=[4], variants__1__name="small-b4"), "spec", "rename it"),
    "typed-batch-name-clash": (with_spec(variants__0__batchSizes=[4], variants__1__name="small-t4-b4", accelerators=[T4]), "spec", "rename it"),
    "duplicate-batch-size": (with_spec(variants__0__batchSizes=[4, 4]), "batchSizes", "batchSizes[1]"),
    "zero-batch-size": (with_spec(variants__0__batchSizes=[0]), "batchSizes", "batchSizes[0]"),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_documents_pass_both_the_crd_and_the_spec(validator, name):
    doc = VALID[name]
    assert server_errors(validator, doc) == []
    parse_resource(copy.deepcopy(doc))


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_documents_are_refused_by_both_naming_the_field(validator, name):
    doc, spec_path, crd_path = INVALID[name]
    errors = server_errors(validator, doc)
    assert errors, f"the apiserver accepted {name}"
    assert any(crd_path in e for e in errors), errors
    with pytest.raises(InvalidSpec) as refused:
        parse_resource(copy.deepcopy(doc))
    assert any(spec_path in e.path for e in refused.value.errors), refused.value.errors


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates_against_the_crd(validator, path):
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict) and d.get("kind") == "InferenceService"]
    assert docs, f"{path.name} holds no InferenceService"
    for doc in docs:
        assert server_errors(validator, doc) == [], path.name
        parse_resource(doc)
