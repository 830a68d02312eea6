"""``infadapter profile``: each variant's capacity at the SLO, from one of three sources.

* no argument, ``--spec``: measured on the local tritonserver, one CPU size at a time (cgroup quotas);
* ``--url``: measured against a Triton that already runs (any machine, GPUs included; :mod:`.profile_remote`);
* ``import FILE --format perf-analyzer|model-analyzer``: read from Triton's tools (:mod:`.profile_remote`).

The last two merge into ``--out`` with the serving configuration measured with. ``import`` is an
argument, not a sub-command, so that ``infadapter profile --spec ...`` keeps working as it always did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from infadapter.cli._app import app, fail
from infadapter.cli.arguments import check_number, named_input
from infadapter.cli.progress import ProgressOption, progress, wanted
from infadapter.errors import FieldError, InfAdapterError, InvalidInput

if TYPE_CHECKING:
    from infadapter.serving.profiler import PointResult

DEFAULT_CPUS = "0.25,0.5,1,1.5"
#: options that only one source takes (mode -> options); any other given is refused, never ignored
MODE_OPTIONS = {
    "local": {"--cpus", "--models-dir", "--duration-s", "--max-steps"},
    "url": {"--url", "--model", "--cpu", "--gpus", "--accelerator", "--duration-s", "--max-steps", "--percentile"},
    "import": {"--format", "--model", "--config", "--cpu", "--gpus", "--accelerator", "--percentile"},
}


#: mode-specific option -> its ProfileArgs field
OPTION_FIELDS = {
    "--cpus": "cpus",
    "--duration-s": "duration_s",
    "--max-steps": "max_steps",
    "--models-dir": "models_dir",
    "--url": "url",
    "--model": "model",
    "--cpu": "cpu",
    "--gpus": "gpus",
    "--accelerator": "accelerator",
    "--percentile": "percentile",
    "--format": "fmt",
    "--config": "config",
}


@dataclass(frozen=True)
class ProfileArgs:
    """The command line, parsed by click, not yet checked (None: not given)."""

    spec_path: Path | None
    out: Path
    slo_ms: float | None
    variants: tuple[str, ...]
    as_json: bool
    progress: bool | None
    cpus: str | None = None
    duration_s: float | None = None
    max_steps: int | None = None
    models_dir: Path | None = None
    url: str | None = None
    model: str | None = None
    cpu: float | None = None
    gpus: int | None = None
    percentile: float | None = None
    fmt: str | None = None
    config: str | None = None
    accelerator: str | None = None

    def given(self) -> list[str]:
        """The mode-specific options given."""
        return [option for option, name in OPTION_FIELDS.items() if getattr(self, name) is not None]


@app.command("profile")
def profile_cmd(
    action: Annotated[str | None, typer.Argument(metavar="[import FILE]", help="'import' reads a perf_analyzer/Model Analyzer CSV", show_default=False)] = None,
    file: Annotated[Path | None, typer.Argument(metavar="", help="the CSV to import", show_default=False)] = None,
    spec_path: Annotated[Path | None, typer.Option("--spec", "-f", help="InferenceService YAML: variants, sources, SLO (local: required)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Profile YAML (or .json) to write; --url and import merge into it")] = Path("profile.yaml"),
    cpus: Annotated[str | None, typer.Option("--cpus", help=f"local: CPU sizes to measure, in cores [default: {DEFAULT_CPUS}]", show_default=False)] = None,
    slo_ms: Annotated[float | None, typer.Option("--slo-ms", help="latency SLO in ms (default: the spec's)")] = None,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="local, --url: seconds of load per step [default: 3]", show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="local, --url: load steps per point [default: 5]", show_default=False)] = None,
    variants: Annotated[str, typer.Option("--variants", help="only these variants (comma-separated)")] = "",
    variant: Annotated[list[str] | None, typer.Option("--variant", help="a variant (repeatable); import: the file's", show_default=False)] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="local: where models:// sources live")] = None,
    url: Annotated[str | None, typer.Option("--url", help="a running Triton's HTTP endpoint, e.g. http://host:8000")] = None,
    model: Annotated[str | None, typer.Option("--model", help="--url: NAME or VARIANT=NAME,... (default: the variant's name); import: its Model")] = None,
    cpu: Annotated[float | None, typer.Option("--cpu", help="--url, import: cores of one replica measured", show_default=False)] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="--url, import: GPUs of one replica measured", show_default=False)] = None,
    accelerator: Annotated[
        str | None, typer.Option("--accelerator", help="--url, import: the named accelerator type those GPUs are (spec.accelerators)", show_default=False)
    ] = None,
    percentile: Annotated[float | None, typer.Option("--percentile", help="--url, import: the SLO percentile (default: the spec's, else 99)")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="import: perf-analyzer or model-analyzer")] = None,
    config: Annotated[str | None, typer.Option("--config", help="import: one Model Config Path of a Model Analyzer file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the measurements as one JSON object")] = False,
    show_progress: ProgressOption = None,
) -> None:
    """Capacity at the SLO per variant: local Triton (--spec), a running server (--url), or `import FILE`."""
    names = tuple(dict.fromkeys([n.strip() for n in variants.split(",") if n.strip()] + [v.strip() for v in variant or []]))
    args = ProfileArgs(
        spec_path,
        out,
        slo_ms,
        names,
        as_json,
        show_progress,
        cpus,
        duration_s,
        max_steps,
        models_dir,
        url,
        model,
        cpu,
        gpus,
        percentile,
        fmt,
        config,
        accelerator,
    )
    try:
        if action is None and file is None:
            mode = "url" if url is not None else "local"
        elif action == "import":
            mode = "import"
        else:
            raise InvalidInput(
                [FieldError("profile", f"unknown argument {action!r}", "`infadapter profile import FILE --format ...`, or no argument to measure")], "arguments"
            )
        _check_mode(args, mode)
        if mode == "local":
            _local(args)
        else:
            from infadapter.cli.profile_remote import import_file, profile_url

            profile_url(args) if mode == "url" else import_file(args, file)
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None


def _check_mode(args: ProfileArgs, mode: str) -> None:
    allowed = MODE_OPTIONS[mode]
    where = {"local": "the local profiler (--spec)", "url": "--url", "import": "`profile import`"}[mode]
    errors = [
        FieldError(option, f"does not apply to {where}", f"it is for {' or '.join(m for m, opts in MODE_OPTIONS.items() if option in opts)}: drop it")
        for option in args.given()
        if option not in allowed
    ]
    if errors:
        raise InvalidInput(errors, "arguments")


def _local(args: ProfileArgs) -> None:
    """Serve each variant alone in a cgroup-limited tritonserver per CPU size; search the rate (docs/serving.md)."""
    from infadapter.profiles import save_profile
    from infadapter.serving.profiler import Profiler, largest_planned_cores, parse_cpus, spec_models
    from infadapter.serving.search import RateStep
    from infadapter.spec import load_spec

    duration_s = args.duration_s if args.duration_s is not None else 3.0
    max_steps = args.max_steps if args.max_steps is not None else 5
    errors: list[FieldError] = []
    if args.spec_path is None:
        errors.append(
            FieldError(
                "--spec",
                "missing",
                "give the InferenceService whose variants to serve, e.g. --spec examples/demo.yaml (or --url for a running server, or `profile import FILE`)",
            )
        )
    check_number(errors, "--duration-s", duration_s, high=600, hint="seconds per step, e.g. 3")
    check_number(errors, "--slo-ms", args.slo_ms, high=3_600_000, hint="milliseconds, e.g. 200")
    if max_steps < 1 or max_steps > 100:
        errors.append(FieldError("--max-steps", f"must be within 1..100, got {max_steps}", "e.g. 5"))
    sizes: list[float] = []
    try:
        sizes = parse_cpus(args.cpus or DEFAULT_CPUS)
    except InvalidInput as exc:
        errors.extend(FieldError("--cpus", e.message, e.hint) for e in exc.errors)
    if args.out.is_dir():
        errors.append(FieldError("--out", f"{args.out} is a directory", "give a file name, e.g. profile.yaml"))
    if errors:
        raise InvalidInput(errors, "arguments")
    assert args.spec_path is not None
    spec = named_input("--spec", load_spec, args.spec_path)
    models = spec_models(spec, list(args.variants) or None, args.models_dir)
    slo = args.slo_ms if args.slo_ms is not None else spec.slo.latency_ms
    started = time.monotonic()
    console = Console(stderr=True, soft_wrap=True)
    with progress(args.progress, len(models) * len(sizes), "profile") as bar:
        done: list[tuple[str, float]] = []

        def on_step(name: str, cores: float, step: RateStep) -> None:
            if (name, cores) not in done:
                done.append((name, cores))
            r = step.report
            line = f"{name} @ {cores:g} cores: {step.rate_rps:.1f} rps -> p99 {r.p99_ms:.1f} ms, violations {r.slo_violation_ratio:.1%}"
            bar.update(len(done) - 1, f"{line} {'ok' if step.passed else 'over'}")
            if not args.as_json and not wanted(args.progress):
                console.print(f"  {line} {'[green]ok[/]' if step.passed else '[red]over[/]'}", highlight=False)

        profiler = Profiler(slo, spec.slo.percentile, duration_s=duration_s, max_steps=max_steps, on_step=on_step)
        result, points = profiler.profile(models, spec.model_name, sizes, largest_planned_cores(spec))
        bar.update(len(models) * len(sizes), "profile: done")
    try:
        save_profile(result, args.out)
    except OSError as exc:
        raise InvalidInput([FieldError("--out", f"cannot write {args.out}: {exc.strerror}", "give a writable path")], "arguments") from None
    _print_local(args, points, spec.slo.percentile, time.monotonic() - started, console)


def _print_local(args: ProfileArgs, points: Sequence[PointResult], percentile: float, elapsed: float, console: Console) -> None:
    if args.as_json:
        print(
            json.dumps(
                {
                    "profile": str(args.out),
                    "seconds": round(elapsed, 1),
                    "points": [
                        {
                            "variant": p.variant,
                            "cpu": p.cpu_cores,
                            "capacityRps": p.capacity_rps,
                            "p99Ms": p.p99_ms,
                            "tritonStartS": p.start_s,
                            "limiter": p.limiter,
                            "steps": len(p.steps),
                        }
                        for p in points
                    ],
                }
            )
        )
        return
    for p in points:
        tail = "-" if p.p99_ms is None else f"{p.p99_ms:.1f} ms"
        console.print(f"{p.variant:10s} {p.cpu_cores:5g} cores  {p.capacity_rps:8.1f} rps  p{percentile:g} {tail}", highlight=False)
    console.print(f"wrote {args.out} in {elapsed:.0f} s", highlight=False)
