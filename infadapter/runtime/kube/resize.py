"""In-place CPU resize of a variant's pods, pod by pod, with the kubelet's answer read back (KEP-1287).

The plan is compared with each pod, not with the Deployment template: after an in-place resize the template
keeps its old size (changing it would roll every pod), so "the template already says 2 cores" tells nothing
about the pods. For each running pod of the variant:

* its spec (desired) CPU differs from the plan: ``PATCH pods/<name>/resize`` (a pod deleted meanwhile answers
  404 and is skipped: it says nothing about the cluster's support for resize);
* its spec matches but its status (actual, ``containerStatuses[].resources``) does not: the kubelet is on it.
  ``PodResizePending`` with reason ``Infeasible`` (the node can never fit it) means a rollout now; reason
  ``Deferred`` (not now) or ``PodResizeInProgress`` are waited on for :data:`RESIZE_WAIT_S`, then a rollout
  replaces the pods (new pods are scheduled where they fit).

Whether the server has ``pods/resize`` at all is learnt once from discovery (see ``KubeApi.has_subresource``).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from infadapter.runtime.kube.client import ApiError, KubeApi, NotFound, api_path
from infadapter.runtime.kube.objects import cpu_quantity, parse_quantity

#: how long a Deferred or in-progress resize is waited on before a rollout replaces the pods
RESIZE_WAIT_S = 60.0
CONTAINER = "triton"

Outcome = Literal["done", "resizing", "rollout"]


@dataclass(frozen=True)
class PodSize:
    """One pod's CPU as asked (spec) and as the kubelet reports it (status), and the kubelet's verdict."""

    name: str
    desired_cpu: float | None
    actual_cpu: float | None
    pending: str | None  # Deferred | Infeasible | InProgress | None
    since_s: float | None  # when that verdict was given (condition's lastTransitionTime)


def _cpu(resources: Mapping[str, Any] | None) -> float | None:
    if not resources:
        return None
    value = (resources.get("limits") or {}).get("cpu", (resources.get("requests") or {}).get("cpu"))
    parsed = parse_quantity(value) if value is not None else None
    return float(parsed) if parsed is not None else None


def _timestamp(text: Any) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def running(pod: Mapping[str, Any]) -> bool:
    """The pod runs and is not being deleted (what a resize, or a ready replica, needs)."""
    return not pod.get("metadata", {}).get("deletionTimestamp") and pod.get("status", {}).get("phase") == "Running"


def pod_size(pod: Mapping[str, Any]) -> PodSize:
    spec: Mapping[str, Any] = next((c for c in pod.get("spec", {}).get("containers", []) if c.get("name") == CONTAINER), {})
    status = pod.get("status", {})
    actual: Mapping[str, Any] = next((c for c in status.get("containerStatuses") or [] if c.get("name") == CONTAINER), {})
    pending: str | None = None
    since: float | None = None
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "PodResizePending":
            pending, since = str(condition.get("reason") or "Deferred"), _timestamp(condition.get("lastTransitionTime"))
        elif condition.get("type") == "PodResizeInProgress" and pending is None:
            pending, since = "InProgress", _timestamp(condition.get("lastTransitionTime"))
    return PodSize(str(pod.get("metadata", {}).get("name", "")), _cpu(spec.get("resources")), _cpu(actual.get("resources")), pending, since)


@dataclass
class ResizeReport:
    """What one pass over a variant's pods did and saw: pod -> state (Resized, Deferred, Infeasible, InProgress)."""

    states: dict[str, str]
    resized: list[str]
    messages: list[str]


def _same_cores(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) < 1e-6


async def resize_variant(
    api: KubeApi, pods: list[dict[str, Any]], cpu_cores: float, report: ResizeReport, *, wait_s: float = RESIZE_WAIT_S, now_s: float | None = None
) -> Outcome:
    """Bring every running pod of a variant (``pods``, as just listed) to ``cpu_cores`` in place; "rollout"
    when the cluster cannot."""
    now = time.time() if now_s is None else now_s
    outcome: Outcome = "done"
    for pod in pods:
        if not running(pod):
            continue
        size = pod_size(pod)
        if not _same_cores(size.desired_cpu, cpu_cores):
            verdict = await _request_resize(api, pod, cpu_cores, report)
            if verdict == "rollout":
                return "rollout"
            outcome = "resizing" if verdict == "resizing" else outcome
            continue
        if _same_cores(size.actual_cpu, cpu_cores):
            continue
        state = size.pending or "InProgress"
        report.states[size.name] = state
        waited = now - size.since_s if size.since_s is not None else 0.0
        if state == "Infeasible" or waited > wait_s:
            report.messages.append(f"in-place resize of {size.name} to {cpu_cores:g} cores is {state} (after {waited:.0f} s): rolling out new pods")
            return "rollout"
        outcome = "resizing"
    return outcome


async def _request_resize(api: KubeApi, pod: Mapping[str, Any], cpu_cores: float, report: ResizeReport) -> str:
    name = str(pod["metadata"]["name"])
    want = cpu_quantity(cpu_cores)
    patch = {"spec": {"containers": [{"name": CONTAINER, "resources": {"requests": {"cpu": want}, "limits": {"cpu": want}}}]}}
    path = api_path("v1", "pods", str(pod["metadata"]["namespace"]), name, "resize")
    try:
        await api.request("PATCH", path, patch, content_type="application/strategic-merge-patch+json", params={"fieldManager": "infadapter"})
    except NotFound:
        return "gone"  # the pod was deleted since we listed it: nothing to resize
    except ApiError as exc:
        if exc.status in (400, 405, 415, 422):
            report.messages.append(f"in-place resize of {name} refused: {exc}")
            return "rollout"
        raise
    report.resized.append(name)
    report.states[name] = "Resized"
    return "resizing"
