"""``infadapter plan``: one exact decision for a given load, printed as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infadapter.cli._app import app, fail
from infadapter.cli.arguments import named_input
from infadapter.cli.defaults import SPEC_HELP, spec_or_default
from infadapter.errors import FieldError, InfAdapterError, InvalidInput, InvalidSpec
from infadapter.solver import SolveBackend
from infadapter.spec import InferenceServiceSpec, parse_spec

if TYPE_CHECKING:
    from infadapter.planning import Plan
    from infadapter.planning.hardware import HardwareChoice
    from infadapter.profiles import Profile

#: beyond any real service; larger loads only stress the MILP's numerics
MAX_LOAD_RPS = 1e9


#: option -> (section, camelCase field) of the spec it overrides
_OVERRIDES = {
    "--slo-ms": ("slo", "latencyMs"),
    "--budget-cores": ("budget", "cpu"),
    "--cost-weight": ("objective", "costWeight"),
    "--transition-weight": ("objective", "transitionWeight"),
}


def _override(spec: InferenceServiceSpec, slo_ms: float | None, budget: float | None, cost_w: float | None, trans_w: float | None) -> InferenceServiceSpec:
    """The spec with the command-line overrides, validated by the spec's own rules; errors name the option."""
    values = dict(zip(_OVERRIDES, (slo_ms, budget, cost_w, trans_w), strict=True))
    if all(v is None for v in values.values()):
        return spec
    raw = spec.to_dict()
    for option, value in values.items():
        if value is not None:
            section, key = _OVERRIDES[option]
            raw[section][key] = value
    try:
        return parse_spec(raw, "arguments")
    except InvalidSpec as exc:
        by_path = {f"spec.{section}.{key}": option for option, (section, key) in _OVERRIDES.items()}
        errors = [FieldError(by_path.get(e.path, e.path), e.message, e.hint) for e in exc.errors]
        raise InvalidInput(errors, "arguments") from None


def _solve(spec: InferenceServiceSpec, prof: Profile, load: float, now: Plan | None, backend: SolveBackend) -> Plan:
    """``plan_for_load``; a method that cannot take this problem (``--backend dp`` with GPUs) is the option's error."""
    from infadapter.planning import plan_for_load
    from infadapter.solver import NotApplicable

    try:
        return plan_for_load(spec, prof, load, now, backend=backend)
    except NotApplicable as exc:
        why = "this spec offers GPU options (gpu: true and budget.gpu)" if "GPU" in str(exc) else str(exc)
        raise InvalidInput(
            [
                FieldError(
                    "--backend",
                    f"the dynamic program (dp) solves CPU-only problems on a core grid, and {why}",
                    "use --backend auto (it picks HiGHS here), highs or cbc",
                )
            ],
            "arguments",
        ) from None


@app.command()
def plan(
    profile: Annotated[Path, typer.Option("--profile", "-p", help="capacity profile: the paper's CSV or a Profile YAML/JSON")],
    load: Annotated[float, typer.Option("--load", "-l", help="predicted load in requests per second")],
    spec_path: Annotated[Path | None, typer.Option("--spec", "-f", help=SPEC_HELP, show_default=False)] = None,
    slo_ms: Annotated[float | None, typer.Option("--slo-ms", help="latency SLO in ms (default: the spec's)")] = None,
    budget_cores: Annotated[float | None, typer.Option("--budget-cores", help="CPU budget in cores (default: the spec's)")] = None,
    cost_weight: Annotated[float | None, typer.Option("--cost-weight", help="weight of cost/budget, the paper's alpha")] = None,
    transition_weight: Annotated[float | None, typer.Option("--transition-weight", help="weight of reloads, the paper's beta")] = None,
    current: Annotated[str, typer.Option("--current", help="configuration now running: VARIANT=CORES[xREPLICAS][:gpu=N],... e.g. resnet152=20")] = "",
    backend: Annotated[str, typer.Option("--backend", help="auto (the faster exact method: DP or HiGHS), dp, highs or cbc (MILP)")] = "auto",
    hardware: Annotated[
        bool, typer.Option("--hardware", help="also say, per variant, what serving the whole load on each kind of hardware alone costs, cheapest first")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Solve one decision: which variants, how many cores each, what share of the load."""
    from infadapter.cli.configuration import configuration_plan
    from infadapter.planning.gaps import gpu_warnings, unmeasured_sizes
    from infadapter.profiles import load_profile
    from infadapter.spec import load_spec

    if backend not in ("auto", "dp", "highs", "cbc"):
        raise fail(f"--backend: unknown backend {backend!r} (hint: use auto, dp, highs or cbc)")
    if not 0 <= load <= MAX_LOAD_RPS:
        raise fail(f"--load: must be a number in 0 .. {MAX_LOAD_RPS:g}, got {load:g} (hint: give the predicted load in rps)")
    try:
        spec = _override(named_input("--spec", load_spec, spec_or_default(spec_path, quiet=as_json)), slo_ms, budget_cores, cost_weight, transition_weight)
        prof = named_input("--profile", lambda p: load_profile(p, slo_ms=spec.slo.latency_ms), profile)
        now = configuration_plan(current, spec, prof, "--current") if current.strip() else None
        result = _solve(spec, prof, load, now, cast(SolveBackend, backend))
        choices = _recommend(spec, prof, load) if hardware else None
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    warnings = gpu_warnings(spec, prof) + unmeasured_sizes(result, prof)
    for warning in warnings:  # on stderr: --json keeps stdout one JSON object
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        out = _plan_json(result, warnings, spec)
        if choices is not None:
            out["hardware"] = {name: [c.to_dict() for c in kinds] for name, kinds in choices.items()}
        typer.echo(json.dumps(out))
    else:
        _print_plan(result, load, spec)
        if choices is not None:
            _print_hardware(choices, load)


def _recommend(spec: InferenceServiceSpec, prof: Profile, load: float) -> dict[str, list[HardwareChoice]]:
    from infadapter.planning.hardware import recommend

    return recommend(spec, prof, load)


def _print_hardware(choices: dict[str, list[HardwareChoice]], load: float) -> None:
    """Per variant, each kind of hardware alone for the whole load; the first is the recommendation."""
    table = Table(title=f"hardware for {load:g} rps, each variant alone (*: recommended)")
    for col in ("variant", "hardware", "serves all", "cpu/replica", "gpus/replica", "replicas", "cost"):
        table.add_column(col, justify="left" if col in ("variant", "hardware") else "right")
    for name, kinds in choices.items():
        for k, c in enumerate(kinds):
            mark = " *" if k == 0 and c.serves_all else ""
            served = "yes" if c.serves_all else f"no ({c.served_rps:.1f} rps)"
            batching = f" b{c.batch}" if c.batch else ""
            table.add_row(name if k == 0 else "", c.hardware + batching + mark, served, f"{c.cpu_cores:g}", str(c.gpus), str(c.replicas), f"{c.cost:.4g}")
    Console().print(table)


def _plan_json(result: Plan, warnings: list[str], spec: InferenceServiceSpec) -> dict[str, Any]:
    """``plan --json``: the plan, rounded to what a decision can tell apart, and the warnings."""
    return {
        "status": result.status,
        "variants": [
            {
                "name": v.name,
                "hardware": v.hardware,
                "batch": spec.batch(v.name),
                "cpu": v.cpu_cores,
                "gpus": v.gpus,
                "replicas": v.replicas,
                "weight": round(v.weight, 6),
                "capacity_rps": round(v.capacity_rps, 6),
            }
            for v in result.variants
        ],
        "objective": round(result.objective, 9),
        "accuracy": round(result.accuracy, 9),
        "cost_cpu": result.cost_cpu,
        "cost_gpu": result.cost_gpu,
        "cost": round(result.cost, 9),
        "served_rps": round(result.served_rps, 6),
        "solve_ms": round(result.solve_ms, 3),
        "backend": result.backend,
        "warnings": warnings,
    }


def _print_plan(result: Plan, load: float, spec: InferenceServiceSpec) -> None:
    """The plan as a table, then its totals and the solver's notes."""
    console = Console()
    table = Table(title=f"plan for {load:g} rps ({result.status})")
    for col in ("variant", "hardware", "cpu/replica", "replicas", "gpus", "weight", "capacity rps"):
        table.add_column(col, justify="left" if col in ("variant", "hardware") else "right")
    for v in result.variants:
        batching = f" b{spec.batch(v.name)}" if spec.batch(v.name) else ""
        table.add_row(v.name, v.hardware + batching, f"{v.cpu_cores:g}", str(v.replicas), str(v.gpus), f"{v.weight:.3f}", f"{v.capacity_rps:.1f}")
    console.print(table)
    console.print(
        f"accuracy {result.accuracy:.4f}  cost {result.cost:.4g} ({result.cost_cpu:g} cores, {result.cost_gpu} GPUs)  objective {result.objective:.6f}  "
        f"served {result.served_rps:.1f}/{load:g} rps  solve {result.solve_ms:.1f} ms ({result.backend})"
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
