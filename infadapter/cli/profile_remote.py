"""``infadapter profile --url`` and ``infadapter profile import``: capacities measured on the user's own stack.

Both merge into ``--out`` (:mod:`infadapter.serving.profile_store`); every option is checked, the output
file included, before the first request is sent or the file is read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from infadapter.cli.arguments import check_number, named_input
from infadapter.cli.progress import progress
from infadapter.errors import FieldError, InvalidInput
from infadapter.profile_fields import accelerator_field

if TYPE_CHECKING:
    from infadapter.cli.profile import ProfileArgs
    from infadapter.profiles import Profile, ProfilePoint
    from infadapter.serving.profile_store import Serving
    from infadapter.spec import InferenceServiceSpec

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Target:
    """What every measurement of this run is: SLO, percentile, the replica's size, the variants."""

    slo_ms: float
    percentile: float
    cpu: float
    gpus: int
    variants: tuple[str, ...]
    notes: tuple[str, ...]
    existing: Profile | None
    serving: Serving
    accelerator: str = ""  # the named type of its GPUs ("" for the default GPU)

    def point(self, capacity_rps: float, tail_ms: float | None, saturation_rps: float | None, serving: Mapping[str, Any]) -> ProfilePoint:
        """A measurement of this target; a server that batched (dynamic batching) measured its batching deployment."""
        from infadapter.profiles import ProfilePoint

        batching = int(serving.get("maxBatchSize", 0) or 0) if serving.get("dynamicBatching") is True else 0
        return ProfilePoint(self.cpu, capacity_rps, self.gpus, tail_ms, saturation_rps, self.accelerator, batching)


def _target(args: ProfileArgs, *, one_variant: bool) -> Target:
    """Check the options every remote source shares; InvalidInput with every error."""
    from infadapter.serving.profile_store import read_existing
    from infadapter.spec import load_spec

    spec = named_input("--spec", load_spec, args.spec_path) if args.spec_path is not None else None
    errors: list[FieldError] = []
    slo = args.slo_ms if args.slo_ms is not None else (spec.slo.latency_ms if spec else None)
    if slo is None:
        errors.append(FieldError("--slo-ms", "missing", "give the latency SLO the capacity is measured at, e.g. --slo-ms 200 (or --spec)"))
    check_number(errors, "--slo-ms", args.slo_ms, high=3_600_000, hint="milliseconds, e.g. 200")
    percentile = args.percentile if args.percentile is not None else (spec.slo.percentile if spec else 99.0)
    check_number(errors, "--percentile", args.percentile, high=99.999, hint="e.g. 99")
    notes: list[str] = []
    cpu = _replica_cores(args, errors, notes)
    names = _variants(args, spec, errors, one_variant=one_variant)
    if errors:
        raise InvalidInput(errors, "arguments")
    assert slo is not None
    existing, serving = read_existing(args.out, slo, percentile)
    _check_writable(args.out)
    return Target(slo, percentile, cpu, args.gpus or 0, names, tuple(notes), existing, serving, args.accelerator or "")


def _replica_cores(args: ProfileArgs, errors: list[FieldError], notes: list[str]) -> float:
    if args.cpu is None and args.gpus is None:
        errors.append(FieldError("--cpu", "missing: say what one replica measured has", "--cpu 4 (cores), or --gpus 1 (with --cpu for its cores)"))
        return 1.0
    check_number(errors, "--cpu", args.cpu, high=1024, hint="cores of one replica, e.g. 4")
    if args.gpus is not None and not 0 <= args.gpus <= 64:
        errors.append(FieldError("--gpus", f"must be a whole number 0..64, got {args.gpus}", "GPUs of one replica, e.g. 1"))
    if args.accelerator is not None:
        accelerator_field(args.accelerator, "--accelerator", args.gpus or 0, errors, "give --gpus 1 (its devices per replica)")
    if args.cpu is None:
        notes.append("no --cpu: one core per GPU replica assumed (the profile needs the replica's cores)")
        return 1.0
    return args.cpu


def _variants(args: ProfileArgs, spec: InferenceServiceSpec | None, errors: list[FieldError], *, one_variant: bool) -> tuple[str, ...]:
    names = args.variants or (() if one_variant or spec is None else tuple(spec.variant_names))
    if not names:
        errors.append(FieldError("--variant", "missing", "name the variant measured, e.g. --variant resnet50" + ("" if one_variant else " (or --spec)")))
    if one_variant and len(names) > 1:
        errors.append(FieldError("--variant", f"one file measures one variant, got {', '.join(names)}", "import each file on its own"))
    for name in names:
        if spec is not None and name not in spec.variant_names:
            errors.append(FieldError("--variant", f"{name!r} is not a variant of --spec", f"one of {', '.join(spec.variant_names)}"))
        elif not _DNS_LABEL.match(name):
            errors.append(FieldError("--variant", f"{name!r} is not a DNS label (as variant names are)", "lowercase letters, digits and '-', e.g. resnet50"))
    return names


def _check_writable(out: Path) -> None:
    import os

    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput([FieldError("--out", f"cannot write {out} ({parent} is not a writable directory)", "give a writable path")], "arguments")


def _models(args: ProfileArgs, variants: tuple[str, ...]) -> dict[str, str]:
    """``--model``: NAME (one variant) or VARIANT=NAME,...; a variant not named serves under its own name."""
    mapping = dict.fromkeys(variants, "")
    text = (args.model or "").strip()
    errors: list[FieldError] = []
    if text and "=" not in text:
        if len(variants) != 1:
            errors.append(FieldError("--model", f"{text!r} for {len(variants)} variants", "write VARIANT=NAME,... for each of them"))
        else:
            mapping[variants[0]] = text
    elif text:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            variant, _, name = part.partition("=")
            if variant.strip() not in mapping:
                errors.append(FieldError("--model", f"{variant.strip()!r} is not a variant measured here", f"one of {', '.join(variants)}"))
            elif not name.strip():
                errors.append(FieldError("--model", f"no model name for {variant.strip()!r}", "write VARIANT=NAME"))
            else:
                mapping[variant.strip()] = name.strip()
    if errors:
        raise InvalidInput(errors, "arguments")
    return {v: m or v for v, m in mapping.items()}


def profile_url(args: ProfileArgs) -> None:
    """Measure every variant's capacity at the SLO against the Triton at ``--url``; merge into ``--out``."""
    from infadapter.serving.profile_store import merge, write
    from infadapter.serving.remote_profile import RemoteProfiler, host_port, probe

    assert args.url is not None
    errors: list[FieldError] = []
    duration_s = args.duration_s if args.duration_s is not None else 3.0
    max_steps = args.max_steps if args.max_steps is not None else 5
    check_number(errors, "--duration-s", duration_s, high=600, hint="seconds per step, e.g. 3")
    if not 1 <= max_steps <= 100:
        errors.append(FieldError("--max-steps", f"must be within 1..100, got {max_steps}", "e.g. 5"))
    try:
        host_port(args.url)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors, "arguments")
    target = _target(args, one_variant=False)
    remote = probe(args.url, _models(args, target.variants))
    profile, serving = target.existing, target.serving
    rows = []
    with progress(args.progress, len(remote), f"profile {args.url}") as bar:
        done = [0]

        def on_step(variant: str, step: Any) -> None:
            r = step.report
            bar.update(done[0], f"{variant}: {step.rate_rps:.1f} rps -> p99 {r.p99_ms:.1f} ms {'ok' if step.passed else 'over'}")

        profiler = RemoteProfiler(args.url, target.slo_ms, target.percentile, duration_s=duration_s, max_steps=max_steps, on_step=on_step)
        for model in remote:
            point = profiler.measure(model)
            done[0] += 1
            bar.update(done[0], f"{model.variant}: {point.capacity_rps:.1f} rps at the SLO")
            measured = target.point(point.capacity_rps, point.tail_ms, point.saturation_rps, model.serving)
            how = {**model.serving, "steps": len(point.steps)}
            profile, serving = merge(
                profile,
                serving,
                model.variant,
                measured,
                how,
                slo_ms=target.slo_ms,
                percentile=target.percentile,
                source=f"infadapter profile --url {args.url}",
            )
            rows.append((model.variant, measured, how))
    assert profile is not None
    write(profile, serving, args.out)
    _report(args, target, rows, profile)


def import_file(args: ProfileArgs, file: Path | None) -> None:
    """Read a perf_analyzer or Model Analyzer CSV into ``--out`` (one variant, one size)."""
    from infadapter.serving.perf_import import FORMATS, read_measurements
    from infadapter.serving.profile_store import merge, write

    errors: list[FieldError] = []
    if file is None:
        errors.append(FieldError("FILE", "missing", "infadapter profile import out.csv --format perf-analyzer --variant NAME --cpu N --slo-ms N"))
    elif not file.is_file():
        errors.append(FieldError("FILE", f"no such file: {file}", "give the CSV perf_analyzer -f or model-analyzer wrote"))
    if args.fmt is None or args.fmt not in FORMATS:
        errors.append(FieldError("--format", "missing" if args.fmt is None else f"unknown format {args.fmt!r}", "perf-analyzer or model-analyzer"))
    elif args.fmt == "perf-analyzer":
        errors += [FieldError(o, "applies to --format model-analyzer only", "drop it") for o, v in (("--model", args.model), ("--config", args.config)) if v]
    try:
        target = _target(args, one_variant=True)
    except InvalidInput as exc:
        raise InvalidInput([*errors, *exc.errors], exc.source) from None
    if errors:
        raise InvalidInput(errors, "arguments")
    assert file is not None and args.fmt in FORMATS
    found = read_measurements(args.fmt, file, target.slo_ms, target.percentile, model=args.model, config=args.config)
    variant = target.variants[0]
    tail = None if found.latency_ms is None else round(found.latency_ms, 3)
    measured = target.point(round(found.capacity_rps, 3), tail, round(found.saturation_rps, 3), found.serving)
    how = {**found.serving, "levels": found.levels}
    profile, serving = merge(
        target.existing,
        target.serving,
        variant,
        measured,
        how,
        slo_ms=target.slo_ms,
        percentile=target.percentile,
        source=f"infadapter profile import --format {args.fmt}",
    )
    write(profile, serving, args.out)
    _report(args, replace(target, notes=(*target.notes, *found.notes)), [(variant, measured, how)], profile)


def _report(args: ProfileArgs, target: Target, rows: list[tuple[str, Any, dict[str, Any]]], profile: Profile) -> None:
    notes = list(target.notes) + [f"{v}: no load level met the SLO: capacity 0 recorded" for v, p, _ in rows if p.capacity_rps <= 0]
    if args.as_json:
        print(
            json.dumps(
                {
                    "profile": str(args.out),
                    "sloMs": target.slo_ms,
                    "percentile": target.percentile,
                    "points": [
                        {
                            "variant": v,
                            "cpu": p.cpu_cores,
                            "gpus": p.gpus,
                            "capacityRps": p.capacity_rps,
                            "p99Ms": p.p99_ms,
                            "saturationRps": p.saturation_rps,
                            "serving": how,
                        }
                        for v, p, how in rows
                    ],
                    "notes": notes,
                }
            )
        )
        return
    console = Console(stderr=True, soft_wrap=True)
    for v, p, how in rows:
        tail = "-" if p.p99_ms is None or math.isnan(p.p99_ms) else f"{p.p99_ms:.1f} ms"
        size = f"{p.cpu_cores:g} cores" + (f" + {p.gpus} GPU" if p.gpus else "")
        console.print(
            f"{v:10s} {size:>16s}  {p.capacity_rps:8.1f} rps  p{target.percentile:g} {tail}  "
            f"({', '.join(f'{k}={val}' for k, val in how.items() if k not in ('file', 'url'))})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for note in notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    kept = sum(len(pts) for pts in profile.points.values())
    console.print(f"wrote {args.out} (variants: {len(profile.points)}, points: {kept})", highlight=False, markup=False, soft_wrap=True)
