"""``infadapter profile``: measure each variant's capacity at the SLO on the local tritonserver."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from infadapter.cli._app import app, fail
from infadapter.cli.load import check_number, named_input
from infadapter.errors import FieldError, InfAdapterError, InvalidInput


@app.command("profile")
def profile_cmd(
    spec_path: Annotated[Path, typer.Option("--spec", "-f", help="InferenceService YAML (variants and their model sources)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the Profile YAML (or .json)")] = Path("profile.yaml"),
    cpus: Annotated[str, typer.Option("--cpus", help="CPU sizes to measure, in cores")] = "0.25,0.5,1,1.5",
    slo_ms: Annotated[float | None, typer.Option("--slo-ms", help="latency SLO in ms (default: the spec's)")] = None,
    duration_s: Annotated[float, typer.Option("--duration-s", help="seconds of load per search step")] = 3.0,
    max_steps: Annotated[int, typer.Option("--max-steps", help="load steps per point (grow, then bisect)")] = 5,
    variants: Annotated[str, typer.Option("--variants", help="only these variants (comma-separated)")] = "",
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="where models:// sources live")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the measurements as one JSON object")] = False,
) -> None:
    """Open-loop Poisson load, binary search on the rate, client-side percentile vs the SLO, per variant x CPU."""
    from infadapter.profiler import Profiler, Step, parse_cpus, spec_models
    from infadapter.profiles import save_profile
    from infadapter.spec import load_spec

    console = Console(stderr=True)

    def on_step(variant: str, cpu: float, step: Step) -> None:
        r = step.report
        mark = "[green]ok[/]" if step.passed else "[red]over[/]"
        console.print(f"  {variant} @ {cpu:g} cores: {step.rate_rps:7.1f} rps -> p99 {r.p99_ms:7.1f} ms, "
                      f"violations {r.slo_violation_ratio:6.1%} {mark}")

    started = time.monotonic()
    try:
        errors: list[FieldError] = []
        check_number(errors, "--duration-s", duration_s, high=600, hint="seconds per step, e.g. 3")
        check_number(errors, "--slo-ms", slo_ms, high=3_600_000, hint="milliseconds, e.g. 200")
        if max_steps < 1 or max_steps > 100:
            errors.append(FieldError("--max-steps", f"must be within 1..100, got {max_steps}", "e.g. 5"))
        sizes: list[float] = []
        try:
            sizes = parse_cpus(cpus)
        except InvalidInput as exc:
            errors.extend(FieldError("--cpus", e.message, e.hint) for e in exc.errors)
        if out.is_dir():
            errors.append(FieldError("--out", f"{out} is a directory", "give a file name, e.g. profile.yaml"))
        if errors:
            raise InvalidInput(errors, "arguments")
        spec = named_input("--spec", load_spec, spec_path)
        names = [n.strip() for n in variants.split(",") if n.strip()]
        models = spec_models(spec, names or None, models_dir)
        slo = slo_ms if slo_ms is not None else spec.slo.latency_ms
        profiler = Profiler(slo, spec.slo.percentile, duration_s=duration_s, max_steps=max_steps, on_step=None if as_json else on_step)
        result, points = profiler.profile(models, spec.model_name, sizes)
        try:
            save_profile(result, out)
        except OSError as exc:
            raise InvalidInput([FieldError("--out", f"cannot write {out}: {exc.strerror}", "give a writable path")], "arguments") from None
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    elapsed = time.monotonic() - started
    if as_json:
        print(json.dumps({"profile": str(out), "seconds": round(elapsed, 1), "points": [
            {"variant": p.variant, "cpu": p.cpu_cores, "capacityRps": p.capacity_rps, "p99Ms": p.p99_ms,
             "tritonStartS": p.start_s, "limiter": p.limiter, "steps": len(p.steps)} for p in points]}))
        return
    for p in points:
        tail = "-" if p.p99_ms is None else f"{p.p99_ms:.1f} ms"
        console.print(f"{p.variant:10s} {p.cpu_cores:5g} cores  {p.capacity_rps:8.1f} rps  p{spec.slo.percentile:g} {tail}", highlight=False)
    console.print(f"wrote {out} in {elapsed:.0f} s")
