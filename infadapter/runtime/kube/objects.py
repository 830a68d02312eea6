"""Kubernetes objects for one InferenceService, built from its spec and a :class:`Plan` (pure functions).

Per service ``S`` (all labelled ``app.kubernetes.io/managed-by: infadapter`` and ``infadapter.io/service: S``,
all owned by the custom resource through a controller ``ownerReference``, so deleting it removes them):

* ``S-<variant>``: a Triton ``Deployment`` (requests = limits from the plan on every container, init
  containers included, so the pod is Guaranteed; ``nvidia.com/gpu`` when the plan gives GPUs; rolling
  update with ``maxUnavailable: 0`` = make-before-break; ``resizePolicy`` NotRequired so CPU changes in
  place) and a headless ``Service`` (the router resolves every ready pod and balances per request);
  variants outside the plan keep their Deployment at 0 replicas, so the router config never changes;
* ``S-router``: an Envoy ``Deployment`` (two replicas) + ``Service`` + ``ConfigMap`` + (optionally)
  ``PodDisruptionBudget``, ``S-servers`` (a headless Service over every server of the service: the
  router's fallback), and ``S-router-weights`` (integer weights per variant) — see
  :mod:`infadapter.runtime.kube.router`;
* with ``routing.kind: GatewayAPI``, an ``HTTPRoute`` with weighted ``backendRefs`` instead of the router.

The serving configuration is the profiled one: ONNX models are served from a repository written by the
``serving-config`` init container with :func:`infadapter.serving.repository.serving_for`'s instances
(those of the variant's largest size, so an in-place resize needs no restart) and single-threaded ONNX
Runtime (``OMP_NUM_THREADS`` too). No request is lost when a pod goes: it stays in the endpoints'
DNS answers until it is not ready, then sleeps :data:`SERVER_DRAIN_S` in ``preStop`` (the router's DNS
refresh drops it meanwhile) before Triton finishes its in-flight requests within ``--exit-timeout-secs``.
Triton runs with ``--model-control-mode=none`` (no load/unload API) and only its HTTP and metrics ports
are published; every pod runs non-root with a read-only root filesystem and no capabilities.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from infadapter.planning import Plan, cpu_grid
from infadapter.runtime.envoy_config import integer_weights
from infadapter.serving.repository import Serving, onnxruntime_autocomplete_config, serving_for
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
#: the router's read-only status listener: GET /runtime (the weights Envoy applies) and GET /ready
ROUTER_STATUS_PORT = 9103
WEIGHTS_DIR = "/etc/envoy/weights"
DEFAULT_MEMORY = "2Gi"
SERVING_DIR = "/serving"
#: a leaving server stays up this long after it left the endpoints: the router's DNS refresh (2 s),
#: the cluster DNS TTL (5 s) and the endpoints' propagation (~1 s) drop it meanwhile
SERVER_DRAIN_S = 10
#: then Triton finishes its in-flight requests (``--exit-timeout-secs``); the kubelet's grace covers both
SERVER_EXIT_TIMEOUT_S = 30
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


def model_repository(spec: InferenceServiceSpec, variant: Variant, images: Images, resources: Obj | None = None) -> Repository:
    """Volumes, Triton mounts and init containers serving ``spec.model_name`` from the variant's source.

    * ``pvc://claim/path``: ``path`` on the claim is a Triton model repository holding ``<modelName>/``;
    * ``http(s)://…/file``: one model file downloaded into ``/models/<modelName>/1/model.<format>``;
    * ``s3://bucket/prefix``: a repository copied with the AWS CLI (credentials from the optional
      Secret ``<service>-s3``, never written into the spec or the status);
    * anything else: a path inside the Triton image.

    ``resources``: the init containers' (requests = limits, as the server's, so the pod stays Guaranteed and
    its effective request is the server's); small defaults otherwise.
    """
    uri = variant.source.uri
    init_resources = resources or {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}}
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
            "resources": init_resources,
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
            "resources": init_resources,
        }
        return Repository("/models", [{"name": "models", "emptyDir": {}}], mounts, [init])
    path = uri[len("file://") :] if uri.startswith("file://") else (uri or f"/models/{variant.name}")
    return Repository(path, [], [], [])


def variant_serving(spec: InferenceServiceSpec, variant: Variant, cpu_cores: float) -> Serving:
    """The serving configuration of every server of ``variant``: the profiler's and the embedded runtime's rule."""
    return serving_for(max([*cpu_grid(spec, variant.name), cpu_cores]))


def startup_budget_s(variant: Variant, cpu_cores: float) -> float:
    """How long a new server may take to load its model: ``loadTimeSeconds`` slowed by a quota under one core
    (loading is CPU-bound), three times over, plus 30 s for the process and the first probes."""
    return min(3600.0, 30.0 + 3.0 * variant.load_time_s / min(1.0, max(cpu_cores, 0.05)))


def serving_config_init(spec: InferenceServiceSpec, repo: Repository, serving: Serving, images: Images, resources: Obj) -> Obj:
    """The init container that writes the served repository: our config.pbtxt + links to the source's versions.

    A config.pbtxt in the source is not used: the servers run the configuration the profile was measured with.
    """
    source, target = f"{repo.path}/{spec.model_name}", f"{SERVING_DIR}/{spec.model_name}"
    script = (
        f'set -eu; src="{source}"; dst="{target}"; found=0; mkdir -p "$dst"\n'
        'for v in "$src"/*/; do v="${v%/}"; n="$(basename "$v")"; case "$n" in *[!0-9]*) continue;; esac\n'
        '  mkdir -p "$dst/$n"; for f in "$v"/*; do ln -sfn "$f" "$dst/$n/"; done; found=1; done\n'
        '[ "$found" = 1 ] || { echo "no numbered version directory under $src" >&2; exit 1; }\n'
        'printf "%s" "$SERVING_CONFIG" > "$dst/config.pbtxt"\n'
    )
    return {
        "name": "serving-config",
        "image": images.triton,
        "imagePullPolicy": images.pull_policy,
        "command": ["sh", "-c", script],
        "env": [{"name": "SERVING_CONFIG", "value": onnxruntime_autocomplete_config(spec.model_name, serving)}],
        "volumeMounts": [*repo.mounts, {"name": "serving", "mountPath": SERVING_DIR}],
        "securityContext": restricted_security(),
        "resources": resources,
    }


def variant_deployment(owner: Owner, spec: InferenceServiceSpec, variant: Variant, *, cpu_cores: float, gpus: int, replicas: int, images: Images) -> Obj:
    resources = variant_resources(variant, cpu_cores, gpus)
    init_resources = {k: {r: v for r, v in amounts.items() if r in ("cpu", "memory")} for k, amounts in resources.items()}
    repo = model_repository(spec, variant, images, init_resources)
    serving = variant_serving(spec, variant, cpu_cores)
    # CPU ONNX servers run the profiled configuration; GPU plans and other formats run their repository as it is
    generated = variant.source.format == "onnx" and not gpus
    inits = [*repo.inits, serving_config_init(spec, repo, serving, images, init_resources)] if generated else list(repo.inits)
    args = [
        "tritonserver",
        f"--model-repository={SERVING_DIR if generated else repo.path}",
        "--model-control-mode=none",
        "--strict-readiness=true",
        f"--http-port={HTTP_PORT}",
        "--allow-grpc=false",
        f"--metrics-port={METRICS_PORT}",
        "--exit-on-error=true",
        f"--exit-timeout-secs={SERVER_EXIT_TIMEOUT_S}",
    ]
    if generated:
        args.append("--backend-config=onnxruntime,default-max-batch-size=0")  # keep max_batch_size 0 as profiled
    ready = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "timeoutSeconds": 3}
    serving_mount = {"name": "serving", "mountPath": SERVING_DIR, "readOnly": True}
    triton: Obj = {
        "name": "triton",
        "image": images.triton,
        "imagePullPolicy": images.pull_policy,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in serving.env().items()],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}, {"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": resources,
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}, {"resourceName": "memory", "restartPolicy": "RestartContainer"}],
        # probes sized for a CPU-capped server: a health answer may wait for a quota period under load
        "startupProbe": {**ready, "periodSeconds": 2, "failureThreshold": math.ceil(startup_budget_s(variant, cpu_cores) / 2)},
        "readinessProbe": {**ready, "periodSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "timeoutSeconds": 5, "periodSeconds": 10, "failureThreshold": 6},
        "lifecycle": {"preStop": {"sleep": {"seconds": SERVER_DRAIN_S}}},
        "volumeMounts": [*repo.mounts, *([serving_mount] if generated else []), {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": restricted_security(),
    }
    pod_labels = labels(owner, "server", variant.name)
    volumes = [*repo.volumes, *([{"name": "serving", "emptyDir": {"sizeLimit": "16Mi"}}] if generated else []), {"name": "tmp", "emptyDir": {}}]
    deployment: Obj = {
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
                    "terminationGracePeriodSeconds": SERVER_DRAIN_S + SERVER_EXIT_TIMEOUT_S + 5,
                    "initContainers": inits,
                    "containers": [triton],
                    "volumes": volumes,
                },
            },
        },
    }
    return copy.deepcopy(deployment)  # no dict shared between containers: callers may edit one in place


def headless_service(owner: Owner, name: str, component: str, pod_selector: Mapping[str, str], variant: str | None = None) -> Obj:
    """A headless Service: its DNS name answers every ready pod, so Envoy's STRICT_DNS cluster balances per request
    across replicas (a ClusterIP would pin each router connection to one pod)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, name, component, variant),
        "spec": {
            "clusterIP": "None",
            "selector": dict(pod_selector),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}, {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def variant_service(owner: Owner, variant: str) -> Obj:
    """``S-<variant>``: the variant's pods (headless; ``clusterIP`` is immutable, see docs/operator.md)."""
    return headless_service(owner, object_name(owner.name, variant), "server", selector(owner, "server", variant), variant)


def servers_service(owner: Owner) -> Obj:
    """``S-servers``: every server pod of the service, whatever its variant (the router's fallback priority)."""
    return headless_service(owner, object_name(owner.name, "servers"), "router", selector(owner, "server"))


def weights_for(plan: Plan, ready: Mapping[str, float] | set[str], held: Mapping[str, int] | None = None, variants: Sequence[str] = ()) -> dict[str, int]:
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
    owner: Owner,
    spec: InferenceServiceSpec,
    sizes: Mapping[str, tuple[float, int, int]],
    weights: Mapping[str, int],
    images: Images,
    *,
    disruption_budget: bool = False,
) -> list[Obj]:
    """Everything the service needs: ``sizes`` = {variant: (cpu cores, gpus, replicas)} for every variant.

    ``disruption_budget``: include the router's ``PodDisruptionBudget`` (``policy/v1``; the applier and the
    operator's RBAC must know the kind).
    """
    objects: list[Obj] = []
    for variant in spec.variants:
        cpu, gpus, replicas = sizes[variant.name]
        objects.append(variant_deployment(owner, spec, variant, cpu_cores=cpu, gpus=gpus, replicas=replicas, images=images))
        objects.append(variant_service(owner, variant.name))
    from infadapter.runtime.kube import router  # the router builders use this module's helpers

    if spec.routing.kind == "GatewayAPI":
        objects.append(router.http_route(owner, spec, weights))
    else:
        objects += [
            servers_service(owner),
            router.router_configmap(owner, spec),
            router.weights_configmap(owner, weights),
            router.router_deployment(owner, spec, images),
            router.router_service(owner),
        ]
        if disruption_budget:
            objects.append(router.router_disruption_budget(owner))
    return objects
