"""The Kubernetes actuator of the controller: it reports what runs and makes an :class:`~infadapter.control.Action` real.

:func:`read_state` lists the service's objects (Deployments, Services, router ConfigMaps or HTTPRoute, pods)
and reports an :class:`~infadapter.control.ActuatorState`: per variant the size it converges to (the
``infadapter.io/cpu-cores`` annotation, else the template's), its replicas, and the effective cores of each
ready pod (what the kubelet reports in ``containerStatuses[].resources``, so an in-place resize counts once it
took effect); the router's split; whether ``pods/resize`` exists (discovery, once).

:func:`execute` writes the action: each target variant's Deployment (replicas; the template keeps its size
while pods are resized in place, pod by pod, :mod:`~infadapter.runtime.kube.resize`; it takes the new size —
a rolling update, new pods ready before old ones go — when the action says replace, when the cluster cannot
resize, or when the kubelet refused or deferred too long), variants absent from the action at 0 replicas,
the router's weights. The make-before-break rule is the controller's; nothing here decides.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infadapter.control import Action, ActuatorState, VariantState, VariantTarget
from infadapter.runtime.envoy_config import integer_weights
from infadapter.runtime.kube.apply import collection_path, ensure, template_size, weights_from
from infadapter.runtime.kube.client import KubeApi, NotFound, api_path
from infadapter.runtime.kube.desired import desired_objects
from infadapter.runtime.kube.objects import ANNOTATION_CPU, ANNOTATION_WEIGHTS, LABEL_COMPONENT, LABEL_SERVICE, LABEL_VARIANT, Images, Owner, is_owned
from infadapter.runtime.kube.resize import RESIZE_WAIT_S, ResizeReport, pod_size, resize_variant, running
from infadapter.runtime.kube.router import applied_weights, route_problem
from infadapter.spec import InferenceServiceSpec, ResizePolicy

Known = dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class KubeView:
    """One read of the service's objects: the controller's view (``state``) and the raw objects behind it."""

    state: ActuatorState
    known: Known
    deployments: Mapping[str, dict[str, Any]]  # variant -> its live Deployment (ours)
    pods: Mapping[str, list[dict[str, Any]]]  # variant -> its live pods
    #: GatewayAPI: why the Gateway does not route to the service yet (None: it does, or the router is ours)
    route_problem: str | None = None


@dataclass
class ApplyResult:
    """What one execution did and saw."""

    changes: list[str] = field(default_factory=list)
    resized_pods: list[str] = field(default_factory=list)
    #: pod -> in-place resize state (Resized, Deferred, Infeasible, InProgress)
    resizes: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.resized_pods)


@dataclass(frozen=True)
class ApplyOptions:
    images: Images = field(default_factory=Images)
    #: how long a Deferred or in-progress in-place resize is waited on before a rollout replaces the pods
    resize_wait_s: float = RESIZE_WAIT_S


def _ready(pod: Mapping[str, Any]) -> bool:
    if not running(pod):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions") or [])


def _variant_state(name: str, deployment: Mapping[str, Any], pods: list[dict[str, Any]]) -> VariantState:
    size = template_size(deployment) or (0.0, 0)
    annotated = deployment.get("metadata", {}).get("annotations", {}).get(ANNOTATION_CPU)
    planned = float(annotated) if annotated else size[0]
    target = planned
    ready: list[float] = []
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        measured = pod_size(pod)
        if measured.desired_cpu is not None and abs(measured.desired_cpu - planned) > 1e-6 and abs(size[0] - planned) > 1e-6:
            # a pod asks for another size than the target (a new pod from the template kept at its old size
            # while the others were resized in place): report it, so the controller sends the size again
            target = measured.desired_cpu
        if _ready(pod):
            ready.append(measured.actual_cpu if measured.actual_cpu is not None else (measured.desired_cpu or size[0]))
    replicas = int(deployment.get("spec", {}).get("replicas") or 0)
    return VariantState(name, target, replicas, tuple(sorted(ready)), size[1])


async def read_state(api: KubeApi, owner: Owner, spec: InferenceServiceSpec, *, confirm: RouterProbe | None = None) -> KubeView:
    """List the service's objects (one request per kind) and report what runs.

    ``confirm``: ask each ready router pod which weights Envoy applies (its status listener); the split
    reported is then the router's, not the ConfigMap's — a leaving variant counts as routed while any
    router pod still sends to it. Without it (the operator outside the cluster's network), the ConfigMap's.
    """
    kinds = ["Deployment", "Service"] + (["HTTPRoute"] if spec.routing.kind == "GatewayAPI" else ["ConfigMap", "PodDisruptionBudget"])
    selector = f"{LABEL_SERVICE}={owner.name}"
    listed = await asyncio.gather(
        *(api.list(collection_path(k, owner.namespace), label_selector=selector) for k in kinds),
        api.list(api_path("v1", "pods", owner.namespace), label_selector=selector),
    )
    known: Known = {(kind, o["metadata"]["name"]): o for kind, items in zip(kinds, listed, strict=False) for o in items}
    deployments = {
        str(d["metadata"]["labels"][LABEL_VARIANT]): d
        for (kind, _), d in known.items()
        if kind == "Deployment" and d["metadata"].get("labels", {}).get(LABEL_COMPONENT) == "server" and is_owned(d, owner)
    }
    pods: dict[str, list[dict[str, Any]]] = {}
    for pod in listed[-1]:
        pods.setdefault(str(pod.get("metadata", {}).get("labels", {}).get(LABEL_VARIANT)), []).append(pod)
    shares = _shares(weights_from(known, owner, spec))
    if confirm is not None and spec.routing.kind != "GatewayAPI":
        shares = await _confirmed(confirm, listed[-1], spec, shares)
    in_place = spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE and await api.has_subresource("v1", "pods/resize")
    variants = tuple(_variant_state(name, d, pods.get(name, [])) for name, d in sorted(deployments.items()))
    route = route_problem(known.get(("HTTPRoute", owner.name)), spec, owner.namespace) if spec.routing.kind == "GatewayAPI" else None
    return KubeView(ActuatorState(variants, shares, in_place), known, deployments, pods, route)


async def execute(api: KubeApi, owner: Owner, spec: InferenceServiceSpec, action: Action, view: KubeView, options: ApplyOptions) -> ApplyResult:
    """Make ``action`` real (see the module docstring); idempotent: what already holds is not written."""
    result = ApplyResult()
    report = ResizeReport(result.resizes, result.resized_pods, result.messages)
    sizes: dict[str, tuple[float, int, int]] = {}
    targets: dict[str, VariantTarget] = {t.name: t for t in action.variants}
    for variant in spec.units:
        target = targets.get(variant.name)
        live = view.deployments.get(variant.name)
        live_size = template_size(live)
        if target is None:  # drained: no replicas, the template as it is
            cpu, gpus = live_size or (_smallest(spec, variant.name), 0)
            sizes[variant.name] = (cpu, gpus, 0)
            continue
        sizes[variant.name] = (await _template_cpu(api, target, live, view, options, report), target.gpus, target.replicas)
    weights = _integer_weights(action.weights, spec)
    # the router's two replicas get a PodDisruptionBudget: a node drain never takes both
    desired = desired_objects(owner, spec, sizes, weights, options.images, disruption_budget=True)
    for obj in desired:  # the size each variant converges to, whatever the template says
        name = obj["metadata"].get("labels", {}).get(LABEL_VARIANT)
        if obj["kind"] == "Deployment" and name in targets:
            obj["metadata"]["annotations"][ANNOTATION_CPU] = f"{targets[name].cpu_cores:g}"
    await asyncio.gather(*(ensure(api, obj, owner, result.changes, view.known) for obj in desired))
    if spec.routing.kind != "GatewayAPI":
        await _nudge_routers(api, view, weights, result)
    await _retire_removed(api, spec, view, targets, result)
    return result


def weights_version(weights: Mapping[str, int]) -> str:
    """A short digest of the integer weights (what the router pods' annotation carries)."""
    text = ",".join(f"{k}={v}" for k, v in sorted(weights.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def _nudge_routers(api: KubeApi, view: KubeView, weights: Mapping[str, int], result: ApplyResult) -> None:
    """Annotate every router pod with the weights' version, so that its kubelet projects the new weights ConfigMap
    now (:data:`ANNOTATION_WEIGHTS`); a pod that already carries it is not written (none at steady state)."""
    version = weights_version(weights)
    for pod in (p for pods in view.pods.values() for p in pods):
        meta = pod.get("metadata", {})
        if meta.get("labels", {}).get(LABEL_COMPONENT) != "router" or (meta.get("annotations") or {}).get(ANNOTATION_WEIGHTS) == version:
            continue
        try:
            await api.merge_patch(api_path("v1", "pods", meta["namespace"], meta["name"]), {"metadata": {"annotations": {ANNOTATION_WEIGHTS: version}}})
        except NotFound:  # a pod gone meanwhile needs nothing; its replacement mounts the new weights
            continue
        result.changes.append(f"annotated Pod/{meta['name']} with weights {version}")


async def _template_cpu(
    api: KubeApi, target: VariantTarget, live: Mapping[str, Any] | None, view: KubeView, options: ApplyOptions, report: ResizeReport
) -> float:
    """The template's size: kept while the running pods are resized in place, the target's otherwise."""
    live_size = template_size(live)
    has_pods = int((live or {}).get("spec", {}).get("replicas") or 0) > 0 and bool(view.pods.get(target.name))
    if not (target.in_place and view.state.in_place and has_pods and live_size is not None and live_size[1] == target.gpus):
        return target.cpu_cores
    outcome = await resize_variant(api, view.pods.get(target.name, []), target.cpu_cores, report, wait_s=options.resize_wait_s)
    return target.cpu_cores if outcome == "rollout" else live_size[0]


async def _retire_removed(api: KubeApi, spec: InferenceServiceSpec, view: KubeView, targets: Mapping[str, VariantTarget], result: ApplyResult) -> None:
    """A variant deleted from the spec has no object to build: its Deployment is scaled to 0 once the action drops it.

    Its Deployment and Service stay (owned: deleting the InferenceService removes them); scaling to 0 needs
    no delete permission and keeps a re-added variant's history.
    """
    for variant, deployment in view.deployments.items():
        if variant in spec.variant_names or variant in targets or not int(deployment.get("spec", {}).get("replicas") or 0):
            continue
        meta = deployment["metadata"]
        await api.merge_patch(api_path("apps/v1", "deployments", meta["namespace"], meta["name"]), {"spec": {"replicas": 0}})
        result.changes.append(f"scaled Deployment/{meta['name']} to 0")


RouterProbe = Callable[[str], Awaitable[str]]  # pod IP -> the body of GET http://<ip>:9103/runtime


def _shares(weights: Mapping[str, int]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items() if w > 0} if total > 0 else {}


async def _confirmed(probe: RouterProbe, pods: list[dict[str, Any]], spec: InferenceServiceSpec, written: dict[str, float]) -> dict[str, float]:
    """The split every ready router pod applies (per variant the largest share any pod gives it)."""
    routers = [p for p in pods if p.get("metadata", {}).get("labels", {}).get(LABEL_COMPONENT) == "router" and _ready(p)]
    merged: dict[str, float] = {}
    for pod in routers:
        ip = str(pod.get("status", {}).get("podIP") or "")
        try:
            applied = applied_weights(await probe(ip), spec.variant_names) if ip else {}
        except (TimeoutError, OSError, ValueError):
            applied = {}
        if not applied:  # no answer: assume the written split (a probe that never answers must not block a switch)
            applied = {k: round(v * 10_000) for k, v in written.items()}
        for name, share in _shares(applied).items():
            merged[name] = max(merged.get(name, 0.0), share)
    total = sum(merged.values())
    return {k: v / total for k, v in merged.items()} if total > 0 else written


def _integer_weights(shares: Mapping[str, float], spec: InferenceServiceSpec) -> dict[str, int]:
    clusters = list(spec.variant_names)
    positive = {k: v for k, v in shares.items() if v > 0 and k in clusters}
    if not positive:
        return dict.fromkeys(clusters, 0)
    weights = integer_weights(positive, clusters)
    return {c: (weights[c] if c in positive else 0) for c in clusters}


def _smallest(spec: InferenceServiceSpec, variant: str) -> float:
    v = spec.variant(variant)
    return v.resources.min_cpu if v.resources.min_cpu is not None else spec.resources.min_cpu
