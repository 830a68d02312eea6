"""``infadapter load``: replay a trace open-loop against a Triton (or router) URL and report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from infadapter.cli._app import app, fail
from infadapter.cli.arguments import check_number
from infadapter.cli.trace import ColumnOption, FormatOption, IntervalOption, TimeUnitOption, trace_options
from infadapter.errors import FieldError, InfAdapterError, InvalidInput

if TYPE_CHECKING:
    from infadapter.loadgen import LoadReport

#: the longest replay `load` accepts (a week of seconds); longer is almost surely a typo
MAX_DURATION_S = 7 * 86400


def _number_errors(rate: float | None, start: float | None, duration: float | None, scale: float, timeout_s: float, slo_ms: float | None) -> list[FieldError]:
    """The errors of the numeric options (and of giving both or neither of --trace and --rate, checked by the caller)."""
    from infadapter.loadgen import MAX_RATE_RPS

    errors: list[FieldError] = []
    check_number(errors, "--rate", rate, low_inclusive=True, high=MAX_RATE_RPS, hint="requests per second, e.g. 20")
    check_number(errors, "--duration", duration, high=MAX_DURATION_S, hint="seconds to replay, e.g. 60")
    check_number(errors, "--start", start, low_inclusive=True, hint="a second of the trace, e.g. 0")
    check_number(errors, "--scale", scale, hint="e.g. 0.01 to shrink a trace")
    check_number(errors, "--timeout-s", timeout_s, high=3600, hint="seconds, e.g. 10")
    check_number(errors, "--slo-ms", slo_ms, high=3_600_000, hint="milliseconds, e.g. 200")
    return errors


def _from_spec(spec_path: Path, model: str, slo_ms: float | None, errors: list[FieldError]) -> tuple[str, float | None]:
    """(model name, SLO): the spec's where the options left their defaults; a bad spec adds to ``errors``."""
    from infadapter.spec import load_spec

    try:
        spec = load_spec(spec_path)
    except InvalidInput as exc:  # reported with the other argument errors, named by the option
        errors.extend(FieldError(f"--spec {spec_path}" + (f": {e.path}" if e.path else ""), e.message, e.hint) for e in exc.errors)
        return model, slo_ms
    return (spec.model_name if model == "model" else model), (spec.slo.latency_ms if slo_ms is None else slo_ms)


def _print_report(console: Console, report: LoadReport, slo_ms: float) -> None:
    console.print(
        f"sent {report.sent} in {report.duration_s:.0f} s ({report.achieved_rps:.1f} rps), errors {report.errors}\n"
        f"latency p50 {report.p50_ms:.1f} ms  p95 {report.p95_ms:.1f} ms  p99 {report.p99_ms:.1f} ms\n"
        f"SLO {slo_ms:g} ms: violation ratio {report.slo_violation_ratio:.2%} ({report.slo_violations} of {report.sent})",
        highlight=False,
    )


@app.command("load")
def load_cmd(
    url: Annotated[str, typer.Option("--url", help="Triton HTTP endpoint or the router in front of it, e.g. 127.0.0.1:8000")],
    trace: Annotated[Path | None, typer.Option("--trace", help="per-second trace (Twitter .tbz2, text, CSV t_sec,...,rps)")] = None,
    rate: Annotated[float | None, typer.Option("--rate", help="constant rate in rps instead of a trace")] = None,
    start: Annotated[float | None, typer.Option("--start", help="first second of the trace")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="seconds to replay")] = None,
    scale: Annotated[float, typer.Option("--scale", help="multiply the trace's rates by this")] = 1.0,
    model: Annotated[str, typer.Option("--model", help="public model name")] = "model",
    spec_path: Annotated[Path | None, typer.Option("--spec", "-f", help="take the model name and SLO from this InferenceService")] = None,
    slo_ms: Annotated[float | None, typer.Option("--slo-ms", help="latency SLO in ms (default: the spec's, else 1000)")] = None,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="a request not answered by then is an error")] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the Poisson arrivals")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    trace_format: FormatOption = "auto",
    trace_column: ColumnOption = None,
    interval: IntervalOption = None,
    time_unit: TimeUnitOption = "auto",
) -> None:
    """Open-loop Poisson arrivals at the trace's per-second rate; client-side p50/p95/p99, SLO violations, errors."""
    from infadapter.loadgen import LoadGenerator, scaled_rates

    try:
        errors = _number_errors(rate, start, duration, scale, timeout_s, slo_ms)
        if (trace is None) == (rate is None):
            errors.insert(0, FieldError("--trace/--rate", "give exactly one of them", "e.g. --trace twitter.tbz2 --scale 0.01 or --rate 20"))
        try:
            reading = trace_options(trace_format, trace_column, interval, time_unit)
        except InvalidInput as exc:
            errors.extend(exc.errors)
        slo = slo_ms
        if spec_path is not None:
            model, slo = _from_spec(spec_path, model, slo, errors)
        if errors:
            raise InvalidInput(errors, "arguments")
        slo = 1000.0 if slo is None else slo
        if trace is not None:
            from infadapter.cli.trace import read_cli_trace

            series = read_cli_trace(trace, reading, quiet=as_json).series(start, duration, path=trace)
            rates = scaled_rates(series, scale)
        else:
            assert rate is not None
            rates = scaled_rates([rate] * math.ceil(duration or 60), scale)
        gen = LoadGenerator(url, model, slo_ms=slo, timeout_s=timeout_s, seed=seed)
        console = Console(stderr=True)
        if as_json:
            report = gen.run(rates)
        else:
            with console.status("sending…") as status:
                report = gen.run(rates, on_second=lambda s, r: status.update(f"second {s + 1}/{len(rates)}: {r:.1f} rps"))
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    _print_report(console, report, slo)
