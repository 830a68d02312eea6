"""The vocabulary of the operator's Kubernetes objects (pure): the API group, labels, names, ownership, ports,
resource quantities and security contexts every builder shares.

Every object of a service ``S`` is labelled ``app.kubernetes.io/managed-by: infadapter`` and
``infadapter.io/service: S`` and owned by the custom resource through a controller ``ownerReference``, so
deleting it removes them; :func:`is_owned` is how the actuator refuses to touch anything else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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
#: on each router pod: the version of the weights the operator last wrote. Changing a pod's annotation makes the
#: kubelet sync the pod at once, and with it the weights ConfigMap's volume, instead of at its next periodic sync
#: (up to a minute): the Kubernetes documentation's way to refresh a mounted ConfigMap immediately
ANNOTATION_WEIGHTS = "infadapter.io/weights"

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


def match_labels(owner: Owner, component: str, variant: str | None = None) -> dict[str, str]:
    """The labels a Deployment, Service or budget selects its pods by (a subset of :func:`labels`)."""
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
    "": Decimal(1),
    "m": Decimal("0.001"),
    "u": Decimal("1e-6"),
    "n": Decimal("1e-9"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
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
