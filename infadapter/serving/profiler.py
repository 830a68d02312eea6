"""Measure each variant's capacity at the SLO on a real local Triton, per CPU size.

For every variant x CPU size: serve the variant alone in a ``tritonserver`` whose CPU is limited
(cgroup v1 quota; ``taskset`` to whole cores, with a warning, where cgroups are not writable), send
open-loop Poisson load (:class:`~infadapter.loadgen.LoadGenerator`) and search the rate: the
capacity is the highest rate at which the client-side ``percentile`` latency stays within the SLO,
i.e. at most ``(100 - percentile)`` % of requests are over the SLO or failed. The search starts from
a guess (a few serial requests, or the previous CPU size's capacity scaled), grows (x2 far below
the SLO, x1.5 near it) while the SLO holds, then bisects until the bracket is within ``tolerance``
(:mod:`infadapter.serving.search`). A step at twice the capacity (twice that again while the server keeps
up, :func:`~infadapter.serving.search.ceiling_steps`) then measures the server's throughput ceiling, and a
capacity too near that ceiling for a step to judge (its queue had not settled when the step ended) is
measured again lower (:func:`~infadapter.serving.search.steady_step`). A size whose ceiling per core falls well below
the next smaller size's is measured once more, and the higher ceiling kept (:data:`RECHECK_SHARE`).

Every size of a variant is measured with the serving configuration its deployed servers run with
(:func:`~infadapter.serving.repository.serving_for` of the variant's largest planned size, capped at this
machine's cores: the same instances at every size, as after an in-place resize), and the profile records
it per size (its ``serving`` section).

The result is a :class:`~infadapter.profiles.Profile` (``save_profile`` writes the YAML the solver
reads). Measured figures are written as measured; the Profile makes them monotone in CPU.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infadapter.errors import FieldError, InvalidInput
from infadapter.loadgen import LoadGenerator, LoadReport
from infadapter.planning import cpu_grid
from infadapter.profiles import Profile, ProfilePoint
from infadapter.serving.cpulimit import CpuCgroup, cgroup_v1_writable, taskset_prefix, weighted_self
from infadapter.serving.models import ensure_demo_models, resolve_model_uri
from infadapter.serving.repository import Serving, serving_for, write_repository
from infadapter.serving.search import RateStep, ceiling_steps, saturation_of, search_capacity, steady_step
from infadapter.serving.triton import TritonProcess
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

DEFAULT_CPUS = (0.25, 0.5, 1.0, 1.5)
#: the measurement's version in the profile cache's key: a cached profile measured by an earlier search is
#: measured again (2: a capacity near the ceiling is re-measured where a step sees the queue settle; 3: the
#: ceiling is what the heaviest overloaded step answered, not the most any step did; 4: a ceiling step the
#: server kept up with is followed by a heavier one)
METHOD = 5  # (5: a size whose ceiling per core falls well below the next smaller size's is measured again)

#: a size whose throughput ceiling per core is below this share of the next smaller size's is measured once more,
#: and the measurement with the higher ceiling kept (interference only slows a server). Over six profiles of the demo
#: measured here (90 pairs of adjacent sizes) three fell below it, each far from what the other five measured at that
#: size: ResNet-152 at 1.5 cores answering 13.8 rps (22.5-24.5 in the others), at 0.75 cores 5.0 (10.3-12.0) and at
#: 1.25 cores 13.3 (14.5-20.2); the next lowest pair was at 0.78
RECHECK_SHARE = 0.75


@dataclass(frozen=True)
class PointResult:
    variant: str
    cpu_cores: float
    capacity_rps: float
    p99_ms: float | None  # client-side tail at the capacity (the configured percentile)
    start_s: float  # seconds until Triton was ready
    steps: tuple[RateStep, ...] = field(default=())
    limiter: str = "cgroup"
    serving: Serving = field(default_factory=Serving)  # how the measured server ran (instances, threads)
    p50_ms: float | None = None  # client-side median at the capacity

    @property
    def saturation_rps(self) -> float | None:
        """The requests a second the server answered within its most heavily overloaded step: above its
        saturation the load's excess queues and is answered after the step, so this is its throughput limit
        (the most any step answered, a lower bound, when no step overloaded it)."""
        return saturation_of(self.steps)

    def point(self) -> ProfilePoint:
        """The profile's point of this measurement."""
        p50, p99, sat = self.p50_ms, self.p99_ms, self.saturation_rps
        return ProfilePoint(
            self.cpu_cores,
            self.capacity_rps,
            0,
            None if p99 is None else round(p99, 1),
            None if sat is None else round(max(sat, self.capacity_rps), 2),
            p50_ms=None if p50 is None else round(p50, 1),
            # what the load generator really sent, not the step's target: a client that fell short offered less
            max_offered_rps=round(max(s.report.achieved_rps for s in self.steps), 2) if self.steps else None,
        )


StepCallback = Callable[[str, float, RateStep], None]


def serial_latency_ms(url: str, model_name: str, count: int = 8) -> float:
    """Median latency of ``count`` one-at-a-time requests (after one warm-up)."""
    import numpy as np
    from tritonclient import http
    from tritonclient.utils import triton_to_np_dtype

    client = http.InferenceServerClient(url, connection_timeout=30.0, network_timeout=30.0)
    latencies: list[float] = []
    try:
        meta = client.get_model_metadata(model_name)
        first = meta["inputs"][0]
        shape = [max(1, int(d)) for d in first["shape"]]
        tensor = http.InferInput(first["name"], shape, first["datatype"])
        # any server's model (profile --url): zeros of the input's own type, not only FP32
        tensor.set_data_from_numpy(np.zeros(shape, dtype=triton_to_np_dtype(first["datatype"]) or np.float32), binary_data=True)
        for i in range(count + 1):
            started = time.monotonic()
            client.infer(model_name, [tensor])
            if i:
                latencies.append((time.monotonic() - started) * 1000.0)
    finally:
        client.close()
    return statistics.median(latencies)


class Profiler:
    """Runs the measurements; one Triton at a time, in a fresh repository per point."""

    def __init__(
        self,
        slo_ms: float,
        percentile: float = 99.0,
        *,
        duration_s: float = 3.0,
        max_steps: int = 5,
        tolerance: float = 0.1,
        work_dir: str | os.PathLike[str] | None = None,
        use_cgroup: bool | None = None,
        on_step: StepCallback | None = None,
    ) -> None:
        self.slo_ms = slo_ms
        self.percentile = percentile
        self.duration_s = duration_s
        self.max_steps = max_steps
        self.tolerance = tolerance
        self._own_work_dir = not work_dir
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="infadapter-profile-"))
        self.use_cgroup = cgroup_v1_writable() if use_cgroup is None else use_cgroup
        self.on_step = on_step
        if not self.use_cgroup:
            log.warning("cgroup v1 cpu controller not writable: CPU limits fall back to taskset (whole cores only)")

    def measure_point(
        self, variant: str, onnx_path: Path, model_name: str, cpu_cores: float, guess_rps: float | None = None, serving: Serving | None = None
    ) -> PointResult:
        """Capacity of one server of ``variant`` under a ``cpu_cores`` quota, run with ``serving`` (default: the
        configuration of a variant whose largest size is ``cpu_cores``)."""
        serving = serving if serving is not None else deployed_serving(cpu_cores)
        repo = self.work_dir / f"{variant}-{cpu_cores:g}"
        write_repository(repo, model_name, onnx_path, serving)
        cgroup = CpuCgroup(f"profile-{os.getpid()}-{variant}-{cpu_cores:g}").create(cpu_cores) if self.use_cgroup else None
        triton = TritonProcess(
            repo,
            cgroup=cgroup.path if cgroup else None,
            cpu_prefix=() if cgroup else taskset_prefix(cpu_cores),
            allow_grpc=False,
            log_path=self.work_dir / f"{variant}-{cpu_cores:g}.log",
            name=f"triton-{variant}",
            env=serving.env(),
        )
        try:
            start_s = triton.start(timeout_s=180.0)
            serial_ms = serial_latency_ms(triton.url, model_name)
            if guess_rps is None:
                # back-to-back requests already run at the quota's pace; parallel instances add up to the quota
                parallel = max(1.0, min(cpu_cores, serving.instance_count))
                guess_rps = 0.8 * parallel * 1000.0 / serial_ms
            timeout_s = max(10.0, 2.0 * self.duration_s + self.slo_ms / 1000.0)
            gen = LoadGenerator(triton.url, model_name, slo_ms=self.slo_ms, timeout_s=timeout_s)

            def measure(rate_rps: float) -> LoadReport:
                return gen.run_constant(rate_rps, self.duration_s)

            def report_step(step: RateStep) -> None:
                if self.on_step is not None:
                    self.on_step(variant, cpu_cores, step)

            capacity, best, steps = search_capacity(
                measure, guess_rps, self.percentile, max_steps=self.max_steps, tolerance=self.tolerance, on_step=report_step
            )
            for overload in ceiling_steps(measure, capacity, steps, self.percentile):
                steps.append(overload)
                report_step(overload)
            steady = steady_step(measure, capacity, steps, self.duration_s, self.percentile, tolerance=self.tolerance)
            if steady is not None:
                capacity, best, added = steady
                steps.extend(added)
                for step in added:
                    report_step(step)
        finally:
            triton.stop()
            if cgroup is not None:
                cgroup.remove()
        tail = None if best is None else _tail(best.report, self.percentile)
        median = None if best is None or math.isnan(best.report.p50_ms) else best.report.p50_ms
        limiter = "cgroup" if cgroup else "taskset"
        return PointResult(variant, cpu_cores, round(capacity, 2), tail, round(start_s, 3), tuple(steps), limiter, serving, median)

    def profile(
        self, models: dict[str, Path], model_name: str, cpus: Sequence[float], largest_cores: Mapping[str, float] | None = None
    ) -> tuple[Profile, list[PointResult]]:
        """Measure every variant (name -> ONNX file) at every CPU size (ascending).

        ``largest_cores``: per variant, the largest size it may be planned at (the spec's CPU grid), which
        fixes the instances of its servers at every size; a variant not in it: the largest of ``cpus``.
        """
        try:
            if not self.use_cgroup:
                return self._profile(models, model_name, cpus, largest_cores or {})
            with weighted_self(f"profiler-{os.getpid()}"):
                return self._profile(models, model_name, cpus, largest_cores or {})
        finally:
            if self._own_work_dir:  # repositories are symlinks; the logs went into failures' messages
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def _profile(
        self, models: dict[str, Path], model_name: str, cpus: Sequence[float], largest_cores: Mapping[str, float]
    ) -> tuple[Profile, list[PointResult]]:
        results: list[PointResult] = []
        points: dict[str, tuple[ProfilePoint, ...]] = {}
        records: dict[str, tuple[dict[str, object], ...]] = {}
        for variant, path in models.items():
            serving = deployed_serving(largest_cores.get(variant, max(cpus)))
            previous: PointResult | None = None
            row: list[ProfilePoint] = []
            for cpu in sorted(cpus):
                guess = None
                if previous is not None and previous.capacity_rps > 0:
                    guess = previous.capacity_rps * min(cpu / previous.cpu_cores, 1.8) * 0.9
                result = self.measure_point(variant, path, model_name, cpu, guess, serving)
                if previous is not None and below_trend(previous, result):
                    log.warning("%s at %g cores answered at most %.1f rps: measuring it again", variant, cpu, result.saturation_rps or 0.0)
                    again = self.measure_point(variant, path, model_name, cpu, guess, serving)
                    result = max(result, again, key=lambda r: r.saturation_rps or 0.0)
                results.append(result)
                row.append(result.point())
                previous = result
            points[variant] = tuple(row)
            records[variant] = serving_records(serving, sorted(cpus))
        source = f"infadapter profile: local tritonserver (python backend + ONNX Runtime), {os.cpu_count()} cores"
        return Profile(self.slo_ms, points, self.percentile, source, records), results


def below_trend(smaller: PointResult, point: PointResult) -> bool:
    """Whether ``point``'s throughput ceiling per core is below :data:`RECHECK_SHARE` of the next smaller size's
    (False where either ceiling is unknown)."""
    low, high = smaller.saturation_rps, point.saturation_rps
    if low is None or high is None or low <= 0.0 or smaller.cpu_cores <= 0.0:
        return False
    return high / point.cpu_cores < RECHECK_SHARE * low / smaller.cpu_cores


def deployed_serving(largest_cores: float) -> Serving:
    """The serving configuration of a variant's servers on this machine: the embedded runtime's rule
    (:func:`serving_for` of its largest size, capped at this machine's cores)."""
    return serving_for(largest_cores, float(os.cpu_count() or 1))


def serving_records(serving: Serving, cpus: Sequence[float]) -> tuple[dict[str, object], ...]:
    """The profile's ``serving`` entries of one variant: per measured size, how its server ran."""
    return tuple({"cpu": cpu, "gpus": 0, **serving.record("python")} for cpu in cpus)


def _tail(report: LoadReport, percentile: float) -> float:
    return report.p99_ms if percentile >= 99 else report.p95_ms if percentile >= 95 else report.p50_ms


def spec_models(spec: InferenceServiceSpec, variants: Sequence[str] | None = None, models_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Variant name -> local ONNX file, building missing demo models (``models://``) first."""
    chosen = [v for v in spec.variants if not variants or v.name in variants]
    unknown = sorted(set(variants or ()) - {v.name for v in spec.variants})
    if unknown:
        hint = f"use some of {', '.join(spec.variant_names)}"
        raise InvalidInput([FieldError("variants", f"{n!r} is not a variant of the spec", hint) for n in unknown], "profile")
    ensure_demo_models([v.source.uri for v in chosen], models_dir)
    return {v.name: resolve_model_uri(v.source.uri or f"models://{v.name}", models_dir) for v in chosen}


def parse_cpus(text: str) -> list[float]:
    try:
        cpus = sorted({float(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise InvalidInput([FieldError("cpus", f"{text!r} is not a comma-separated list of numbers", "write e.g. 0.25,0.5,1")], "profile") from None
    if not cpus or not all(0 < c <= 1024 for c in cpus):  # also refuses nan and inf
        raise InvalidInput([FieldError("cpus", f"{text!r}: CPU sizes must be finite, > 0 and <= 1024", "write e.g. 0.25,0.5,1")], "profile")
    return cpus


def profile_spec(
    spec: InferenceServiceSpec,
    cpus: Sequence[float] = DEFAULT_CPUS,
    *,
    slo_ms: float | None = None,
    duration_s: float = 3.0,
    max_steps: int = 5,
    variants: Sequence[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    on_step: StepCallback | None = None,
) -> tuple[Profile, list[PointResult]]:
    """Profile a spec's variants (building missing demo models) — what ``infadapter profile`` does, in-process."""
    models = spec_models(spec, variants, models_dir)
    profiler = Profiler(slo_ms if slo_ms is not None else spec.slo.latency_ms, spec.slo.percentile, duration_s=duration_s, max_steps=max_steps, on_step=on_step)
    return profiler.profile(models, spec.model_name, cpus, largest_planned_cores(spec))


def largest_planned_cores(spec: InferenceServiceSpec) -> dict[str, float]:
    """Per variant, the largest size the solver may plan (its CPU grid's), as the runtimes size servers by."""
    return {v: max(cpu_grid(spec, v), default=1.0) for v in spec.variant_names}


def profile_cache_path(
    spec: InferenceServiceSpec,
    cpus: Sequence[float],
    slo_ms: float | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Where a profile of exactly these models, CPU sizes, SLO and machine is cached.

    The key covers the model files' hashes (from their manifests, else size+mtime), the CPU sizes,
    the SLO and percentile, the core count and :data:`METHOD`, so a rebuilt model, another SLO or a profile
    measured by an earlier search gets a new file.
    """
    import hashlib
    import json

    from infadapter.serving.models import default_models_dir, read_manifest

    parts: list[object] = [METHOD, sorted(cpus), slo_ms if slo_ms is not None else spec.slo.latency_ms, spec.slo.percentile, os.cpu_count()]
    for v in spec.variants:
        path = resolve_model_uri(v.source.uri or f"models://{v.name}", models_dir)
        manifest = read_manifest(path) or {}
        stat = path.stat()
        parts.append([v.name, manifest.get("sha256") or f"{stat.st_size}-{stat.st_mtime_ns}"])
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    base = Path(cache_dir) if cache_dir is not None else default_models_dir().parent / "profiles"
    return base / f"{spec.model_name}-{digest}.yaml"
