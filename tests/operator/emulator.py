"""The Kubernetes API emulator for the operator tests: kmock plus the realism kopf and the operator need.

``kmock.KubernetesScaffold`` gives the HTTP server, request parsing, discovery and request recording;
this layer adds what a real API server does and kmock 0.8 does not:

* uid, resourceVersion (one global counter), generation (bumped on spec changes), creationTimestamp;
* namespaces (writes into a missing namespace are 404), label selectors, PUT with resourceVersion
  preconditions (409 Conflict), merge / strategic-merge / JSON patches, 409 AlreadyExists;
* the status subresource isolated from the main endpoint; ``pods/resize``;
* CRD registration (a created CRD becomes a served, discoverable resource) and admission validation of
  InferenceServices against the CRD schema (422 with field messages, as ``kubectl apply`` shows);
* watches from a resourceVersion with an event log (410 Gone when too old), ``timeoutSeconds``;
* finalizers + deletionTimestamp, garbage collection of dependents through ownerReferences;
* a small Deployment controller: pods per replica (template changes replace pods, new before old),
  readiness after ``ready_delay_s``, Deployment status;
* fault injection: 500s, 409s, lost responses (the server applies the change, the client never hears).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock

from tests.operator.crdschema import CrdValidator

Key = tuple[str, str, str]  # (resource "group/version/plural", namespace or "", name)

CORE = {
    "v1/namespaces": ("Namespace", False, ()),
    "v1/pods": ("Pod", True, ("status", "resize")),
    "v1/services": ("Service", True, ("status",)),
    "v1/configmaps": ("ConfigMap", True, ()),
    "v1/secrets": ("Secret", True, ()),
    "v1/events": ("Event", True, ()),
    "apps/v1/deployments": ("Deployment", True, ("status", "scale")),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, ("status",)),
    "gateway.networking.k8s.io/v1/httproutes": ("HTTPRoute", True, ("status",)),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True, ("status",)),
}
SPEC_FREE = {"metadata", "status", "apiVersion", "kind"}


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any, strategic: bool = False) -> Any:
    """RFC 7386; ``strategic``: lists of named dicts merge by ``name`` (containers), as the API server does."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif strategic and isinstance(value, list) and isinstance(result.get(key), list) and all(isinstance(v, Mapping) and "name" in v for v in value):
            merged = {item["name"]: item for item in result[key] if isinstance(item, Mapping)}
            for item in value:
                merged[item["name"]] = merge_patch(merged.get(item["name"], {}), item, strategic)
            result[key] = list(merged.values())
        else:
            result[key] = merge_patch(result.get(key), value, strategic)
    return result


def selector_matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.strip().rstrip("=")) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class ApiFailure(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})


@dataclass
class Fault:
    """Fail the next ``times`` requests matching ``method`` and ``plural`` (and ``name`` when given)."""

    method: str
    plural: str
    outcome: str  # "500", "409", "lost" (applied, response dropped), "slow"
    times: int = 1
    name: str | None = None
    hits: int = 0

    def matches(self, method: str, plural: str, name: str | None) -> bool:
        return self.times > 0 and method == self.method and plural == self.plural and (self.name is None or self.name == name)


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesScaffold):
    objects: dict[Key, dict[str, Any]] = attrs.field(factory=dict, init=False)
    by_resource: dict[str, dict[Key, dict[str, Any]]] = attrs.field(factory=dict, init=False)  # an index for lists
    kinds: dict[str, tuple[str, bool, tuple[str, ...]]] = attrs.field(factory=lambda: dict(CORE), init=False)
    history: list[tuple[int, str, str, dict[str, Any]]] = attrs.field(factory=list, init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)
    counts: dict[tuple[str, str], int] = attrs.field(factory=dict, init=False)
    validators: dict[str, CrdValidator] = attrs.field(factory=dict, init=False)
    ready_delay_s: float = 0.05
    resize_supported: bool = True
    controller_enabled: bool = True
    unready: set[str] = attrs.field(factory=set)  # deployment names whose pods never become ready
    resizes: list[str] = attrs.field(factory=list, init=False)
    max_history: int = 20_000
    _rv: int = attrs.field(default=0, init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, (kind, namespaced, subs) in self.kinds.items():
            self._declare(key, kind, namespaced, subs)
        self._put(("v1/namespaces", "", "default"), self._stamp({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}))

    def disable_resize(self) -> None:
        """A cluster without in-place resize: no ``pods/resize`` in discovery, 404 on the subresource."""
        self.resize_supported = False
        kind, namespaced, subs = self.kinds["v1/pods"]
        self._declare("v1/pods", kind, namespaced, tuple(s for s in subs if s != "resize"))

    def _declare(self, key: str, kind: str, namespaced: bool, subs: Iterable[str], short: Iterable[str] = ()) -> None:
        verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
        self.resources[key] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=verbs, subresources=set(subs), shortnames=set(short))
        self.kinds[key] = (kind, namespaced, tuple(subs))

    # ------------------------------------------------------------------ plumbing
    def _put(self, key: Key, obj: dict[str, Any]) -> None:
        self.objects[key] = obj
        self.by_resource.setdefault(key[0], {})[key] = obj

    def _drop(self, key: Key) -> None:
        self.objects.pop(key, None)
        self.by_resource.get(key[0], {}).pop(key, None)

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(self._rv)
        return obj

    async def _emit(self, resource: str, type_: str, obj: dict[str, Any]) -> None:
        self.history.append((self._rv, resource, type_, copy.deepcopy(obj)))
        if len(self.history) > self.max_history:
            del self.history[: self.max_history // 2]
        async with self.changed:
            self.changed.notify_all()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _trim_requests(self) -> None:
        if len(self._requests) > 2000:  # kmock keeps every request: bound the memory of long runs
            del self._requests[:1000]

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is None or not res.plural:
            return await super()._handle(request)
        self._trim_requests()
        key = f"{res.version}/{res.plural}" if res.group == "" else f"{res.group}/{res.version}/{res.plural}"
        method = request.method.value.upper() if request.method is not None else "GET"
        self.counts[(method, res.plural)] = self.counts.get((method, res.plural), 0) + 1
        fault = next((f for f in self.faults if f.matches(method, res.plural, request.name)), None)
        if fault is not None:
            fault.times -= 1
            fault.hits += 1
            if fault.outcome in ("500", "409"):
                code = int(fault.outcome)
                return self._status(code, "InternalError" if code == 500 else "Conflict", f"injected fault ({fault.outcome})")
            if fault.outcome == "slow":
                await asyncio.sleep(2.0)
        try:
            if key not in self.kinds:
                raise ApiFailure(404, "NotFound", f"the server could not find the requested resource ({key})")
            response = await self._serve(request, key, method)
        except ApiFailure as exc:
            response = self._status(exc.code, exc.reason, exc.message, exc.details)
        if fault is not None and fault.outcome == "lost":
            raw = request._raw_request
            if raw is not None and raw.transport is not None:
                raw.transport.abort()  # the change is made; the client never hears of it
        return response

    @staticmethod
    def _status(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> aiohttp.web.Response:
        body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": code, "reason": reason, "message": message}
        if details:
            body["details"] = dict(details)
        return aiohttp.web.json_response(body, status=code)

    # ------------------------------------------------------------------ verbs
    async def _serve(self, request: kmock.Request, key: str, method: str) -> aiohttp.web.StreamResponse:
        kind, namespaced, subs = self.kinds[key]
        ns = (request.namespace or "") if namespaced else ""
        name, sub = request.name, request.subresource
        params = request.params
        if sub and sub not in subs:
            raise ApiFailure(404, "NotFound", f"{key} has no subresource {sub!r}")
        if sub == "resize" and not self.resize_supported:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource (pods/resize)")
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(request, key, ns, params)
        if method == "GET" and name is None:
            items = [o for (_, n, _), o in sorted(self.by_resource.get(key, {}).items()) if not ns or n == ns]
            items = [o for o in items if selector_matches(params.get("labelSelector"), o["metadata"].get("labels", {}))]
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": f"{kind}List", "metadata": {"resourceVersion": str(self._rv)}, "items": items})
        if method == "POST" and name is None:
            return aiohttp.web.json_response(await self.create(key, ns, request.data or {}), status=201)
        assert name is not None
        current = self.objects.get((key, ns, name))
        if current is None and method == "PATCH" and "apply-patch" in str(request.headers.get("Content-Type", "")) and sub is None:
            return aiohttp.web.json_response(await self.create(key, ns, request.data or {}), status=201)  # server-side apply creates
        if current is None:
            raise ApiFailure(404, "NotFound", f'{key.rsplit("/", 1)[-1]} "{name}" not found')
        if method == "GET":
            return aiohttp.web.json_response(current)
        if method == "DELETE":
            return aiohttp.web.json_response(await self.delete(key, ns, name))
        if method in ("PATCH", "PUT"):
            ctype = request.headers.get("Content-Type", "application/merge-patch+json")
            return aiohttp.web.json_response(await self.update(key, ns, name, request.data, sub, method, ctype))
        raise ApiFailure(405, "MethodNotAllowed", f"{method} is not supported")

    def _check_namespace(self, ns: str) -> None:
        if ns and ("v1/namespaces", "", ns) not in self.objects:
            raise ApiFailure(404, "NotFound", f'namespaces "{ns}" not found')

    def _admit(self, key: str, obj: Mapping[str, Any]) -> None:
        validator = self.validators.get(key)
        if validator is None:
            return
        errors = validator.errors(obj)
        if errors:
            name = obj.get("metadata", {}).get("name", "")
            message = f'{self.kinds[key][0]}.{key.split("/", maxsplit=1)[0]} "{name}" is invalid: ' + ", ".join(errors)
            raise ApiFailure(422, "Invalid", message, {"causes": [{"message": e} for e in errors]})

    async def create(self, key: str, ns: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiFailure(422, "Invalid", "metadata.name: Required value")
        if ns:
            meta["namespace"] = ns
            self._check_namespace(ns)
        if (key, ns, name) in self.objects:
            raise ApiFailure(409, "AlreadyExists", f'{key.rsplit("/", 1)[-1]} "{name}" already exists')
        self._admit(key, obj)
        for volatile in ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp"):
            meta.pop(volatile, None)
        if "status" in self.kinds[key][2]:
            obj.pop("status", None) if key != "v1/pods" else None
        self._stamp(obj)
        self._put((key, ns, name), obj)
        await self._emit(key, "ADDED", obj)
        if key.endswith("customresourcedefinitions"):
            self._register_crd(obj)
        if key == "apps/v1/deployments" and self.controller_enabled:
            self._spawn(self._reconcile_deployment(ns, name))
        return obj

    async def update(self, key: str, ns: str, name: str, body: Any, sub: str | None, method: str, ctype: str) -> dict[str, Any]:
        current = self.objects[(key, ns, name)]
        if method == "PUT":
            new = copy.deepcopy(body)
            want_rv = (body or {}).get("metadata", {}).get("resourceVersion")
        elif "json-patch" in ctype:
            new = jsonpatch.apply_patch(copy.deepcopy(current), body)
            want_rv = None
        else:
            # server-side apply (apply-patch) is approximated by a strategic merge: the faults tested here do not
            # depend on field ownership, which the real control plane tier (tests/cluster) exercises
            new = merge_patch(current, body or {}, strategic="strategic" in ctype or "apply-patch" in ctype)
            want_rv = (body or {}).get("metadata", {}).get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise ApiFailure(409, "Conflict", f'Operation cannot be fulfilled on {key.rsplit("/", 1)[-1]} "{name}": the object has been modified')
        has_status = "status" in self.kinds[key][2]
        if sub == "status":  # only the status moves
            new = {**copy.deepcopy(current), "status": new.get("status", {})}
        elif sub == "resize":
            new = self._resized(current, new)
        elif has_status:
            new["status"] = copy.deepcopy(current.get("status", {}))
            if new["status"] == {} and "status" not in current:
                new.pop("status")
        meta = new.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "namespace", "name"):
            if fixed in current["metadata"]:
                meta[fixed] = current["metadata"][fixed]
        meta["generation"] = current["metadata"].get("generation", 1)
        if sub is None and {k: v for k, v in new.items() if k not in SPEC_FREE} != {k: v for k, v in current.items() if k not in SPEC_FREE}:
            meta["generation"] += 1
        if sub is None:
            self._admit(key, new)
        if new == current:
            return current
        self._stamp(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._drop((key, ns, name))
            await self._emit(key, "DELETED", new)
            self._spawn(self._collect(meta["uid"]))
            return new
        self._put((key, ns, name), new)
        await self._emit(key, "MODIFIED", new)
        if key == "apps/v1/deployments" and sub is None and self.controller_enabled:
            self._spawn(self._reconcile_deployment(ns, name))
        return new

    def _resized(self, current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(current)
        wanted = {c["name"]: c.get("resources", {}) for c in new.get("spec", {}).get("containers", [])}
        for container in result["spec"]["containers"]:
            if container["name"] in wanted:
                container["resources"] = merge_patch(container.get("resources", {}), wanted[container["name"]])
        for status in result.get("status", {}).get("containerStatuses", []):
            if status["name"] in wanted:
                status["resources"] = next(c["resources"] for c in result["spec"]["containers"] if c["name"] == status["name"])
        self.resizes.append(result["metadata"]["name"])
        return result

    async def delete(self, key: str, ns: str, name: str) -> dict[str, Any]:
        current = self.objects[(key, ns, name)]
        meta = current["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = _now()
                self._stamp(new)
                self._put((key, ns, name), new)
                await self._emit(key, "MODIFIED", new)
                return new
            return current
        self._drop((key, ns, name))
        self._rv += 1
        await self._emit(key, "DELETED", current)
        self._spawn(self._collect(meta["uid"]))
        return current

    async def _collect(self, uid: str) -> None:
        """The garbage collector: dependents of a deleted owner go too (in the background)."""
        await asyncio.sleep(0.01)
        for (key, ns, name), obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences", [])
            if any(r.get("uid") == uid for r in refs) and (key, ns, name) in self.objects:
                await self.delete(key, ns, name)

    # ------------------------------------------------------------------ watching
    async def _watch(self, request: kmock.Request, key: str, ns: str, params: Mapping[str, str]) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        selector = params.get("labelSelector")
        since = int(params.get("resourceVersion") or 0)
        timeout_s = float(params.get("timeoutSeconds") or 3600)
        deadline = asyncio.get_running_loop().time() + timeout_s

        def wanted(res: str, obj: Mapping[str, Any]) -> bool:
            meta = obj.get("metadata", {})
            return res == key and (not ns or meta.get("namespace") == ns) and selector_matches(selector, meta.get("labels", {}))

        if since == 0:
            for (res, _, _), obj in sorted(self.by_resource.get(key, {}).items()):
                if wanted(res, obj):
                    await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            since = self._rv
        elif self.history and since < self.history[0][0] - 1:
            gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "code": 410, "reason": "Expired", "message": "too old resource version"}}
            await response.write(json.dumps(gone).encode() + b"\n")
            return response
        try:
            while True:
                fresh = []
                for entry in reversed(self.history):  # only what is newer than what was sent
                    if entry[0] <= since:
                        break
                    fresh.append(entry)
                for _, res, type_, obj in reversed(fresh):
                    if wanted(res, obj):
                        await response.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
                since = max(since, self._rv)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                async with self.changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 5.0))
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        return response

    # ------------------------------------------------------------------ CRDs
    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            key = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
            subs = tuple(version.get("subresources", {}))
            self._declare(key, spec["names"]["kind"], spec["scope"] == "Namespaced", subs, spec["names"].get("shortNames", ()))
            if spec["group"] == "infadapter.io":
                self.validators[key] = CrdValidator(crd)

    async def add_namespace(self, name: str) -> None:
        if ("v1/namespaces", "", name) not in self.objects:
            await self.create("v1/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # ------------------------------------------------------------------ the Deployment controller
    async def _reconcile_deployment(self, ns: str, name: str) -> None:
        await asyncio.sleep(self.ready_delay_s)
        deployment = self.objects.get(("apps/v1/deployments", ns, name))
        if deployment is None:
            return
        template = deployment["spec"]["template"]
        revision = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        replicas = int(deployment["spec"].get("replicas", 1))
        uid = deployment["metadata"]["uid"]
        pods = {k: o for k, o in self.by_resource.get("v1/pods", {}).items() if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))}
        current = [k for k, o in pods.items() if o["metadata"]["labels"].get("pod-template-hash") == revision]
        ready = name not in self.unready
        for i in range(len(current), replicas):  # make (new pods first) ...
            pod = self._pod(deployment, revision, i, ready)
            await self.create("v1/pods", ns, pod)
        for key in current[replicas:]:
            await self.delete(*key)
        for key in [k for k in pods if k not in current]:  # ... then break (old revision)
            await self.delete(*key)
        status = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready else 0,
            "availableReplicas": replicas if ready else 0,
        }
        if self.objects.get(("apps/v1/deployments", ns, name), {}).get("metadata", {}).get("uid") == uid:
            await self.update("apps/v1/deployments", ns, name, {"status": status}, "status", "PATCH", "application/merge-patch+json")

    def _pod(self, deployment: Mapping[str, Any], revision: str, index: int, ready: bool) -> dict[str, Any]:
        template = copy.deepcopy(deployment["spec"]["template"])
        meta = deployment["metadata"]
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"], "controller": True}
        containers = template["spec"].get("containers", [])
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{revision}-{index}-{uuid.uuid4().hex[:5]}",
                "labels": {**template.get("metadata", {}).get("labels", {}), "pod-template-hash": revision},
                "ownerReferences": [owner],
            },
            "spec": template["spec"],
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [{"name": c["name"], "ready": ready, "restartCount": 0, "resources": c.get("resources", {})} for c in containers],
            },
        }


def objects_of(emulator: Emulator, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return [o for (k, n, _), o in emulator.objects.items() if k.endswith("/" + plural) and (namespace is None or n == namespace)]
