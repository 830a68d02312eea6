"""Apply a :class:`Plan` to the cluster: make-before-break over Deployments, weights only to ready variants.

One call of :func:`apply_plan` is one idempotent reconciliation step (the operator calls it every tick):

1. read the live Deployments of the service and the router's current weights;
2. size every variant: planned variants get the plan's replicas; a variant leaving the plan keeps its
   replicas while it still carries traffic and a planned variant is not ready yet (make-before-break),
   then goes to 0;
3. CPU changes of a running variant: with ``resizePolicy: InPlaceOrRecreate``, each pod is resized through
   the ``pods/resize`` subresource and the Deployment template keeps its size (no rollout); if the cluster
   has no such subresource, or the kubelet reports the resize infeasible, the template changes and the
   rolling update (``maxUnavailable: 0``) replaces the pods, new ones ready before old ones go;
4. create or merge-patch each object only when it differs from the live one; refuse to touch an object of
   the same name that this service does not own;
5. weights: the plan's shares restricted to variants with a ready replica (none ready: keep the current).

Everything it reads is in the cluster, so a restarted operator continues where the last one stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infadapter.errors import ApplyFailed
from infadapter.planning import Plan
from infadapter.runtime import kube
from infadapter.runtime.kube_client import ApiError, Conflict, KubeApi, NotFound, api_path
from infadapter.spec import InferenceServiceSpec, ResizePolicy

log = logging.getLogger(__name__)

PLURALS = {
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
    "ConfigMap": ("v1", "configmaps"),
    "HTTPRoute": ("gateway.networking.k8s.io/v1", "httproutes"),
    "Pod": ("v1", "pods"),
}


@dataclass
class ApplyResult:
    """What one step did and saw."""

    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    resized_pods: list[str] = field(default_factory=list)
    ready: set[str] = field(default_factory=set)
    weights: dict[str, int] = field(default_factory=dict)
    converged: bool = False
    in_place_supported: bool | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.patched or self.resized_pods)


def object_path(obj: Mapping[str, Any], subresource: str | None = None) -> str:
    api_version, plural = PLURALS[obj["kind"]]
    meta = obj["metadata"]
    return api_path(api_version, plural, meta["namespace"], meta["name"], subresource)


def collection_path(kind: str, namespace: str) -> str:
    api_version, plural = PLURALS[kind]
    return api_path(api_version, plural, namespace)


def contains(live: Any, want: Any) -> bool:
    """``want`` is a subset of ``live`` (dicts by key, lists element-wise; server defaults are ignored)."""
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(k in live and contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(contains(a, b) for a, b in zip(live, want, strict=True))
    if isinstance(want, int | float) and isinstance(live, int | float) and not isinstance(want, bool):
        return float(live) == float(want)
    return bool(live == want)


def _body(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}


async def ensure(
    api: KubeApi, obj: Mapping[str, Any], owner: kube.Owner, result: ApplyResult, known: Mapping[tuple[str, str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Create ``obj`` or merge-patch it into shape; never touch a same-named object we do not own.

    ``known``: live objects already listed by label (then absent means "create": a same-named object
    without our label answers AlreadyExists, is read back and refused).
    """
    path = object_path(obj)
    what = f"{obj['kind']}/{obj['metadata']['name']}"
    live = known.get((obj["kind"], obj["metadata"]["name"])) if known is not None else await api.get(path)
    if live is None:
        try:
            created = await api.create(collection_path(obj["kind"], owner.namespace), obj)
        except Conflict as exc:
            if not exc.already_exists:
                raise
            live = await api.get(path)  # a retried create that did land, or a racing writer
            if live is None:
                raise
        else:
            result.created.append(what)
            return created
    if not kube.is_owned(live, owner):
        raise ApplyFailed(f"{what} exists in {owner.namespace} and is not owned by InferenceService {owner.name}; rename or delete it")
    meta = obj["metadata"]
    want_meta = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    body = _body(obj)
    if contains(live.get("metadata", {}), want_meta) and contains(_body(live), body):
        return live
    patched = await api.merge_patch(path, {"metadata": want_meta, **body})
    result.patched.append(what)
    return patched


def deployment_ready(live: Mapping[str, Any] | None) -> bool:
    """At least one ready replica (of any template revision): traffic may go there."""
    if live is None:
        return False
    return int(live.get("status", {}).get("readyReplicas") or 0) >= 1 and int(live.get("spec", {}).get("replicas") or 0) >= 1


def rollout_done(live: Mapping[str, Any] | None) -> bool:
    if live is None:
        return False
    spec, status = live.get("spec", {}), live.get("status", {})
    replicas = int(spec.get("replicas") or 0)
    return (
        int(status.get("observedGeneration") or 0) >= int(live.get("metadata", {}).get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) >= replicas
        and int(status.get("readyReplicas") or 0) >= replicas
        and int(status.get("replicas") or 0) <= replicas
    )


def template_size(live: Mapping[str, Any] | None) -> tuple[float, int] | None:
    """(cpu cores, gpus) of the live Deployment's Triton template."""
    if live is None:
        return None
    try:
        container = live["spec"]["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        return kube.parse_cpu_quantity(limits["cpu"]), int(limits.get("nvidia.com/gpu", 0))
    except (KeyError, IndexError, TypeError, ValueError):
        return None


async def resize_pods(api: KubeApi, owner: kube.Owner, variant: str, cpu_cores: float, result: ApplyResult) -> bool:
    """Resize every pod of ``variant`` in place; False when the cluster cannot (fall back to a rollout)."""
    pods = await api.list(collection_path("Pod", owner.namespace), label_selector=f"{kube.LABEL_SERVICE}={owner.name},{kube.LABEL_VARIANT}={variant}")
    want = kube.cpu_quantity(cpu_cores)
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        conditions = pod.get("status", {}).get("conditions", [])
        if any(c.get("type") == "PodResizePending" and c.get("reason") == "Infeasible" for c in conditions):
            result.messages.append(f"in-place resize of {pod['metadata']['name']} is infeasible on its node")
            return False
        containers = pod.get("spec", {}).get("containers", [])
        current = next((c for c in containers if c.get("name") == "triton"), None)
        if current is None or current.get("resources", {}).get("limits", {}).get("cpu") == want:
            continue
        resources = {"requests": {"cpu": want}, "limits": {"cpu": want}}
        patch = {"spec": {"containers": [{"name": "triton", "resources": resources}]}}
        try:
            await api.request("PATCH", object_path(pod, "resize"), patch, content_type="application/strategic-merge-patch+json")
        except NotFound as exc:
            if "resize" in str(exc) or exc.reason != "NotFound" or await api.get(object_path(pod)) is not None:
                return False  # no pods/resize subresource: the cluster does not support in-place resize
            continue  # the pod itself is gone
        except ApiError as exc:
            if exc.status in (400, 405, 415, 422):
                result.messages.append(f"in-place resize refused: {exc}")
                return False
            raise
        result.resized_pods.append(pod["metadata"]["name"])
    return True


@dataclass(frozen=True)
class ApplyOptions:
    images: kube.Images = field(default_factory=kube.Images)
    in_place_supported: bool | None = None  # None: try and learn


async def apply_plan(api: KubeApi, owner: kube.Owner, spec: InferenceServiceSpec, plan: Plan, options: ApplyOptions) -> ApplyResult:
    result = ApplyResult(in_place_supported=options.in_place_supported)
    kinds = ["Deployment", "Service"] + (["HTTPRoute"] if spec.routing.kind == "GatewayAPI" else ["ConfigMap"])
    listed = await asyncio.gather(*(api.list(collection_path(k, owner.namespace), label_selector=f"{kube.LABEL_SERVICE}={owner.name}") for k in kinds))
    known = {(kind, o["metadata"]["name"]): o for kind, items in zip(kinds, listed, strict=True) for o in items}
    live_deployments = {
        d["metadata"].get("labels", {}).get(kube.LABEL_VARIANT): d
        for (kind, _), d in known.items()
        if kind == "Deployment" and d["metadata"].get("labels", {}).get(kube.LABEL_COMPONENT) == "server" and kube.is_owned(d, owner)
    }
    held = weights_from(known, owner, spec)
    planned = {v.name: v for v in plan.variants if v.replicas > 0}
    new_ready = all(deployment_ready(live_deployments.get(n)) for n in planned)
    sizes: dict[str, tuple[float, int, int]] = {}
    for variant in spec.variants:
        live = live_deployments.get(variant.name)
        live_size = template_size(live)
        live_replicas = int(live.get("spec", {}).get("replicas") or 0) if live else 0
        target = planned.get(variant.name)
        if target is None:
            carrying = held.get(variant.name, 0) > 0 and live_replicas > 0
            keep = carrying and not new_ready  # make-before-break: stay until the new variants are ready
            cpu, gpus = live_size or (_default_cpu(spec, variant.name), 0)
            sizes[variant.name] = (cpu, gpus, live_replicas if keep else 0)
            continue
        cpu, gpus = target.cpu_cores, target.gpus
        resizable = live_size is not None and live_replicas > 0 and live_size[1] == gpus and abs(live_size[0] - cpu) > 1e-9
        in_place = spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE and result.in_place_supported is not False
        if resizable and in_place and live_size is not None:
            ok = await resize_pods(api, owner, variant.name, cpu, result)
            result.in_place_supported = ok
            if ok:
                cpu = live_size[0]  # the template keeps its size: pods were resized in place
        sizes[variant.name] = (cpu, gpus, target.replicas)
    ready = {n for n in planned if deployment_ready(live_deployments.get(n))}
    weights = kube.weights_for(plan, ready, held, spec.variant_names)
    desired = kube.desired_objects(owner, spec, sizes, weights, options.images)
    for obj in desired:
        if obj["kind"] == "Deployment" and obj["metadata"].get("labels", {}).get(kube.LABEL_VARIANT) in planned:
            variant = obj["metadata"]["labels"][kube.LABEL_VARIANT]
            obj["metadata"]["annotations"][kube.ANNOTATION_CPU] = f"{planned[variant].cpu_cores:g}"
    lives = await asyncio.gather(*(ensure(api, obj, owner, result, known) for obj in desired))
    for obj, live in zip(desired, lives, strict=True):
        if obj["kind"] == "Deployment" and kube.LABEL_VARIANT in obj["metadata"]["labels"]:
            live_deployments[obj["metadata"]["labels"][kube.LABEL_VARIANT]] = live
    result.ready = ready
    result.weights = weights
    leaving = [n for n in spec.variant_names if n not in planned and int((live_deployments.get(n) or {}).get("spec", {}).get("replicas") or 0) > 0]
    result.converged = (
        not result.changed
        and set(planned) == ready
        and all(rollout_done(live_deployments.get(n)) for n in planned)
        and not leaving
    )
    return result


def _default_cpu(spec: InferenceServiceSpec, variant: str) -> float:
    v = spec.variant(variant)
    return v.resources.min_cpu if v.resources.min_cpu is not None else spec.resources.min_cpu


def weights_from(known: Mapping[tuple[str, str], Mapping[str, Any]], owner: kube.Owner, spec: InferenceServiceSpec) -> dict[str, int]:
    """The weights the router holds now (the weights ConfigMap or the HTTPRoute); {} when none yet."""
    if spec.routing.kind == "GatewayAPI":
        route = known.get(("HTTPRoute", owner.name))
        if route is None:
            return {}
        refs = route.get("spec", {}).get("rules", [{}])[0].get("backendRefs", [])
        by_service = {kube.object_name(owner.name, v): v for v in spec.variant_names}
        return {by_service[r["name"]]: int(r.get("weight", 0)) for r in refs if r.get("name") in by_service}
    cm = known.get(("ConfigMap", kube.object_name(owner.name, "router-weights")))
    if cm is None or not kube.is_owned(cm, owner):
        return {}
    out: dict[str, int] = {}
    for name, value in (cm.get("data") or {}).items():
        try:
            out[name] = int(value)
        except ValueError:
            continue
    return out
