"""The servers of one InferenceService as Kubernetes objects (pure): per variant a Triton ``Deployment`` and a
headless ``Service``, and ``S-servers`` over every server (the router's fallback).

The serving configuration is the profiled one: ONNX models are served from a repository written by the
``serving-config`` init container with :func:`infadapter.serving.repository.serving_for`'s instances
(those of the variant's largest size, so an in-place resize needs no restart) and single-threaded ONNX
Runtime (``OMP_NUM_THREADS`` too). No request is lost when a pod goes: it stays in the endpoints'
DNS answers until it is not ready, then sleeps :data:`~infadapter.runtime.kube.objects.SERVER_DRAIN_S` in
``preStop`` (the router's DNS refresh drops it meanwhile) before Triton finishes its in-flight requests within
``--exit-timeout-secs``. Triton runs with ``--model-control-mode=none`` (no load/unload API) and only its
HTTP and metrics ports are published; every pod runs non-root with a read-only root filesystem and no
capabilities.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from infadapter.planning import cpu_grid
from infadapter.runtime.kube.objects import (
    ANNOTATION_CPU,
    DEFAULT_MEMORY,
    HTTP_PORT,
    METRICS_PORT,
    SERVER_DRAIN_S,
    SERVER_EXIT_TIMEOUT_S,
    SERVING_DIR,
    Images,
    Obj,
    Owner,
    cpu_quantity,
    labels,
    match_labels,
    metadata,
    object_name,
    pod_security,
    restricted_security,
)
from infadapter.serving.repository import Serving, onnxruntime_autocomplete_config, serving_for
from infadapter.spec import InferenceServiceSpec, Variant

#: the extended resource of a GPU of the default type (``budget.gpu``)
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


def variant_resources(spec: InferenceServiceSpec, variant: Variant, cpu_cores: float, gpus: int) -> Obj:
    """Requests = limits; GPUs as the extended resource of the deployment's accelerator type."""
    amounts: dict[str, str] = {"cpu": cpu_quantity(cpu_cores), "memory": variant.resources.memory or DEFAULT_MEMORY}
    if gpus:
        named = spec.accelerator(variant.name)
        amounts[named.resource if named is not None else DEFAULT_GPU_RESOURCE] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _placement(spec: InferenceServiceSpec, variant: Variant) -> Obj:
    """The pod spec's ``nodeSelector`` for a deployment on a named accelerator type (empty otherwise)."""
    named = spec.accelerator(variant.name)
    return {"nodeSelector": dict(named.node_selector)} if named is not None and named.node_selector else {}


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


def variant_serving(spec: InferenceServiceSpec, variant: Variant, cpu_cores: float, gpus: int = 0) -> Serving:
    """The serving configuration of every server of ``variant``: the profiler's and the embedded runtime's rule;
    a batching deployment's servers batch up to its size (Triton's dynamic batcher), on its GPU when it has one."""
    serving = serving_for(max([*cpu_grid(spec, variant.name), cpu_cores]))
    batch = spec.batch(variant.name)
    if not batch:
        return serving
    if gpus:
        return replace(serving, instance_count=1, max_batch_size=batch, instance_kind="GPU")
    return replace(serving, max_batch_size=batch)


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


def _triton_args(repository: str, generated: bool, max_batch_size: int = 0) -> list[str]:
    args = [
        "tritonserver",
        f"--model-repository={repository}",
        "--model-control-mode=none",
        "--strict-readiness=true",
        f"--http-port={HTTP_PORT}",
        "--allow-grpc=false",
        f"--metrics-port={METRICS_PORT}",
        "--exit-on-error=true",
        f"--exit-timeout-secs={SERVER_EXIT_TIMEOUT_S}",
    ]
    if generated:  # auto-complete would otherwise choose the batching: keep the profiled max_batch_size
        args.append(f"--backend-config=onnxruntime,default-max-batch-size={max_batch_size}")
    return args


def _triton_container(variant: Variant, cpu_cores: float, repo: Repository, serving: Serving, resources: Obj, images: Images, *, generated: bool) -> Obj:
    ready = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "timeoutSeconds": 3}
    serving_mount = {"name": "serving", "mountPath": SERVING_DIR, "readOnly": True}
    return {
        "name": "triton",
        "image": images.triton,
        "imagePullPolicy": images.pull_policy,
        "args": _triton_args(SERVING_DIR if generated else repo.path, generated, serving.max_batch_size),
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


def variant_deployment(owner: Owner, spec: InferenceServiceSpec, variant: Variant, *, cpu_cores: float, gpus: int, replicas: int, images: Images) -> Obj:
    resources = variant_resources(spec, variant, cpu_cores, gpus)
    init_resources = {k: {r: v for r, v in amounts.items() if r in ("cpu", "memory")} for k, amounts in resources.items()}
    repo = model_repository(spec, variant, images, init_resources)
    serving = variant_serving(spec, variant, cpu_cores, gpus)
    # CPU ONNX servers, and batching ONNX servers on any hardware, run the profiled configuration; other GPU
    # plans and other formats run their repository as it is
    generated = variant.source.format == "onnx" and (not gpus or serving.max_batch_size > 0)
    inits = [*repo.inits, serving_config_init(spec, repo, serving, images, init_resources)] if generated else list(repo.inits)
    triton = _triton_container(variant, cpu_cores, repo, serving, resources, images, generated=generated)
    volumes = [*repo.volumes, *([{"name": "serving", "emptyDir": {"sizeLimit": "16Mi"}}] if generated else []), {"name": "tmp", "emptyDir": {}}]
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, object_name(owner.name, variant.name), "server", variant.name, {ANNOTATION_CPU: f"{cpu_cores:g}"}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match_labels(owner, "server", variant.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(owner, "server", variant.name), "annotations": {"prometheus.io/port": str(METRICS_PORT)}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "terminationGracePeriodSeconds": SERVER_DRAIN_S + SERVER_EXIT_TIMEOUT_S + 5,
                    "initContainers": inits,
                    "containers": [triton],
                    "volumes": volumes,
                    **_placement(spec, variant),
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
    return headless_service(owner, object_name(owner.name, variant), "server", match_labels(owner, "server", variant), variant)


def servers_service(owner: Owner) -> Obj:
    """``S-servers``: every server pod of the service, whatever its variant (the router's fallback priority)."""
    return headless_service(owner, object_name(owner.name, "servers"), "router", match_labels(owner, "server"))
