"""Write Kubernetes objects as the operator's field manager, only when the live object differs (pure helpers + I/O).

:func:`ensure` creates an object, or server-side applies our whole intent for it, when the live one (as the
API server stores it: canonical quantities, empty lists dropped, defaults added) does not already hold what
we want — so at steady state nothing is written. It refuses to touch a same-named object that this service
does not own. The make-before-break rule is not here: the controller (:mod:`infadapter.control`) decides
what runs, :mod:`infadapter.runtime.kube.actuator` turns its action into objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from infadapter.errors import ApplyFailed
from infadapter.runtime.kube.client import KubeApi, api_path
from infadapter.runtime.kube.objects import Owner, is_owned, object_name, parse_cpu_quantity, parse_quantity
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

PLURALS = {
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
    "ConfigMap": ("v1", "configmaps"),
    "HTTPRoute": ("gateway.networking.k8s.io/v1", "httproutes"),
    "Pod": ("v1", "pods"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
}


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
        a, b = parse_quantity(live), parse_quantity(want)
        return a is not None and a == b
    return False


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping | list) and not value)


def _body(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


async def ensure(
    api: KubeApi, obj: Mapping[str, Any], owner: Owner, changes: list[str], known: Mapping[tuple[str, str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Server-side apply ``obj`` (creating it) unless the live object holds it; never touch a same-named object we do not own.

    ``known``: live objects already listed by label; one absent from it is read by name first, and a
    same-named object without our ownership is refused. Nothing is sent when the live object already
    holds what we want: at steady state the operator makes no writes.
    """
    path = object_path(obj)
    what = f"{obj['kind']}/{obj['metadata']['name']}"
    live = known.get((obj["kind"], obj["metadata"]["name"])) if known is not None else None
    if live is None:
        # not among ours: a same-named object of someone else must not be taken over. Created by server-side
        # apply, so every field is ours under one manager and a field we stop sending is removed later
        live = await api.get(path)
        if live is None:
            created = await api.apply(path, obj)
            changes.append(f"created {what}")
            return created
    if not is_owned(live, owner):
        raise ApplyFailed(f"{what} exists in {owner.namespace} and is not owned by InferenceService {owner.name}; rename or delete it")
    meta = obj["metadata"]
    want_meta = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    if contains(live.get("metadata", {}), want_meta) and contains(_body(live), _body(obj)):
        return live
    patched = await api.apply(path, obj)
    changes.append(f"applied {what}")
    return patched


def template_size(live: Mapping[str, Any] | None) -> tuple[float, int] | None:
    """(cpu cores, gpus) of the live Deployment's Triton template.

    GPUs are its extended resources (a domain-prefixed name: ``nvidia.com/gpu``, an accelerator type's
    own ``resource``); the template requests those of one type only.
    """
    if live is None:
        return None
    try:
        container = live["spec"]["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        return parse_cpu_quantity(limits["cpu"]), sum(int(v) for k, v in limits.items() if "/" in k)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def weights_from(known: Mapping[tuple[str, str], Mapping[str, Any]], owner: Owner, spec: InferenceServiceSpec) -> dict[str, int]:
    """The weights the router holds now (the weights ConfigMap or the HTTPRoute); {} when none yet."""
    if spec.routing.kind == "GatewayAPI":
        route = known.get(("HTTPRoute", owner.name))
        if route is None:
            return {}
        refs = route.get("spec", {}).get("rules", [{}])[0].get("backendRefs", [])
        by_service = {object_name(owner.name, v): v for v in spec.variant_names}
        return {by_service[r["name"]]: int(r.get("weight", 0)) for r in refs if r.get("name") in by_service}
    cm = known.get(("ConfigMap", object_name(owner.name, "router-weights")))
    if cm is None or not is_owned(cm, owner):
        return {}
    out: dict[str, int] = {}
    for name, value in (cm.get("data") or {}).items():
        try:
            out[name] = int(value)
        except ValueError:
            continue
    return out
