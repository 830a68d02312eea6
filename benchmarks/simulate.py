"""Simulator speed at scale: a 20,000 rps x 10 min window under ours, msplus and oracle (issue 14: < 60 s).

Two services meet the same seeded trace (20,000 rps on average, a +-15 % wave over 5 minutes, a 1.2x burst
from minute 6 to 7, 3 % noise; ~12 M requests, each simulated once per policy):

* ``paper_spec``: ``examples/resnet.yaml`` as ``infadapter simulate`` takes it without ``--spec`` (the
  paper's five ResNets on one replica of up to 20 cores): the service is overloaded ~40x, nearly every
  request is dropped at the queue cap, and the per-request path is the work;
* ``fleet``: the same variants sized for the load (2,000 cores, up to 100 replicas of 2..20 cores, so
  ~1,900 options per variant), starting on the plan for the first minute's peak with an hour of
  history: each decision is a large exact solve.

The paper's capacities are used when ../shared/data is present, else a synthetic profile of the same
shape. For each policy: its wall time split into the control loop (``control_s``, of which ``solve_s`` in
``infadapter.planning.solve``'s solver calls, counted in ``solves``) and the requests (``serve_s``: routing,
queues, summary), and its summary; per case the wall and the CPU seconds of this process (on a machine
shared with other work the wall time mostly measures the others). Prints one JSON object and nothing
else on stdout.
Usage: python benchmarks/simulate.py [--cases paper_spec,fleet] [--rps 20000] [--duration 600] [--policies ours,msplus,oracle] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.planning import Plan, plan_for_load  # noqa: E402
from infadapter.profiles import Profile, ProfilePoint, load_profile  # noqa: E402
from infadapter.sim.engine import FloatArray  # noqa: E402
from infadapter.sim.run import simulate  # noqa: E402
from infadapter.spec import InferenceServiceSpec, load_spec, parse_spec  # noqa: E402

PAPER_PROFILE = ROOT.parent / "shared" / "data" / "capacity_result_Feb_21.csv"
RPS_PER_CORE = {"resnet18": 24.4, "resnet34": 13.0, "resnet50": 10.3, "resnet101": 5.1, "resnet152": 3.8}
TARGET_S = 60.0
#: history before the fleet's window (the same shape, another seed), so forecasters start warm
PRE_HISTORY_S = 3600
CASES = ("paper_spec", "fleet")


def paper_spec() -> InferenceServiceSpec:
    return load_spec(ROOT / "examples" / "resnet.yaml")


def fleet_spec() -> InferenceServiceSpec:
    """examples/resnet.yaml with a fleet's budget: 2,000 cores, up to 100 replicas per variant."""
    raw = paper_spec().to_dict()
    raw["budget"]["cpu"] = 2000
    raw["resources"]["maxReplicas"] = 100
    return parse_spec(raw, "benchmark")


def profile() -> Profile:
    if PAPER_PROFILE.is_file():
        return load_profile(PAPER_PROFILE, 750.0)
    return Profile(750.0, {n: tuple(ProfilePoint(c, k * c * (1 - 0.01 * c)) for c in range(1, 21)) for n, k in RPS_PER_CORE.items()})


def trace(rps: float, duration_s: int, seed: int) -> FloatArray:
    t = np.arange(duration_s, dtype=np.float64)
    wave = 1.0 + 0.15 * np.sin(2 * math.pi * t / 300.0)
    burst = np.where((t >= 360) & (t < 420), 1.2, 1.0)
    noise = np.random.default_rng(seed).normal(1.0, 0.03, duration_s)
    shape = wave * burst * noise
    out: FloatArray = rps * shape / shape.mean()
    return out


class Clock:
    """Per policy: when its control loop, its serving and its solver calls took place (wall seconds)."""

    def __init__(self) -> None:
        self.marks: dict[str, dict[str, float]] = {}
        self.current = ""
        self.solve_s: dict[str, float] = {}
        self.solves: dict[str, int] = {}

    def progress(self, name: str, what: str, done: float) -> None:
        now = time.perf_counter()
        marks = self.marks.setdefault(name, {"start": now})
        self.current = name
        if what.startswith("serving"):
            marks["serving"] = now
        elif what == "done":
            marks["done"] = now

    def timed_solve(self, solve: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return solve(*args, **kwargs)
            finally:
                self.solve_s[self.current] = self.solve_s.get(self.current, 0.0) + time.perf_counter() - started
                self.solves[self.current] = self.solves.get(self.current, 0) + 1

        return timed


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    spec, prof = (paper_spec() if case == "paper_spec" else fleet_spec()), profile()
    rates = trace(args.rps, args.duration, args.seed)
    names = [p for p in args.policies.split(",") if p]
    pre: FloatArray | None = None
    start: Plan | None = None
    if case == "fleet":
        pre = trace(args.rps, PRE_HISTORY_S, args.seed + 1)
        start = plan_for_load(spec, prof, float(rates[:60].max()))
    clock = Clock()
    names_of_planning = vars(importlib.import_module("infadapter.planning.solve"))  # the solver it calls, timed for this case
    solve = names_of_planning["solve"]
    names_of_planning["solve"] = clock.timed_solve(solve)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        runs = simulate(spec, prof, rates, names, pre_history_rps=pre, start=start, seed=args.seed, progress=clock.progress)
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    finally:
        names_of_planning["solve"] = solve
    policies = {}
    for name, run in runs.items():
        marks = clock.marks[name]
        policies[name] = {
            "wall_s": round(run.wall_s, 2),
            "control_s": round(marks["serving"] - marks["start"], 2),
            "solve_s": round(clock.solve_s.get(name, 0.0), 2),
            "solves": clock.solves.get(name, 0),
            "serve_s": round(marks["done"] - marks["serving"], 2),
            **{k: (None if math.isnan(v) else round(v, 6)) for k, v in run.summary.items()},
        }
    return {"requests": int(rates.sum()), "wall_s": round(wall_s, 2), "cpu_s": round(cpu_s, 2), "within_target": wall_s < TARGET_S, "policies": policies}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--rps", type=float, default=20_000.0)
    parser.add_argument("--duration", type=int, default=600)
    parser.add_argument("--policies", default="ours,msplus,oracle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}: use some of {', '.join(CASES)}")
    out = {
        "rps": args.rps,
        "duration_s": args.duration,
        "target_s": TARGET_S,
        "profile": "paper" if PAPER_PROFILE.is_file() else "synthetic",
        "cases": {case: run_case(case, args) for case in cases},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
