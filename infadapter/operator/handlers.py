"""kopf handlers: validate, initialise, delegate. The work is in :mod:`infadapter.operator.tick`.

* startup: settings from the environment, the API client, the Prometheus observer, the metrics exporter;
* login: in-cluster service account, else kubeconfig (``INFADAPTER_KUBE_SERVER`` overrides, for tests);
* create/update/resume: parse the spec — an invalid one is a ``PermanentError`` naming every field, with
  ``Degraded=True`` (reason ``InvalidSpec``) in the status;
* a per-resource timer wakes every ``timer_resolution_s`` and runs a step of the controller when one is due
  (:mod:`infadapter.operator.tick`: every scrape interval, at the controller's expected changes, and at every
  wake during a transition);
* delete: forget the resource's metrics (owned objects go with it through their ownerReferences).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from infadapter.errors import InvalidSpec
from infadapter.metrics.exporter import InfAdapterMetrics
from infadapter.metrics.prometheus import Observer
from infadapter.operator.memory import Memory, Resource, Runtime
from infadapter.operator.settings import OperatorConfig
from infadapter.operator.status import Condition, merge_conditions, status_changes
from infadapter.operator.tick import run_step
from infadapter.runtime.kube.client import Connection, KubeApi
from infadapter.runtime.kube.objects import GROUP, PLURAL, VERSION, Owner
from infadapter.spec import parse_resource

log = logging.getLogger(__name__)

RESOURCE = (GROUP, VERSION, PLURAL)
#: the runtime of the operator running in this process (benchmarks and debugging read its tick timings)
RUNTIMES: list[Runtime] = []
#: how often each resource's timer wakes to check whether its tick is due (read once, at import)
TIMER_RESOLUTION_S = OperatorConfig.from_env().timer_resolution_s


def _connection_info(config: OperatorConfig, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    if config.kube_server:
        return kopf.ConnectionInfo(server=config.kube_server, insecure=True, default_namespace="default")
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: not in a cluster and no kubeconfig")
    return info


def _connection(info: kopf.ConnectionInfo) -> Connection:
    token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token" if info.token and info.server.startswith("https://kubernetes") else None
    return Connection(
        server=info.server,
        token=None if token_path else info.token,
        token_path=token_path,
        ca_path=str(info.ca_path) if info.ca_path else None,
        ca_data=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
        cert_path=str(info.certificate_path) if info.certificate_path else None,
        key_path=str(info.private_key_path) if info.private_key_path else None,
        insecure=bool(info.insecure),
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_env()
    settings.posting.loggers = False  # events are posted explicitly: one per applied plan, one per error
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    settings.batching.error_delays = [1, 2, 5, 10, 30]
    memo.config = config
    memo.runtime = Runtime(
        config=config,
        api=KubeApi(Connection(server=config.kube_server or "https://kubernetes.default.svc")),  # set by login
        observer=Observer(
            config.prometheus_url,
            timeout_s=config.prometheus_timeout_s,
            retries=0,
            scrape_interval_s=config.scrape_interval_s,
            ca_file=config.prometheus_ca_file or None,
            token_file=config.prometheus_token_file or None,
        ),
        metrics=InfAdapterMetrics(),
    )
    RUNTIMES.append(memo.runtime)
    del RUNTIMES[:-4]
    if config.metrics_port:
        memo.runtime.metrics.serve(config.metrics_port, "0.0.0.0")
    log.info("infadapter operator started: prometheus=%s policy=%s", config.prometheus_url, config.policy)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        await runtime.api.close()
        runtime.observer.close()
        if runtime.metrics is not None:
            runtime.metrics.close()


@kopf.on.login()
async def login(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """The same credentials for kopf and for our API client (which creates the owned objects)."""
    info = _connection_info(OperatorConfig.from_env(), settings)
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        await runtime.api.close()
        runtime.api.connection = _connection(info)
    return info


def _resource(body: kopf.Body, status: Mapping[str, Any]) -> Resource:
    """Parse the spec (raises InvalidSpec) and collect what the tick needs."""
    raw = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": dict(body.metadata), "spec": dict(body.spec)}
    parsed = parse_resource(raw, f"{body.metadata.namespace}/{body.metadata.name}")
    owner = Owner(name=str(body.metadata.name), namespace=str(body.metadata.namespace), uid=str(body.metadata.uid))
    return Resource(owner, int(body.metadata.get("generation") or 0), dict(body.metadata.annotations), parsed.spec, dict(status))


def _now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(exc: InvalidSpec, body: kopf.Body, status: Mapping[str, Any], patch: kopf.Patch) -> kopf.PermanentError:
    message = "; ".join(str(e) for e in exc.errors) or str(exc)
    generation = int(body.metadata.get("generation") or 0)
    conditions = [
        Condition("Ready", False, "InvalidSpec", message),
        Condition("Degraded", True, "InvalidSpec", message),
    ]
    desired = {"observedGeneration": generation, "conditions": merge_conditions(status.get("conditions") or [], conditions, _now_iso(), generation)}
    patch.status.update(status_changes(status, desired))
    return kopf.PermanentError(f"invalid InferenceService: {message}")


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def validate(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Refuse an invalid spec with every field's message; a valid one is picked up by the timer."""
    try:
        _resource(body, status)
    except InvalidSpec as exc:
        error = _invalid(exc, body, status, patch)
        kopf.event(body, type="Warning", reason="InvalidSpec", message=str(error))
        raise error from None


# an unexpected failure is retried after 5 s, not kopf's default minute: the step is idempotent
@kopf.timer(*RESOURCE, interval=TIMER_RESOLUTION_S, backoff=5)
async def adapt(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """A controller step when one is due: observe → decide → act → report."""
    runtime: Runtime = memo.runtime
    mem = _object_memory(memo)
    try:
        res = _resource(body, status)
    except InvalidSpec:
        return  # reported by the validate handler; nothing runs until the spec is fixed
    outcome = await run_step(runtime, mem, res)
    if outcome is None:
        return
    if outcome.status:
        patch.status.update(outcome.status)
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)
        log.log(logging.WARNING if type_ == "Warning" else logging.INFO, "%s/%s %s: %s", res.owner.namespace, res.owner.name, reason, message)


def _object_memory(memo: kopf.Memo) -> Memory:
    found = getattr(memo, "service", None)
    if not isinstance(found, Memory):
        found = Memory()
        memo.service = found
    return found


@kopf.on.delete(*RESOURCE, optional=True)
def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        runtime.pools.forget(str(body.metadata.namespace), str(body.metadata.name))  # its share returns to the pool
    if runtime is not None and runtime.metrics is not None:
        runtime.metrics.forget(str(body.metadata.namespace), str(body.metadata.name))


__all__ = ["adapt", "cleanup", "forget", "login", "startup", "validate"]


def run(namespaces: list[str], *, peering: str = "", priority: int | None = None, liveness: str = "", log_format: str = "plain", verbose: bool = False) -> None:
    """Run the operator until stopped (what ``infadapter operator`` calls).

    With peering, replicas of the same priority would all pause (kopf's rule): each replica takes a random
    priority unless one is given, so exactly one — the highest — acts, and the next takes over when it goes.
    """
    import asyncio
    import secrets

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=not peering,
            peering_name=peering or None,
            priority=(priority if priority is not None else secrets.randbelow(1_000_000) + 1) if peering else None,
            liveness_endpoint=liveness or None,
        )
    )
