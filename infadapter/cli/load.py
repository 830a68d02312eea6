"""``infadapter load``: replay a trace open-loop against a Triton (or router) URL and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from infadapter.cli._app import app, fail
from infadapter.errors import FieldError, InfAdapterError, InvalidInput


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
) -> None:
    """Open-loop Poisson arrivals at the trace's per-second rate; client-side p50/p95/p99, SLO violations, errors."""
    from infadapter.loadgen import LoadGenerator, scaled_rates

    try:
        if (trace is None) == (rate is None):
            raise InvalidInput([FieldError("--trace/--rate", "give exactly one of them", "e.g. --trace twitter.tbz2 --scale 0.01 or --rate 20")], "arguments")
        slo = slo_ms
        if spec_path is not None:
            from infadapter.spec import load_spec

            spec = load_spec(spec_path)
            model = spec.model_name if model == "model" else model
            slo = spec.slo.latency_ms if slo is None else slo
        slo = 1000.0 if slo is None else slo
        if trace is not None:
            from infadapter.traces import load_trace

            rates = scaled_rates(load_trace(trace, start, duration), scale)
        else:
            assert rate is not None
            seconds = int(duration) if duration else 60
            if seconds <= 0 or rate < 0:
                raise InvalidInput([FieldError("--rate/--duration", "must be positive", "e.g. --rate 20 --duration 30")], "arguments")
            rates = scaled_rates([rate] * seconds, scale)
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
    console.print(
        f"sent {report.sent} in {report.duration_s:.0f} s ({report.achieved_rps:.1f} rps), errors {report.errors}\n"
        f"latency p50 {report.p50_ms:.1f} ms  p95 {report.p95_ms:.1f} ms  p99 {report.p99_ms:.1f} ms\n"
        f"SLO {slo:g} ms: violation ratio {report.slo_violation_ratio:.2%} ({report.slo_violations} of {report.sent})",
        highlight=False,
    )
