"""``infadapter simulate``: replay a trace through every named policy and compare them.

Every input is checked before the run (:mod:`.simulate_setup`); the run reports its progress on stderr
(:mod:`.progress`); the start configuration is printed with the results.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infadapter.cli._app import app
from infadapter.cli.defaults import SPEC_HELP
from infadapter.cli.progress import ProgressOption, progress
from infadapter.cli.simulate_setup import DEFAULT_POLICIES, SimulateArgs, check_arguments, setup_from_args
from infadapter.cli.trace import ColumnOption, FormatOption, IntervalOption, TimeUnitOption
from infadapter.errors import FieldError, InvalidInput
from infadapter.latencies import ARRIVALS_HELP, MODE_LATENCIES

if TYPE_CHECKING:
    from infadapter.cli.simulate_setup import Setup
    from infadapter.sim.engine import FloatArray
    from infadapter.sim.run import PolicyRun

LATENCIES_HELP = "the control loop's delays of the mode to simulate: " + "; ".join(
    f"{mode} (cold start = load time + {d.startup_s:g} s, resize {d.in_place_s:g} s, weights reach the router in {d.weights_s:g} s, "
    f"load seen {d.observe_s:g} s late, the loop stepping every {d.step_s:g} s)"
    for mode, d in MODE_LATENCIES.items()
)
START_HELP = "what runs when the window begins: VARIANT=CORES[xREPLICAS][:gpu=N],... or cold [default: the most accurate variant at its largest size; printed]"


@app.command()
def simulate(
    trace: Annotated[Path | None, typer.Option("--trace", help="per-second trace (.tbz2, counts, CSV); default: ../shared/data")] = None,
    start: Annotated[int | None, typer.Option("--start", help="first second of the window in the trace")] = None,
    duration: Annotated[int | None, typer.Option("--duration", help="window length in seconds")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="'paper': the paper's 21-min window, SLA 750, start resnet152@20")] = None,
    profile: Annotated[Path | None, typer.Option("--profile", help="capacity profile (paper CSV or Profile YAML); default: ../shared/data")] = None,
    spec_path: Annotated[Path | None, typer.Option("--spec", "-f", help=SPEC_HELP, show_default=False)] = None,
    policies: Annotated[str, typer.Option("--policies", help="comma list; 'vpa' = one run per variant")] = DEFAULT_POLICIES,
    seed: Annotated[int, typer.Option("--seed", help="seed of the request arrivals")] = 0,
    arrivals: Annotated[str, typer.Option("--arrivals", help=ARRIVALS_HELP)] = "poisson",
    history: Annotated[int | None, typer.Option("--history", help="seconds of trace before the window given to the policies (default 24 h)")] = None,
    lstm_weights: Annotated[Path | None, typer.Option("--lstm-weights", help="trained LSTM for infadapter-paper/msplus (default: EWMA, noted)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="write PNG plots, report.md and decisions.jsonl to this directory")] = None,
    start_plan: Annotated[str | None, typer.Option("--start-plan", help=START_HELP, show_default=False)] = None,
    with_series: Annotated[bool, typer.Option("--series", help="with --json: every policy's per-second series (large)")] = False,
    trace_format: FormatOption = "auto",
    trace_column: ColumnOption = None,
    interval: IntervalOption = None,
    time_unit: TimeUnitOption = "auto",
    show_progress: ProgressOption = None,
    latencies: Annotated[str, typer.Option("--latencies", help=LATENCIES_HELP)] = "simulator",
) -> None:
    """Simulate the policies over a trace: SLO violations, cores, accuracy, p99, drops, reconfigurations."""
    from infadapter.cli.trace import trace_options
    from infadapter.control import MODE_LATENCIES
    from infadapter.sim.run import simulate as run_simulation

    args = SimulateArgs(trace, start, duration, scenario, profile, spec_path, policies, arrivals, history, lstm_weights, as_json, report, start_plan, latencies)
    errors: list[FieldError] = []
    check_arguments(args, errors)
    try:
        reading = trace_options(trace_format, trace_column, interval, time_unit)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if with_series and not as_json:
        errors.append(FieldError("--series", "only goes with --json", "add --json, or use --report DIR for plots"))
    if errors:
        raise InvalidInput(errors, "arguments")
    setup = setup_from_args(args, reading)
    index = {name: i for i, name in enumerate(setup.names)}
    with progress(show_progress, len(setup.names), "simulate") as bar:
        runs = run_simulation(
            setup.spec,
            setup.profile,
            setup.window,
            setup.names,
            pre_history_rps=setup.pre,
            seed=seed,
            arrivals=arrivals,  # type: ignore[arg-type]
            start=setup.start,
            options=setup.options,
            latencies=MODE_LATENCIES[latencies],
            with_series=report is not None or with_series,
            progress=lambda name, what, done: bar.update(index[name] + done, f"{name}: {what}"),
        )
    _print_runs(setup, runs, seed=seed, arrivals=arrivals, latencies=latencies, as_json=as_json, report=report, with_series=with_series)


def _start_text(setup: Setup) -> str:
    if setup.start == "cold":
        what = "cold (nothing runs)" if setup.start_source == "--start-plan" else "cold (no variant fits the budget)"
    else:
        what = setup.start.describe()
    how = "--start-plan" if setup.start_source == "--start-plan" else "default: the most accurate variant at its largest size; --start-plan to change"
    return f"{what} ({how}; static and vpa policies start on their own plan)"


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inputs(setup: Setup, seed: int, arrivals: str, latencies: str) -> dict[str, Any]:
    """What the results were computed from, to tell two reports apart (and to rerun one)."""
    from infadapter import __version__

    spec = setup.spec
    return {
        "spec": {"path": str(setup.spec_path.resolve()), "sha256": _sha256(setup.spec_path)},
        "profile": {"path": str(setup.profile_path.resolve()), "sha256": _sha256(setup.profile_path)},
        "trace": {"path": str(setup.trace_path.resolve())},
        "window": {"start_s": setup.first, "duration_s": setup.last - setup.first},
        "slo": {"latency_ms": spec.slo.latency_ms, "percentile": spec.slo.percentile},
        "budget": {"cpu": spec.budget.cpu, "gpu": spec.budget.gpu},
        "seed": seed,
        "arrivals": arrivals,
        "latencies": latencies,
        "policies": list(setup.names),
        "infadapter_version": __version__,
    }


def _json_series(columns: dict[str, FloatArray]) -> dict[str, list[float | None]]:
    return {key: [None if math.isnan(v) else round(float(v), 6) for v in values] for key, values in columns.items()}


def _print_runs(
    setup: Setup, runs: dict[str, PolicyRun], *, seed: int, arrivals: str, latencies: str, as_json: bool, report: Path | None, with_series: bool
) -> None:
    import numpy as np

    from infadapter.metrics.report import decision_entries
    from infadapter.planning.gaps import gpu_warnings

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 6)

    first, last = setup.first, setup.last
    table = {name: {k: clean(v) for k, v in run.summary.items()} for name, run in runs.items()}
    inputs = _inputs(setup, seed, arrivals, latencies)
    decisions = {name: run.timeline.records for name, run in runs.items()}
    warnings = gpu_warnings(setup.spec, setup.profile) + [w for run in runs.values() for w in run.warnings]
    for warning in warnings:  # on stderr: --json keeps stdout one JSON object
        typer.echo(f"warning: {warning}", err=True)
    if report is not None:
        path, log = _write_report(setup, runs, report, inputs)
        if not as_json:
            typer.echo(f"report: {path}\ndecisions: {log}")
    if as_json:
        start = {"source": setup.start_source, "plan": "cold" if setup.start == "cold" else setup.start.to_dict()["variants"]}
        typer.echo(
            json.dumps(
                {
                    "policies": table,
                    "window": {"start_s": first, "duration_s": last - first},
                    "requests": int(np.nansum(setup.window)),
                    "spec": str(setup.spec_path),
                    "profile": str(setup.profile_path),
                    "start": start,
                    "notes": {name: run.notes for name, run in runs.items() if run.notes},
                    "warnings": warnings,
                    "inputs": inputs,
                    "decisions": decision_entries(decisions, offset_s=first),
                    **({"series": {name: _json_series(run.series) for name, run in runs.items()}} if with_series else {}),
                },
                indent=1,
                allow_nan=False,
            )
        )
        return
    _print_summary(setup, table, seed)
    typer.echo(f"start: {_start_text(setup)}")
    spec, profile = inputs["spec"], inputs["profile"]
    typer.echo(
        f"inputs: spec {spec['path']} (sha256 {spec['sha256'][:12]}), profile {profile['path']} (sha256 {profile['sha256'][:12]}), "
        f"seed {seed}, latencies {latencies}, infadapter {inputs['infadapter_version']}"
    )
    for name, run in runs.items():
        for note in run.notes:
            typer.echo(f"note: {name}: {note}")


def _write_report(setup: Setup, runs: dict[str, PolicyRun], report: Path, inputs: dict[str, Any]) -> tuple[Path, Path]:
    """``--report``: the Markdown report with its plots, and the decision log; their paths."""
    from infadapter.metrics.report import series_from_columns, write_decisions, write_report

    decisions = {name: run.timeline.records for name, run in runs.items()}
    notes = "\n".join(f"- {name}: {note}" for name, run in runs.items() for note in run.notes)
    rows = [{"policy": name, **run.summary} for name, run in runs.items()]
    path = write_report(
        report,
        {name: series_from_columns(run.series) for name, run in runs.items()},
        rows,
        title=f"Simulation of {setup.trace_path.name} [{setup.first}, {setup.last})",
        slo_ms=setup.spec.slo.latency_ms,
        notes=f"- start: {_start_text(setup)}\n{notes}",
        inputs=inputs,
        budget_cores=setup.spec.budget.cpu,
        decisions=decisions,
    )
    return path, write_decisions(report / "decisions.jsonl", decisions, offset_s=setup.first)


def _print_summary(setup: Setup, table: dict[str, dict[str, float | None]], seed: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from infadapter.metrics.report import percent

    out = Table(title=escape(f"{setup.trace_path.name} [{setup.first}, {setup.last}) seed {seed}"))
    for column in ("policy", "violations", "avg cores", "avg GPUs", "avg cost", "accuracy", "p99 ms", "dropped", "reconfigs"):
        out.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in table.items():
        out.add_row(
            escape(name),
            percent(row["slo_violation_ratio"] or 0),
            f"{(row['avg_cpu'] or 0):.2f}",
            f"{(row['avg_gpu'] or 0):.2f}",
            f"{(row.get('avg_cost') or 0):.4g}",
            f"{(row['avg_accuracy'] or 0):.4f}",
            f"{(row['p99_latency_ms'] or 0):.0f}",
            percent(row["dropped_ratio"] or 0),
            f"{(row['reconfigurations'] or 0):.0f}",
        )
    Console(width=max(120, Console().width)).print(out)
