"""Kubernetes objects for one InferenceService, built from its spec and a :class:`Plan` (pure functions).

Per service ``S`` (all labelled ``app.kubernetes.io/managed-by: infadapter`` and ``infadapter.io/service: S``,
all owned by the custom resource through a controller ``ownerReference``, so deleting it removes them):

* ``S-<variant>``: a Triton ``Deployment`` (requests = limits from the plan, ``nvidia.com/gpu`` when the
  plan gives GPUs, readiness on ``/v2/health/ready``, rolling update with ``maxUnavailable: 0`` =
  make-before-break, ``resizePolicy`` NotRequired so CPU changes in place) and a ``Service``;
  variants outside the plan keep their Deployment at 0 replicas, so the router config never changes;
* ``S-router``: an Envoy ``Deployment`` + ``Service`` + ``ConfigMap`` (bootstrap from
  :func:`infadapter.runtime.envoy.envoy_config`, with one STRICT_DNS cluster per variant Service),
  and ``S-router-weights``, a ``ConfigMap`` of integer weights per variant: a sidecar posts them to
  Envoy's admin ``/runtime_modify`` on 127.0.0.1 whenever the mounted file changes — weights change
  live, no pod restart, and the admin interface is never reachable from outside the pod;
* with ``routing.kind: GatewayAPI``, an ``HTTPRoute`` with weighted ``backendRefs`` instead of the router.

Triton runs with ``--model-control-mode=none`` (no load/unload API) and only its HTTP and metrics ports
are published; every pod runs non-root with a read-only root filesystem and no capabilities.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from infadapter.planning import Plan
from infadapter.runtime.envoy import integer_weights
from infadapter.spec import InferenceServiceSpec, Variant

Obj = dict[str, Any]

GROUP = "infadapter.io"
VERSION = "v1alpha1"
PLURAL = "inferenceservices"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "infadapter"
LABEL_SERVICE = "infadapter.io/service"
LABEL_VARIANT = "infadapter.io/variant"
LABEL_COMPONENT = "infadapter.io/component"
ANNOTATION_PAUSED = "infadapter.io/paused"
ANNOTATION_PROFILE = "infadapter.io/profile"
ANNOTATION_CPU = "infadapter.io/cpu-cores"

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
ROUTER_PORT, ROUTER_METRICS_PORT, ENVOY_ADMIN_PORT = 8080, 9102, 9901
WEIGHTS_DIR = "/etc/envoy/weights"
DEFAULT_MEMORY = "2Gi"
ROUTER_FILTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns the objects."""

    name: str
    namespace: str
    uid: str
    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = "InferenceService"


@dataclass(frozen=True)
class Images:
    triton: str = "nvcr.io/nvidia/tritonserver:24.08-py3"
    envoy: str = "envoyproxy/envoy:v1.31.2"
    agent: str = "curlimages/curl:8.10.1"
    s3: str = "amazon/aws-cli:2.17.50"
    pull_policy: str = "IfNotPresent"


def object_name(service: str, suffix: str) -> str:
    """``service-suffix`` as a DNS label (<= 63 chars; long names keep a hash to stay unique)."""
    name = f"{service}-{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def labels(owner: Owner, component: str, variant: str | None = None) -> dict[str, str]:
    out = {MANAGED_BY: MANAGER, LABEL_SERVICE: owner.name, LABEL_COMPONENT: component, "app.kubernetes.io/name": "infadapter"}
    if variant is not None:
        out[LABEL_VARIANT] = variant
    return out


def selector(owner: Owner, component: str, variant: str | None = None) -> dict[str, str]:
    out = {LABEL_SERVICE: owner.name, LABEL_COMPONENT: component}
    if variant is not None:
        out[LABEL_VARIANT] = variant
    return out


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name, "uid": owner.uid, "controller": True, "blockOwnerDeletion": True}


def metadata(owner: Owner, name: str, component: str, variant: str | None = None, annotations: Mapping[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": owner.namespace, "labels": labels(owner, component, variant), "ownerReferences": [owner_reference(owner)]}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def is_owned(obj: Mapping[str, Any], owner: Owner) -> bool:
    """Ours: our label and a controller owner reference to this very resource (same uid)."""
    meta = obj.get("metadata", {})
    if meta.get("labels", {}).get(MANAGED_BY) != MANAGER:
        return False
    return any(ref.get("uid") == owner.uid and ref.get("controller") for ref in meta.get("ownerReferences", []))


def cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


_QUANTITY_SUFFIXES = {
    "": Decimal(1), "m": Decimal("0.001"), "u": Decimal("1e-6"), "n": Decimal("1e-9"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[munkMGTPE]))?$")


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as an exact number (``"2000m"`` and ``"2"`` are equal), None if it is not one.

    The API server stores quantities in canonical form, so what we wrote is not what we read back: every
    comparison of resources goes through this.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    if exponent:
        return Decimal(number + exponent)
    return Decimal(number) * _QUANTITY_SUFFIXES[suffix or ""]


def parse_cpu_quantity(value: Any) -> float:
    parsed = parse_quantity(value)
    if parsed is None:
        raise ValueError(f"{value!r} is not a CPU quantity")
    return float(parsed)


def variant_resources(variant: Variant, cpu_cores: float, gpus: int) -> Obj:
    amounts: dict[str, str] = {"cpu": cpu_quantity(cpu_cores), "memory": variant.resources.memory or DEFAULT_MEMORY}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def restricted_security() -> Obj:
    """Container security context: non-root, read-only root filesystem, no capabilities."""
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(user: int = 1000) -> Obj:
    return {"runAsNonRoot": True, "runAsUser": user, "runAsGroup": user, "fsGroup": user, "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class Repository:
    path: str
    volumes: list[Obj]
    mounts: list[Obj]
    inits: list[Obj]


def model_repository(spec: InferenceServiceSpec, variant: Variant, images: Images) -> Repository:
    """Volumes, Triton mounts and init containers serving ``spec.model_name`` from the variant's source.

    * ``pvc://claim/path``: ``path`` on the claim is a Triton model repository holding ``<modelName>/``;
    * ``http(s)://…/file``: one model file downloaded into ``/models/<modelName>/1/model.<format>``;
    * ``s3://bucket/prefix``: a repository copied with the AWS CLI (credentials from the optional
      Secret ``<service>-s3``, never written into the spec or the status);
    * anything else: a path inside the Triton image.
    """
    uri = variant.source.uri
    mounts: list[Obj] = [{"name": "models", "mountPath": "/models", "readOnly": True}]
    if uri.startswith("pvc://"):
        claim, _, sub = uri[len("pvc://") :].partition("/")
        volumes = [{"name": "models", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}]
        if sub:
            mounts[0]["subPath"] = sub
        return Repository("/models", volumes, mounts, [])
    security = restricted_security()
    if uri.startswith(("http://", "https://")):
        extension = {"onnx": "onnx", "torchscript": "pt", "savedmodel": "savedmodel", "python": "py"}[variant.source.format]
        target = f"/models/{spec.model_name}/1/model.{extension}"
        script = f'set -eu; mkdir -p "$(dirname {target})"; curl -fsSL --retry 5 -o {target} "$MODEL_URI"'
        init = {
            "name": "fetch-model",
            "image": images.agent,
            "imagePullPolicy": images.pull_policy,
            "command": ["sh", "-c", script],
            "env": [{"name": "MODEL_URI", "value": uri}],
            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
            "securityContext": security,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        }
        return Repository("/models", [{"name": "models", "emptyDir": {}}], mounts, [init])
    if uri.startswith("s3://"):
        init = {
            "name": "fetch-model",
            "image": images.s3,
            "imagePullPolicy": images.pull_policy,
            "args": ["s3", "cp", "--recursive", uri, "/models"],
            "envFrom": [{"secretRef": {"name": f"{spec.model_name}-s3", "optional": True}}],
            "env": [{"name": "HOME", "value": "/tmp"}],
            "volumeMounts": [{"name": "models", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}],
            "securityContext": security,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        }
        return Repository("/models", [{"name": "models", "emptyDir": {}}], mounts, [init])
    path = uri[len("file://") :] if uri.startswith("file://") else (uri or f"/models/{variant.name}")
    return Repository(path, [], [], [])


def variant_deployment(
    owner: Owner, spec: InferenceServiceSpec, variant: Variant, *, cpu_cores: float, gpus: int, replicas: int, images: Images
) -> Obj:
    repo = model_repository(spec, variant, images)
    triton: Obj = {
        "name": "triton",
        "image": images.triton,
        "imagePullPolicy": images.pull_policy,
        "args": [
            "tritonserver",
            f"--model-repository={repo.path}",
            "--model-control-mode=none",
            "--strict-readiness=true",
            f"--http-port={HTTP_PORT}",
            "--allow-grpc=false",
            f"--metrics-port={METRICS_PORT}",
            "--exit-on-error=true",
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}, {"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": variant_resources(variant, cpu_cores, gpus),
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}, {"resourceName": "memory", "restartPolicy": "RestartContainer"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "initialDelaySeconds": int(min(300, 3 * variant.load_time_s + 10)),
        },
        "volumeMounts": [*repo.mounts, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": restricted_security(),
    }
    pod_labels = labels(owner, "server", variant.name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, object_name(owner.name, variant.name), "server", variant.name, {ANNOTATION_CPU: f"{cpu_cores:g}"}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(owner, "server", variant.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {"prometheus.io/port": str(METRICS_PORT)}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "initContainers": repo.inits,
                    "containers": [triton],
                    "volumes": [*repo.volumes, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def variant_service(owner: Owner, variant: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, object_name(owner.name, variant), "server", variant),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner, "server", variant),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}, {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def weights_for(
    plan: Plan, ready: Mapping[str, float] | set[str], held: Mapping[str, int] | None = None, variants: Sequence[str] = ()
) -> dict[str, int]:
    """Integer router weights that follow ready capacity (make-before-break).

    ``ready``: per variant, the share of its planned replicas that is ready (0..1; a set means fully ready).
    A planned variant gets its share scaled by that fraction; what the new variants cannot carry yet stays
    with the variants the router sends traffic to now (``held``) that are leaving the plan. Traffic never
    moves to a variant with no ready instance; with none ready at all, ``held`` is kept.
    """
    fraction = dict.fromkeys(ready, 1.0) if isinstance(ready, set) else {k: max(0.0, min(1.0, v)) for k, v in ready.items()}
    clusters = list(variants) or [v.name for v in plan.variants]
    planned = {v.name for v in plan.variants}
    shares = {v.name: v.weight * fraction.get(v.name, 0.0) for v in plan.variants if v.weight > 0 and fraction.get(v.name, 0.0) > 0}
    if not shares:
        shares = {v.name: fraction.get(v.name, 0.0) for v in plan.variants if fraction.get(v.name, 0.0) > 0}
    leaving = {c: float(w) for c, w in (held or {}).items() if w > 0 and c not in planned and c in clusters}
    missing = max(0.0, 1.0 - sum(shares.values())) if shares else 0.0
    if missing > 1e-9 and leaving:
        total = sum(leaving.values())
        shares.update({c: missing * w / total for c, w in leaving.items()})
    if not shares:
        if held:
            return {c: int(held.get(c, 0)) for c in clusters}
        shares = plan.weights() or dict.fromkeys(clusters, 1.0)
    result = integer_weights(shares, clusters)
    return {c: (result[c] if c in shares else 0) for c in clusters}


def desired_objects(
    owner: Owner, spec: InferenceServiceSpec, sizes: Mapping[str, tuple[float, int, int]], weights: Mapping[str, int], images: Images
) -> list[Obj]:
    """Everything the service needs: ``sizes`` = {variant: (cpu cores, gpus, replicas)} for every variant."""
    objects: list[Obj] = []
    for variant in spec.variants:
        cpu, gpus, replicas = sizes[variant.name]
        objects.append(variant_deployment(owner, spec, variant, cpu_cores=cpu, gpus=gpus, replicas=replicas, images=images))
        objects.append(variant_service(owner, variant.name))
    from infadapter.runtime import kube_router as router  # the router builders use this module's helpers

    if spec.routing.kind == "GatewayAPI":
        objects.append(router.http_route(owner, spec, weights))
    else:
        objects += [
            router.router_configmap(owner, spec),
            router.weights_configmap(owner, weights),
            router.router_deployment(owner, spec, images),
            router.router_service(owner),
        ]
    return objects
