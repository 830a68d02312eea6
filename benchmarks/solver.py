"""Solver speed: median and worst solve time, the independent checker included, per backend.

(a) the paper's size: 5 variants x 2..20 cores, one service, loads 10..400 rps (the paper's
    capacities when ../shared/data is present, else a synthetic profile of the same shape);
(b) 300 replicas: the same service with 1..300 replicas per variant and 600 cores, loads 100..6000 rps
    (about 1,550 options per variant);
(c) joint solves of 10, 50 and 100 services x 5 variants x 20 core options under one shared budget.

Every solve goes through ``solve()``, which runs the checker on its answer; ``solved_by`` counts
which method answered (``auto`` picks one per problem). Prints one JSON object and nothing else
on stdout. Targets (issue 15): (a) median <= 2 ms, (b) every solve <= 1 s, (c) 50 services <= 0.5 s.
Usage: python benchmarks/solver.py [--backends auto,highs] [--cases paper_size,...] [--profile PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.planning import service_problem, static_plan  # noqa: E402
from infadapter.planning.problem import spec_problem  # noqa: E402
from infadapter.profiles import Profile, ProfilePoint, load_profile  # noqa: E402
from infadapter.solver import Problem, check, solve  # noqa: E402
from infadapter.spec import InferenceServiceSpec, load_spec  # noqa: E402

PAPER_PROFILE = ROOT.parent / "shared" / "data" / "capacity_result_Feb_21.csv"
RPS_PER_CORE = {"resnet18": 24.4, "resnet34": 13.0, "resnet50": 10.3, "resnet101": 5.1, "resnet152": 3.8}
REPLICA_LOADS = (100, 500, 1000, 2000, 3000, 4000, 5000, 6000)
JOINT_SIZES = (10, 50, 100)
CASES = ("paper_size", "replicas_300", *(f"joint_{n}" for n in JOINT_SIZES), "accelerators")
#: examples/accelerators.yaml: CPUs, T4s and A100s at their prices, 3 variants (2 on both GPU types)
ACCELERATOR_LOADS = range(50, 3001, 50)
TARGETS = {"paper_size_median_ms": 2, "replicas_300_max_ms": 1000, "joint_50_services_median_ms": 500}


def synthetic_profile() -> Profile:
    return Profile(750.0, {n: tuple(ProfilePoint(c, k * c * (1 - 0.01 * c)) for c in range(1, 21)) for n, k in RPS_PER_CORE.items()})


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q, method="nearest"))  # nearest rank: a solve measured


def timed(problem: Problem, backend: str, solved_by: Counter[str]) -> float:
    started = time.perf_counter()
    solution = solve(problem, backend)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    issues = check(problem, solution)
    if issues or solution.status not in ("optimal", "infeasible"):
        raise SystemExit(f"{backend}: {solution.status}, checker: {issues}")
    solved_by[solution.backend] += 1
    return elapsed * 1000.0


def summary(times: list[float]) -> dict[str, float]:
    return {"solves": len(times), "median_ms": round(statistics.median(times), 3), "p99_ms": round(percentile(times, 99), 3), "max_ms": round(max(times), 3)}


def problems(name: str, spec: InferenceServiceSpec, profile: Profile, repeats: int) -> list[Problem]:
    """The problems of one case, built only when it is timed: live problems of other cases would
    slow the Python garbage collector during every solve (hundreds of thousands of options)."""
    if name == "paper_size":
        current = static_plan(spec, profile, {"resnet152": 20})
        return [Problem.single(service_problem(spec, profile, load, current), 20) for load in range(10, 401, 10)]
    if name == "accelerators":
        typed = load_spec(ROOT / "examples" / "accelerators.yaml")
        typed_profile = load_profile(ROOT / "examples" / "accelerators-profile.yaml")
        return [spec_problem(typed, service_problem(typed, typed_profile, load, None)) for load in ACCELERATOR_LOADS]
    if name == "replicas_300":
        grid = {"resources": spec.resources.model_copy(update={"max_replicas": 300}), "budget": spec.budget.model_copy(update={"cpu": 600.0})}
        many = spec.model_copy(update=grid)
        return [Problem.single(service_problem(many, profile, load, None), 600) for load in REPLICA_LOADS]
    # joint: options 1..20 cores for every variant, loads drawn at random, a budget of 12 cores per service
    n = int(name.split("_")[1])
    joint_spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"min_cpu": 1.0, "max_cpu": 20.0})})
    rng = random.Random(7)
    for _ in range(sum(m for m in JOINT_SIZES if m < n) * max(1, repeats - 1)):  # the loads drawn for the smaller sizes
        rng.random()
    return [
        Problem(tuple(service_problem(joint_spec, profile, rng.uniform(10, 200), None, name=f"svc{i}") for i in range(n)), budget_cpu=float(12 * n))
        for _ in range(max(1, repeats - 1))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", default="auto,highs", help="comma-separated: auto (the faster exact method), dp, highs, cbc")
    parser.add_argument("--joint-milp-max", type=int, default=10, help="largest joint size timed with the MILP backends")
    parser.add_argument("--profile", type=Path, default=PAPER_PROFILE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="", help="comma-separated subset of: " + ", ".join(CASES) + " (default: all)")
    args = parser.parse_args()
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()] or list(CASES)
    if unknown := set(wanted) - set(CASES):
        parser.error(f"--cases: unknown {', '.join(sorted(unknown))}")

    spec = load_spec(ROOT / "examples" / "resnet.yaml")
    profile = load_profile(args.profile, slo_ms=750) if args.profile.is_file() else synthetic_profile()
    results: dict[str, object] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        solved_by: Counter[str] = Counter()
        section: dict[str, object] = {}
        for name in wanted:
            if backend in ("highs", "cbc") and name.startswith("joint_") and int(name.split("_")[1]) > args.joint_milp_max:
                section[name] = "skipped (MILP too slow at this size; see --joint-milp-max)"
                continue
            if backend == "dp" and name == "accelerators":
                section[name] = "skipped (the DP solves CPU-only problems)"
                continue
            batch = problems(name, spec, profile, args.repeats)
            repeats = args.repeats if name == "paper_size" else 1
            section[name] = summary([timed(p, backend, solved_by) for _ in range(repeats) for p in batch])
            del batch
        results[backend] = section | {"solved_by": dict(solved_by)}
    profile_name = str(args.profile) if args.profile.is_file() else "synthetic"
    print(json.dumps({"profile": profile_name, "targets": TARGETS, "backends": results}, indent=1))


if __name__ == "__main__":
    main()
