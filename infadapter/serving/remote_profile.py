"""Profile a Triton that already runs anywhere (``infadapter profile --url``): no process, no cgroup, any hardware.

The server is what it is: its hardware (the cores or GPUs per replica the user states), its model
configurations. Each variant is one model on the server; its capacity at the SLO is searched exactly as
the local profiler searches it (:func:`infadapter.serving.search.search_capacity`: open-loop Poisson load
levels, grow then bisect, the client-side percentile against the SLO), and the serving configuration
it was measured with is read from the server (platform/backend, instance groups, batching, version) and
recorded beside the capacity (:mod:`infadapter.serving.profile_store`).

Everything the user can get wrong is checked before the first load level: the URL's form, that a
Triton answers there and is live, that every model is ready.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from infadapter.errors import FieldError, InvalidInput
from infadapter.loadgen import LoadGenerator, LoadReport
from infadapter.serving.profiler import serial_latency_ms
from infadapter.serving.search import RateStep, saturation_of, search_capacity, steady_step

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RemoteModel:
    """A variant served at ``url`` as ``model``, and how the server runs it."""

    variant: str
    model: str
    serving: dict[str, Any]


@dataclass(frozen=True)
class RemotePoint:
    variant: str
    capacity_rps: float
    tail_ms: float | None  # client-side latency at the capacity, at the SLO percentile
    saturation_rps: float  # the throughput ceiling (:func:`~infadapter.serving.search.saturation_of`)
    steps: tuple[RateStep, ...]


def host_port(url: str, option: str = "--url") -> str:
    """``host:port`` of ``http://host:port[/]`` or ``host:port``; InvalidInput naming ``option`` otherwise."""
    text = url.strip()
    hint = "write http://HOST:PORT, e.g. http://127.0.0.1:8000 (Triton's HTTP port)"
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput([FieldError(option, f"{url!r} is not a URL: {exc}", hint)], "arguments") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise InvalidInput([FieldError(option, f"{url!r} is not http://HOST:PORT", hint)], "arguments")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def _describe_config(config: Mapping[str, Any]) -> dict[str, Any]:
    groups = config.get("instance_group") or []
    kinds = [
        f"{g.get('count', 1)}:{str(g.get('kind', 'KIND_AUTO')).removeprefix('KIND_')}" + (f"@{','.join(str(d) for d in g['gpus'])}" if g.get("gpus") else "")
        for g in groups
    ]
    return {
        "platform": config.get("platform") or None,
        "backend": config.get("backend") or None,
        "instanceGroup": " ".join(kinds) or None,
        "maxBatchSize": int(config.get("max_batch_size", 0) or 0),
        "dynamicBatching": "dynamic_batching" in config,
    }


def probe(url: str, models: Mapping[str, str], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[RemoteModel]:
    """Check the server at ``url`` and every ``{variant: model}``; read what runs each model."""
    from tritonclient import http
    from tritonclient.utils import InferenceServerException

    target = host_port(url)
    client = http.InferenceServerClient(target, connection_timeout=timeout_s, network_timeout=timeout_s)
    try:
        try:
            live = client.is_server_live()
            meta = client.get_server_metadata() if live else {}
        except (OSError, InferenceServerException) as exc:
            raise InvalidInput(
                [FieldError("--url", f"no Triton answers at {url}: {exc}", "start the server, or check the host and HTTP port")], "arguments"
            ) from None
        if not live:
            raise InvalidInput([FieldError("--url", f"the server at {url} is not live", "wait until it is, or check the HTTP port")], "arguments")
        found, errors = [], []
        for variant, model in models.items():
            if not client.is_model_ready(model):
                errors.append(
                    FieldError(
                        "--model",
                        f"the server at {url} has no ready model {model!r} (for variant {variant})",
                        f"serve it, or map the variant: --model {variant}=NAME ({_served(client)})",
                    )
                )
                continue
            serving = {
                "tool": "infadapter",
                "url": url,
                "model": model,
                **_describe_config(client.get_model_config(model)),
                "tritonVersion": meta.get("version"),
            }
            found.append(RemoteModel(variant, model, {k: v for k, v in serving.items() if v is not None}))
        if errors:
            raise InvalidInput(errors, "arguments")
        return found
    finally:
        client.close()


def _served(client: Any) -> str:
    from tritonclient.utils import InferenceServerException

    try:
        index = client.get_model_repository_index()
    except (OSError, InferenceServerException):
        return "its repository index is not readable"
    names = sorted({str(m.get("name")) for m in index if m.get("state") == "READY"})
    return f"it serves {', '.join(names)[:200]}" if names else "it serves no ready model"


class RemoteProfiler:
    """The local profiler's search, against models that already run at ``url``."""

    def __init__(
        self,
        url: str,
        slo_ms: float,
        percentile: float = 99.0,
        *,
        duration_s: float = 3.0,
        max_steps: int = 5,
        tolerance: float = 0.1,
        on_step: Callable[[str, RateStep], None] | None = None,
    ) -> None:
        self.url = host_port(url)
        self.slo_ms = slo_ms
        self.percentile = percentile
        self.duration_s = duration_s
        self.max_steps = max_steps
        self.tolerance = tolerance
        self.on_step = on_step

    def guess_rps(self, target: RemoteModel) -> float:
        """A first rate: the serial rate times the instances that can run at once (0.8 of it)."""
        serial_ms = serial_latency_ms(self.url, target.model)
        instances = sum(int(part.split(":")[0]) for part in str(target.serving.get("instanceGroup") or "1:").split())
        batching = max(1, int(target.serving.get("maxBatchSize", 0) or 0)) if target.serving.get("dynamicBatching") else 1
        return 0.8 * max(1, instances) * batching * 1000.0 / max(serial_ms, 1e-3)

    def measure(self, target: RemoteModel) -> RemotePoint:
        timeout_s = max(10.0, 2.0 * self.duration_s + self.slo_ms / 1000.0)
        gen = LoadGenerator(self.url, target.model, slo_ms=self.slo_ms, timeout_s=timeout_s)

        def measure(rate_rps: float) -> LoadReport:
            return gen.run_constant(rate_rps, self.duration_s)

        def report(step: RateStep) -> None:
            if self.on_step is not None:
                self.on_step(target.variant, step)

        capacity, best, steps = search_capacity(
            measure, self.guess_rps(target), self.percentile, max_steps=self.max_steps, tolerance=self.tolerance, on_step=report
        )
        steady = steady_step(measure, capacity, steps, self.duration_s, self.percentile, tolerance=self.tolerance)
        if steady is not None:  # a failing step overloaded the server: a capacity near its ceiling is re-measured
            capacity, best, added = steady
            steps.extend(added)
            for step in added:
                report(step)
        tail = None if best is None else best.report.percentile_ms(_nearest(self.percentile))
        saturation = saturation_of(steps) or 0.0  # as the local profiler's: what the heaviest overloaded step answered
        return RemotePoint(target.variant, round(capacity, 2), None if tail is None or math.isnan(tail) else round(tail, 1), round(saturation, 2), tuple(steps))

    def profile(self, targets: Sequence[RemoteModel]) -> list[RemotePoint]:
        return [self.measure(t) for t in targets]


def _nearest(percentile: float) -> float:
    """The LoadReport percentile reported for ``percentile`` (it records p50, p95 and p99)."""
    return 99.0 if percentile >= 99 else 95.0 if percentile >= 95 else 50.0
