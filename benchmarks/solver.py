"""Solver speed: median and p99 solve time for the paper-size problem and for joint solves.

(a) the paper's size: 5 variants x 1..20 cores, one service, loads 10..400 rps (the paper's
    capacities when ../shared/data is present, else a synthetic profile of the same shape);
(b) joint solves of 10, 50 and 100 services x 5 variants x 20 core options under one shared budget.

Prints one JSON object. Targets (issue 2): (a) median <= 5 ms, (b) 50 services <= 1 s.
Usage: python benchmarks/solver.py [--backend highs|cbc] [--profile PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.planning import service_problem, static_plan  # noqa: E402
from infadapter.profiles import Profile, ProfilePoint, load_profile  # noqa: E402
from infadapter.solver import Problem, check, solve  # noqa: E402
from infadapter.spec import load_spec  # noqa: E402

PAPER_PROFILE = ROOT.parent / "shared" / "data" / "capacity_result_Feb_21.csv"
RPS_PER_CORE = {"resnet18": 24.4, "resnet34": 13.0, "resnet50": 10.3, "resnet101": 5.1, "resnet152": 3.8}


def synthetic_profile() -> Profile:
    return Profile(750.0, {n: tuple(ProfilePoint(c, k * c * (1 - 0.01 * c)) for c in range(1, 21)) for n, k in RPS_PER_CORE.items()})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(problem: Problem, backend: str) -> float:
    started = time.perf_counter()
    solution = solve(problem, backend)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    issues = check(problem, solution)
    if issues:
        raise SystemExit(f"checker rejected a solution: {issues}")
    return elapsed * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="auto,highs", help="comma-separated: auto (DP fast path), dp, highs, cbc")
    parser.add_argument("--joint-milp-max", type=int, default=10, help="largest joint size timed with the MILP backends")
    parser.add_argument("--profile", type=Path, default=PAPER_PROFILE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    spec = load_spec(ROOT / "examples" / "resnet.yaml")
    profile = load_profile(args.profile, slo_ms=750) if args.profile.is_file() else synthetic_profile()
    current = static_plan(spec, profile, {"resnet152": 20})
    paper = [Problem.single(service_problem(spec, profile, load, current), 20) for load in range(10, 401, 10)]
    # joint: options 1..20 cores for every variant, loads drawn at random, a budget of 12 cores per service
    joint_spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"min_cpu": 1.0, "max_cpu": 20.0})})
    joint_problems: dict[int, list[Problem]] = {}
    rng = random.Random(7)
    for n in (10, 50, 100):
        joint_problems[n] = [
            Problem(
                tuple(service_problem(joint_spec, profile, rng.uniform(10, 200), None, name=f"svc{i}") for i in range(n)),
                budget_cpu=float(12 * n),
            )
            for _ in range(max(1, args.repeats - 1))
        ]
    results: dict[str, object] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        times = [timed(p, backend) for _ in range(args.repeats) for p in paper]
        joint: dict[str, object] = {}
        for n, problems in joint_problems.items():
            if backend in ("highs", "cbc") and n > args.joint_milp_max:
                joint[str(n)] = "skipped (MILP too slow at this size; see --joint-milp-max)"
                continue
            jt = [timed(p, backend) for p in problems]
            joint[str(n)] = {"median_ms": round(statistics.median(jt), 2), "max_ms": round(max(jt), 2), "binaries": n * 5 * 20}
        results[backend] = {
            "paper_size": {"solves": len(times), "median_ms": round(statistics.median(times), 3), "p99_ms": round(percentile(times, 99), 3)},
            "joint": joint,
        }
    print(
        json.dumps(
            {
                "profile": str(args.profile) if args.profile.is_file() else "synthetic",
                "targets": {"paper_size_median_ms": 5, "joint_50_services_ms": 1000},
                "backends": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
