"""Apply a :class:`Plan` to the cluster: make-before-break over Deployments, weights only to ready variants.

One call of :func:`apply_plan` is one idempotent reconciliation step (the operator calls it every tick):

1. read the live Deployments of the service and the router's current weights;
2. size every variant: planned variants get the plan's replicas; a variant leaving the plan keeps its
   replicas while it still carries traffic and a planned variant is not ready yet (make-before-break),
   then goes to 0;
3. CPU changes of a running variant: with ``resizePolicy: InPlaceOrRecreate``, each pod is compared with
   the plan and resized through ``pods/resize`` (:mod:`infadapter.runtime.kube_resize`) while the Deployment
   template keeps its size (no rollout); if the server has no such subresource (discovery), or the kubelet
   reports the resize Infeasible, or Deferred for too long, the template changes and the rolling update
   (``maxUnavailable: 0``) replaces the pods, new ones ready before old ones go;
4. create, or server-side apply, each object only when the live one (as the server stores it: canonical
   quantities, empty lists dropped) differs from what we want; refuse to touch an object of the same name
   that this service does not own;
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
from infadapter.runtime.kube_client import Conflict, KubeApi, api_path
from infadapter.runtime.kube_resize import RESIZE_WAIT_S, ResizeReport, resize_variant
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
    #: pod -> in-place resize state this step (Resized, Deferred, Infeasible, InProgress)
    resizes: dict[str, str] = field(default_factory=dict)

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
    """``want`` is a subset of ``live``, as the API server stores it.

    Dicts by key, lists element-wise; server defaults in ``live`` are ignored; quantities compare by value
    (``"2000m"`` is stored as ``"2"``); an empty list or map we send is dropped by the server, so it matches
    an absent one. Without this the operator would re-write every object at every step and never converge.
    """
    if isinstance(want, Mapping):
        if not isinstance(live, Mapping):
            return live is None and not want
        return all(contains(live.get(k), v) if k in live else _empty(v) for k, v in want.items())
    if isinstance(want, list):
        if live is None:
            return not want
        return isinstance(live, list) and len(live) == len(want) and all(contains(a, b) for a, b in zip(live, want, strict=True))
    if isinstance(want, int | float) and isinstance(live, int | float) and not isinstance(want, bool) and not isinstance(live, bool):
        return float(live) == float(want)
    if live == want:
        return True
    if isinstance(want, str) and isinstance(live, str | int | float) and not isinstance(live, bool):
        a, b = kube.parse_quantity(live), kube.parse_quantity(want)
        return a is not None and a == b
    return False


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping | list) and not value)


def _body(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


async def ensure(
    api: KubeApi, obj: Mapping[str, Any], owner: kube.Owner, result: ApplyResult, known: Mapping[tuple[str, str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Create ``obj`` or server-side apply it into shape; never touch a same-named object we do not own.

    ``known``: live objects already listed by label (then absent means "create": a same-named object
    without our label answers AlreadyExists, is read back and refused). Nothing is sent when the live
    object already holds what we want: at steady state the operator makes no writes.
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
    if contains(live.get("metadata", {}), want_meta) and contains(_body(live), _body(obj)):
        return live
    patched = await api.apply(path, obj)
    result.patched.append(what)
    return patched


def ready_replicas(live: Mapping[str, Any] | None) -> int:
    return int((live or {}).get("status", {}).get("readyReplicas") or 0)


async def _retire_removed(
    api: KubeApi, spec: InferenceServiceSpec, live: Mapping[str, Any], held: Mapping[str, int], new_ready: bool, result: ApplyResult
) -> None:
    """Variants deleted from the spec stop costing: scaled to 0 once they carry no traffic or the plan is ready.

    Their Deployment and Service stay (owned, so deleting the InferenceService removes them); scaling to 0
    needs no delete permission and keeps a re-added variant's history.
    """
    for variant, deployment in live.items():
        if variant is None or variant in spec.variant_names or not int(deployment.get("spec", {}).get("replicas") or 0):
            continue
        if held.get(variant, 0) > 0 and not new_ready:
            continue  # make-before-break: it still serves until the planned variants are ready
        meta = deployment["metadata"]
        await api.merge_patch(api_path("apps/v1", "deployments", meta["namespace"], meta["name"]), {"spec": {"replicas": 0}})
        result.patched.append(f"Deployment/{deployment['metadata']['name']}")


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


@dataclass(frozen=True)
class ApplyOptions:
    images: kube.Images = field(default_factory=kube.Images)
    in_place_supported: bool | None = None  # None: try and learn
    #: how long a Deferred or in-progress in-place resize is waited on before a rollout replaces the pods
    resize_wait_s: float = RESIZE_WAIT_S


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
    # a new variant counts only with all its planned replicas ready: then it carries its whole share
    fractions = {n: ready_replicas(live_deployments.get(n)) / v.replicas for n, v in planned.items()}
    new_ready = all(f >= 1.0 for f in fractions.values())
    sizes: dict[str, tuple[float, int, int]] = {}
    in_place = spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE and await api.has_subresource("v1", "pods/resize")
    result.in_place_supported = in_place
    report = ResizeReport({}, result.resized_pods, result.messages)
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
        resizable = in_place and live_size is not None and live_replicas > 0 and live_size[1] == gpus
        # each pod is compared with the plan (not the template, which keeps its size after a resize)
        if resizable and live_size is not None and await resize_variant(api, owner, variant.name, cpu, report, wait_s=options.resize_wait_s) != "rollout":
            cpu = live_size[0]  # the template keeps its size: no rollout
        sizes[variant.name] = (cpu, gpus, target.replicas)
    result.resizes = dict(report.states)
    ready = {n for n in planned if deployment_ready(live_deployments.get(n))}
    weights = kube.weights_for(plan, fractions, held, spec.variant_names)
    desired = kube.desired_objects(owner, spec, sizes, weights, options.images)
    for obj in desired:
        if obj["kind"] == "Deployment" and obj["metadata"].get("labels", {}).get(kube.LABEL_VARIANT) in planned:
            variant = obj["metadata"]["labels"][kube.LABEL_VARIANT]
            obj["metadata"]["annotations"][kube.ANNOTATION_CPU] = f"{planned[variant].cpu_cores:g}"
    lives = await asyncio.gather(*(ensure(api, obj, owner, result, known) for obj in desired))
    await _retire_removed(api, spec, live_deployments, held, new_ready, result)
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
        and not any(state != "Resized" for state in result.resizes.values())
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
