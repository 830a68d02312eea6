"""Two servers on one host: how much a server's latency grows beside another one doing inference.

The simulator (:mod:`infadapter.sim.machine`) slows the servers only when their CPU quotas over-fill the host.
This measures what that leaves out. One server of ``--variant`` at ``--cores`` takes a steady Poisson load of
``--rps`` for ``--seconds``, started as the embedded runtime starts it (its cgroup, its instances, the spec's
serving); each repetition runs it

* ``alone``;
* ``beside:R``, with a server of ``--beside`` at ``--beside-cores`` answering a steady R rps of its own;
* ``spin:C``, beside a process that keeps C of one core busy in 20-ms cycles (CPU without inference).

Prints one JSON object on stdout (progress on stderr): per condition, each repetition's late share (over the
spec's SLO), mean and p99 latency, and the CPU the measured server and its neighbour took; their means in
``summary``. Measured here (2026-12-06, 2 cores, 30-s steps): ResNet-50 at 1.25 cores with 33 rps, a step from
its SLO, was 0-10 % late alone (19 steps, mean 2.6 %) and 0-18 % beside ResNet-18 at 0.75 cores answering 30 rps (17
steps, mean 5.5 %), at the same CPU per request; the steps alone swung as much as the difference, so the conditions
run in turn, repeated (``--repeats``).

    .venv/bin/python benchmarks/colocation.py [-f examples/demo.yaml] [--variant resnet50] [--cores 1.25]
        [--rps 33] [--beside resnet18] [--beside-cores 0.75] [--beside-rps 15,30] [--spin 0.4] [--seconds 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fidelity_servers import cgroup_sample  # noqa: E402
from rich.console import Console  # noqa: E402

from infadapter.errors import InvalidInput  # noqa: E402
from infadapter.loadgen import LoadGenerator, LoadReport  # noqa: E402
from infadapter.runtime.local.servers import STARTUP_BOOST_CORES, ServerFactory, TritonInstance  # noqa: E402
from infadapter.serving.cpulimit import weighted_self  # noqa: E402
from infadapter.serving.profiler import serial_latency_ms, spec_models  # noqa: E402
from infadapter.spec import InferenceServiceSpec, load_resource  # noqa: E402

#: a spinner's cycle: it spins ``C`` of it and sleeps the rest
SPIN_CYCLE_S = 0.02
#: per condition, each repetition's figures
Results = dict[str, list[dict[str, float]]]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-f", "--file", type=Path, default=ROOT / "examples" / "demo.yaml", help="the InferenceService spec")
    parser.add_argument("--variant", default="resnet50", help="the server measured")
    parser.add_argument("--cores", type=float, default=1.25, help="its CPU quota")
    parser.add_argument("--rps", type=float, default=33.0, help="its steady load")
    parser.add_argument("--beside", default="resnet18", help="the neighbour's variant")
    parser.add_argument("--beside-cores", type=float, default=0.75, help="the neighbour's CPU quota")
    parser.add_argument("--beside-rps", default="15,30", help="the neighbour's loads, comma-separated (empty: none)")
    parser.add_argument("--spin", default="0.4", help="cores a spinning process keeps busy, comma-separated (empty: none)")
    parser.add_argument("--seconds", type=float, default=30.0, help="each condition's load, seconds")
    parser.add_argument("--repeats", type=int, default=2, help="repetitions of every condition")
    return parser.parse_args()


def _numbers(text: str, option: str, most: float) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a comma-separated list of numbers") from None
    if any(not 0.0 < v <= most for v in values):
        raise ValueError(f"{option}: every value must be above 0 and at most {most:g}, got {text!r}")
    return values


def _checked(args: argparse.Namespace, spec: InferenceServiceSpec, models: dict[str, Path]) -> dict[str, list[float]]:
    """The conditions' parameters; ``ValueError`` naming the option at fault."""
    for option, variant in (("--variant", args.variant), ("--beside", args.beside)):
        if variant not in spec.variant_names:
            raise ValueError(f"{option}: {variant!r} is not a variant of {args.file} ({', '.join(spec.variant_names)})")
        if variant not in models:
            raise ValueError(f"{option}: no model file for {variant!r}; build it with `infadapter models build`")
    for option, value, most in (("--cores", args.cores, 64.0), ("--beside-cores", args.beside_cores, 64.0), ("--rps", args.rps, 10_000.0)):
        if not 0.0 < value <= most:
            raise ValueError(f"{option}: {value:g} must be above 0 and at most {most:g}")
    if not 1.0 <= args.seconds <= 600.0:
        raise ValueError(f"--seconds: {args.seconds:g} must be from 1 to 600")
    if not 1 <= args.repeats <= 20:
        raise ValueError(f"--repeats: {args.repeats} must be from 1 to 20")
    return {"beside": _numbers(args.beside_rps, "--beside-rps", 10_000.0), "spin": _numbers(args.spin, "--spin", 1.0)}


def _spin(share: float, stop: Any) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        while time.perf_counter() - began < share * SPIN_CYCLE_S:
            pass
        time.sleep(max(0.0, (1.0 - share) * SPIN_CYCLE_S))


def _cpu(inst: TritonInstance) -> float:
    assert inst.cgroup is not None
    return cgroup_sample(inst.cgroup.path)[0]


def _started(factory: ServerFactory, variant: str, slot: int, cores: float, model_name: str) -> TritonInstance:
    """A server started as the embedded runtime starts one: its start-up boost, then its quota once ready."""
    inst = factory.new_instance(variant, slot, cores)
    inst.triton.start(timeout_s=180.0)
    assert inst.cgroup is not None
    inst.cgroup.set_cores(cores)
    serial_latency_ms(inst.triton.url, model_name)
    return inst


def _condition(cond: str, args: argparse.Namespace, main: tuple[TritonInstance, LoadGenerator], side: tuple[TritonInstance, LoadGenerator]) -> dict[str, float]:
    """One condition's load on the measured server, its neighbour's load or a spinner running meanwhile."""
    kind, _, value = cond.partition(":")
    reports: dict[str, LoadReport] = {}
    helper: threading.Thread | None = None
    stop = multiprocessing.Event()
    spinner = None
    if kind == "beside":
        helper = threading.Thread(target=lambda: reports.setdefault("beside", side[1].run_constant(float(value), args.seconds + 1.0)))
        helper.start()
    elif kind == "spin":
        spinner = multiprocessing.Process(target=_spin, args=(float(value), stop))
        spinner.start()
    time.sleep(0.5)
    cpu0, side0, began = _cpu(main[0]), _cpu(side[0]), time.monotonic()
    report = main[1].run_constant(args.rps, args.seconds)
    cpu1, side1, wall = _cpu(main[0]), _cpu(side[0]), time.monotonic() - began
    stop.set()
    if spinner is not None:
        spinner.join()
    if helper is not None:
        helper.join()
    time.sleep(3.0)  # both queues drain before the next condition
    out = {
        "late": round(report.slo_violation_ratio, 4),
        "mean_ms": round(report.mean_ms, 1),
        "p99_ms": round(report.p99_ms, 1),
        "cores": round((cpu1 - cpu0) / wall, 3),
        "beside_cores": round((side1 - side0) / wall, 3),
    }
    if "beside" in reports:
        out["beside_late"] = round(reports["beside"].slo_violation_ratio, 4)
    return out


def measure(args: argparse.Namespace, spec: InferenceServiceSpec, models: dict[str, Path], conditions: list[str], console: Console) -> Results:
    """Every condition ``args.repeats`` times, in turn, on one pair of servers."""
    results: Results = {c: [] for c in conditions}
    with tempfile.TemporaryDirectory(prefix="colocation-") as work:
        factory = ServerFactory(spec, models, Path(work), use_cgroup=True, startup_boost_cores=STARTUP_BOOST_CORES)
        main = _started(factory, args.variant, 0, args.cores, spec.model_name)
        try:
            side = _started(factory, args.beside, 1, args.beside_cores, spec.model_name)
            try:
                slo_ms = spec.slo.latency_ms
                load = LoadGenerator(main.triton.url, spec.model_name, slo_ms=slo_ms, timeout_s=30.0, seed=1)
                side_load = LoadGenerator(side.triton.url, spec.model_name, slo_ms=slo_ms, timeout_s=30.0, seed=2)
                load.run_constant(args.rps / 2.0, 3.0)  # warm
                for repeat in range(args.repeats):
                    for cond in conditions:
                        results[cond].append(_condition(cond, args, (main, load), (side, side_load)))
                        console.print(f"{repeat + 1}/{args.repeats} {cond}: {results[cond][-1]}", highlight=False)
            finally:
                side.triton.stop()
                assert side.cgroup is not None
                side.cgroup.remove()
        finally:
            main.triton.stop()
            assert main.cgroup is not None
            main.cgroup.remove()
    return results


def main() -> None:
    args = _arguments()
    console = Console(stderr=True, width=200)
    try:
        spec = load_resource(args.file).spec
        models = spec_models(spec)
        params = _checked(args, spec, models)
    except (InvalidInput, OSError, ValueError) as exc:
        console.print(f"error: {exc}", highlight=False)
        raise SystemExit(2) from None
    conditions = ["alone", *(f"beside:{r:g}" for r in params["beside"]), *(f"spin:{c:g}" for c in params["spin"])]
    with weighted_self("colocation-client"):
        results = measure(args, spec, models, conditions, console)
    summary = {c: {k: round(statistics.fmean(r[k] for r in rows), 4) for k in rows[0]} for c, rows in results.items() if rows}
    scenario = {
        "spec": str(args.file),
        "variant": args.variant,
        "cores": args.cores,
        "rps": args.rps,
        "beside": args.beside,
        "beside_cores": args.beside_cores,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "slo_ms": spec.slo.latency_ms,
    }
    print(json.dumps({"scenario": scenario, "conditions": results, "summary": summary}))


if __name__ == "__main__":
    main()
