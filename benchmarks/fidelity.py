"""Fidelity: what ``simulate`` predicts against what the embedded mode measures, on the same scenario.

Scenario: the spec (``examples/demo.yaml`` by default), its profile (the one ``infadapter run`` measures and
caches on this machine, or ``--profile``), and the trace window ``infadapter run`` replays, scaled the same
way (no history before it). Each of ``--runs`` runs:

* **measured**: :class:`~infadapter.embedded.EmbeddedRun` (real tritonservers in cgroups, Envoy, Prometheus,
  the open-loop load generator, the controller) with ``--policy``;
* **simulated**: :func:`~infadapter.sim.run.simulate` over the very requests the measured run sent (their
  send times replayed: the load generator's Poisson counts, which its controller observed, are the
  simulated controller's too) with the embedded mode's control-loop delays (``simulate --latencies
  embedded``), starting on the plan the measured run had when its load began (the embedded cold start
  settles before the load).

The simulator is calibrated from measurements, not assumptions: the profile is measured on this machine at
every size of the spec's grid (``--sizes grid``: no interpolated capacity), and the CPU that the load
generator, the controller, Envoy and Prometheus take beside the servers is measured once a second during the
embedded runs and fitted as ``base + per_rps x load`` (:class:`~infadapter.sim.machine.Machine`), the host's
own speed swings may be measured before the runs too (``--host-seconds``, :mod:`hostspeed`: a quarter second
at a time, replayed to each simulated run from its own seed; ``simulated_steady_host`` is then the simulation
without them; off by default: on two batches they moved the simulation away from the measurement), then every
run is simulated on that machine (a starting server taking the CPU one start of its variant was measured to take,
idle, before the runs, ``scenario.machine.startup_cpu_s``, at the whole core the runtime's start-up boost allows,
in the stretch just before it is ready, as measured then, ``scenario.machine.startup_shape``; until batches G and H
of 2026-12-06 spread over its start; ``simulated_start_whole_core``: taking that whole core throughout its start,
the headline until batches R and S of 2026-12-05 found it 5.9 and 10.3 points high; a new server serving as long
after it is asked for as the batch's starts took, ``scenario.machine.ready_s``, the median per variant of the
runs' ``cold_starts_s``, 2.0-2.3 s here, not the spec's load time + the mode's start-up, 3.5-4 s, which the
controller still plans with; ``simulated_start_as_planned``: serving when planned, the headline until batch L),
with servers that drop nothing (Triton as the runtime configures it has no
queue limit: a late request is late, not dropped, and counts in the p99). The host's own speed drifts (a run's
mean 0.96-1.01x its profile's on 2026-12-04, swings of 10-25 % over minutes before), so :mod:`speedprobe`
times a small inference by its CPU time beside the profile and beside every run, and every simulation runs each
run on a host at its measured speed relative to the profile's (``runs_host_speed``; where the profile was
measured with the probe; ``simulated_at_profile_speed`` and ``simulated_as_decided_at_profile_speed``: at the
profile's, the headline until 2026-12-06, when the thirteen saved batches A-M erred by 1.52 points rms that way
against 1.10 at the host's speed, ``benchmarks/fidelity_pool.py``). The simulated loop, too, steps at the phase
within the second that the run's controller stepped at (its decisions' times, :func:`at_phase`), and so sees each
second 1 s + that phase after it ends (:func:`run_latencies`; ``simulated_at_mean_delay``: at the mode's mean, 1.5 s,
the headline until batch P of 2026-12-06). Each run also
reports the servers' measured cold starts (``ready`` events, to compare with the spec's load time + the mode's
start-up) and the client's latency percentiles. Prints
one JSON object on stdout (progress on stderr)::

    {"scenario": {...}, "simulated": {...}, "measured": {...}, "spread": {...}, "errors": {...},
     "measured_standard_error": {...}, "targets": {...}, "targets_exact_chance": {...}, "runs": [...]}

``simulated``/``measured``: means over the runs (``simulated_one_figure``: the simulator's model of a size
measured without its median, every tail taken for queueing, for comparison; ``simulated_as_observed``: the
controller fed what the measured observer read; ``simulated_as_decided``: the measured run's plans replayed at the
seconds they were decided, so the server model is compared on the very plans the real servers ran, each
with its ``errors_as_...``); ``spread``: each measure's min and max over the runs;
``errors``: simulated − measured (violations in points, cores and p99 relative); ``measured_standard_error``:
the measured mean's own standard error over the runs, in the errors' units; ``targets``: violations
within ±0.5 points, cores within 10 %, p99 within 25 %; ``targets_exact_chance``: how often a simulator exact
about the mean of many runs would meet each against a mean with that standard error; ``measured_slow_host``:
the late requests sent while the host ran slow, apart from the rest (:mod:`fidelity_host`).

    .venv/bin/python benchmarks/fidelity.py [--runs 3] [--duration 180] [-f examples/demo.yaml] [--profile P]
        [--host-seconds S] [--save-runs FILE | --from-runs FILE [--profile-of FILE]]

``--save-runs`` keeps what the simulator needs of the measured runs (:mod:`fidelity_runs`); ``--from-runs``
simulates those again instead of measuring, so a change to the simulator is judged on the same runs, and
``--profile-of`` simulates them with another saved batch's profile: what a batch's error owes to its profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hostspeed  # noqa: E402  # beside this file
from fidelity_host import slow_host_counts  # noqa: E402
from fidelity_measure import (  # noqa: E402
    Decided,
    OthersCpu,
    RouterView,
    applied,
    client_lag,
    cold_starts,
    each_request,
    fit_machine,
    late_by_bin,
    latency_quantiles,
    ready_seconds,
    startup_cpu,
)
from fidelity_models import at_phase, run_hosts, run_latencies, run_models  # noqa: E402
from fidelity_output import Scenario, as_counted, clean, measures, observation_noise, output  # noqa: E402
from fidelity_runs import DETAIL, load_runs, rebased, save_runs  # noqa: E402
from fidelity_servers import ServersCpu, routed  # noqa: E402
from rich.console import Console  # noqa: E402
from speedprobe import SpeedProbe, probe_model, relative_speed  # noqa: E402

from infadapter.cache import cache_root  # noqa: E402
from infadapter.cli.run import PEAK_SHARE, cached_profile, max_capacity_rps, pick_trace, profile_cpus, profile_key  # noqa: E402
from infadapter.control import MODE_LATENCIES  # noqa: E402
from infadapter.embedded import EmbeddedRun  # noqa: E402
from infadapter.errors import InvalidInput  # noqa: E402
from infadapter.planning import Plan, cpu_grid  # noqa: E402
from infadapter.profiles import Profile, load_profile, save_profile  # noqa: E402
from infadapter.runtime.local.servers import STARTUP_BOOST_CORES  # noqa: E402
from infadapter.serving.profiler import Profiler, largest_planned_cores, spec_models  # noqa: E402
from infadapter.sim.machine import Machine  # noqa: E402
from infadapter.sim.run import BIN_S, simulate  # noqa: E402
from infadapter.spec import load_resource  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the run's cleanup (finally) stops every child


def _measured_profile(
    spec: Any, models: dict[str, Path], console: Console, sizes: tuple[float, ...] | None, seconds: float, reuse: bool
) -> tuple[Profile, dict[str, float]]:
    """The profile at ``sizes`` with ``seconds`` per load step, measured now (cached beside run's, keyed by both;
    ``reuse``: the cached one if there is one), and what :mod:`speedprobe` read of the host meanwhile (empty when
    unknown). Measured now by default: on this host a variant's capacity moved by 25-60 % between two profiles
    taken hours apart, and the simulated p99 moves 3 % per 1 % of it."""
    if seconds <= 2.0:
        return cached_profile(spec, models, console, sizes), {}
    cpus = sizes or profile_cpus(spec)
    path = cache_root() / "profiles" / f"{spec.model_name}-{profile_key(spec, models, cpus)}-{seconds:g}s.yaml"
    probed = path.with_suffix(".probe.json")
    if reuse and path.is_file():
        return load_profile(path), (json.loads(probed.read_text(encoding="utf-8")) if probed.is_file() else {})
    console.print(f"profile: measuring {len(models)} variants x {len(cpus)} sizes, {seconds:g} s per step (cached in {path})", highlight=False)
    profiler = Profiler(spec.slo.latency_ms, spec.slo.percentile, duration_s=seconds, max_steps=5, tolerance=0.1)
    with SpeedProbe(probe_model(models)) as probe:
        began = time.time()
        profile, _ = profiler.profile(models, spec.model_name, cpus, largest_planned_cores(spec))
        host = probe.window(began, time.time())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_profile(profile, path)
    probed.write_text(json.dumps(host), encoding="utf-8")
    return profile, host


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", type=Path, default=ROOT / "examples" / "demo.yaml")
    parser.add_argument("--profile", type=Path, default=None, help="profile file (default: measured here at --sizes, just before the runs)")
    parser.add_argument(
        "--reuse-profile",
        action="store_true",
        help="use the profile an earlier run measured and cached (this host's drifts by tens of percent in hours)",
    )
    parser.add_argument("--sizes", choices=("grid", "ends"), default="grid", help="measure every size of the spec's grid, or its ends as run does")
    parser.add_argument(
        "--profile-seconds", type=float, default=6.0, help="seconds per load step when profiling (run's profile: 2, too short for a queue to build)"
    )
    parser.add_argument("--duration", type=int, default=180, help="seconds of trace per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--policy", default="ours")
    parser.add_argument(
        "--host-seconds",
        type=float,
        default=0.0,
        help="seconds to measure the host's speed swings before the runs and simulate with them (default 0: a steady host, which two batches found closer)",
    )
    parser.add_argument("--save-runs", type=Path, default=None, help="also write the measured runs, as the simulator replays them, to this file")
    parser.add_argument("--from-runs", type=Path, default=None, help="simulate the runs a --save-runs file holds instead of measuring new ones")
    parser.add_argument(
        "--profile-of",
        type=Path,
        default=None,
        help="with --from-runs: simulate them with the profile another --save-runs file holds (the trace stays as the runs sent it)",
    )
    args = parser.parse_args()
    if args.from_runs is not None and not args.from_runs.is_file():
        parser.error(f"--from-runs: {args.from_runs} is not a file")
    if args.profile_of is not None and (args.from_runs is None or not args.profile_of.is_file()):
        parser.error(f"--profile-of: {args.profile_of} must be a file that --save-runs wrote, given with --from-runs")
    if not 1 <= args.runs <= 20 or not 10 <= args.duration <= 3600:
        parser.error("--runs must be 1..20 and --duration 10..3600")
    if args.host_seconds != 0 and not 1 <= args.host_seconds <= 600:
        parser.error("--host-seconds must be 0 (a steady host) or 1..600")
    return args


def _scenario(args: argparse.Namespace, console: Console, given: tuple[Profile, dict[str, float]] | None = None) -> Scenario:
    """The spec, its models, the profile (``given``, ``--profile``, or measured) and the trace scaled to it."""
    resource = load_resource(args.file)
    spec = resource.spec
    models = spec_models(spec)
    # every planned size measured: the simulator then believes no interpolated capacity the servers do not have
    sizes = tuple(sorted({c for v in spec.variants for c in cpu_grid(spec, v.name)})) if args.sizes == "grid" else None
    probed: dict[str, float] = {}
    if given is not None:
        profile, probed = given
    elif args.profile is not None:
        profile = load_profile(args.profile)
    else:
        profile, probed = _measured_profile(spec, models, console, sizes, args.profile_seconds, args.reuse_profile)
    raw, described = pick_trace(None, None, args.duration)
    factor = PEAK_SHARE * max_capacity_rps(spec, profile) / float(np.nanmax(raw))
    return Scenario(resource.metadata.name, spec, models, profile, np.nan_to_num(raw * factor, nan=0.0), described, factor, probed)


def _measured_runs(args: argparse.Namespace, sc: Scenario, console: Console) -> tuple[list[dict[str, Any]], Machine]:
    """The embedded runs, and the machine fitted to what the other processes took over all of them."""
    rows: list[dict[str, Any]] = []
    loads: list[float] = []
    taken: list[float] = []
    probe = SpeedProbe(probe_model(sc.models))
    try:
        for k in range(args.runs):
            rows.append(_measured_run(args, sc, console, k, probe, loads, taken))
    finally:
        probe.stop()
    return rows, fit_machine(loads, taken)


def _measured_run(
    args: argparse.Namespace, sc: Scenario, console: Console, k: int, probe: SpeedProbe, loads: list[float], taken: list[float]
) -> dict[str, Any]:
    """One embedded run's figures and the simulator's inputs (``loads``/``taken`` get its other processes' CPU)."""
    console.print(f"== run {k + 1}/{args.runs}: embedded", highlight=False)
    started = time.monotonic()
    router = RouterView(sc.spec.slo.latency_ms, sc.rates.size)
    run = EmbeddedRun(
        sc.spec, sc.profile, sc.models, sc.rates, policy=args.policy, name=sc.name, console=console, live=False, runtime_options={"access_log": True}
    )
    requests: dict[str, list[Any]] = {}

    def before_stop(runtime: Any) -> None:
        router(run, runtime)  # waits for the last scrape, so the access log's last lines are flushed too
        requests.update(routed(run, runtime))

    run.before_stop = before_stop
    others, servers = OthersCpu(run), ServersCpu(run)
    decided = Decided(run)
    try:
        summary = run.run().to_json()
    finally:
        others.stop()
        servers.stop()
    seconds, x, y = others.per_second(sc.rates)
    loads += x
    taken += y
    load_began = run.load_started_wall_s or 0.0
    host = probe.window(load_began, load_began + sc.rates.size)
    return {
        "measured": measures(summary),
        "measured_requests": summary.get("requests"),
        "measured_errors": summary.get("errors"),
        "measured_latency": latency_quantiles(run),
        "measured_late_by_10s": late_by_bin(run, sc.spec.slo.latency_ms, sc.rates.size),
        "measured_client": client_lag(run, sc.spec.slo.latency_ms),
        "measured_router": router.figures,
        "served_by_variant": router.by_variant,
        "servers_cpu": servers.per_second(sc.rates.size),
        "routed": requests,
        "observed_rps": router.observed,
        "sent_s": [r.send_s for r in run.requests],
        "measured_each": each_request(run),
        "applied": applied(run),
        "cold_starts_s": cold_starts(run),
        "others_cores_mean": round(statistics.fmean(y), 3) if y else None,
        "others_cores": [[second, round(cores, 3)] for second, cores in zip(seconds, y, strict=True)],
        "host_probe": host,
        "host_speed": relative_speed(sc.profile_probe, host),
        # the host's speed second by second, relative to the profile's (none where the profile's was not measured)
        "host_by_second": probe.by_second(load_began, sc.rates.size, sc.profile_probe["cpu_ms"]) if sc.profile_probe.get("cpu_ms") else None,
        # and every sample it was read from: (seconds since the load began, CPU ms of the probe's inference)
        "host_samples": probe.samples_within(load_began, sc.rates.size),
        "start": next((s.plan for s in run.samples if s.plan is not None), None),
        "decided": decided.schedule(),
        "wall_s": round(time.monotonic() - started, 1),
    }


def _simulated_runs(args: argparse.Namespace, sc: Scenario, rows: list[dict[str, Any]], machine: Machine, console: Console) -> list[dict[str, Any]]:
    """Each measured run simulated from the plan it started on, with its own arrival seed."""
    runs: list[dict[str, Any]] = []
    for k, row in enumerate(rows):
        start: Plan | None = row.pop("start")
        console.print(f"== run {k + 1}/{args.runs}: simulated from {start.describe() if start else 'nothing'}", highlight=False)
        begin: Plan | Literal["cold"] = start if start is not None else "cold"
        latencies = MODE_LATENCIES["embedded"]
        sent = np.asarray(row.pop("sent_s"))  # the very requests the run sent, replayed
        observed = as_counted(row.pop("observed_rps"))
        by_second = row.get("host_by_second")
        rows_of: dict[str, Any] = {"observed_vs_sent": observation_noise(observed, sent, sc.rates.size)}
        if by_second and row.get("measured_each"):  # (a batch saved before either has none)
            rows_of["measured_slow_host"] = slow_host_counts(sent, row["measured_each"]["latency_ms"], by_second, sc.spec.slo.latency_ms)
        for detail in DETAIL:  # a saved batch's, not the output's
            row.pop(detail, None)
        decided = row.pop("decided")
        replayed = at_phase(latencies, decided)
        rows_of["replay_phase_s"] = round(replayed[0].observe_s, 3)  # the measured plans' phase (``at_phase``)
        probed = bool(sc.profile_probe and row.get("host_probe"))
        hosts = run_hosts(machine, k, (row.get("host_speed") or 1.0) if probed else None)
        loops = (run_latencies(latencies, replayed[0].observe_s if decided else None), replayed[0])
        models = run_models(sc, machine, hosts, loops, latencies, observed, by_second)
        for model, profile, seen, host, loop in models:
            policy = "replay" if model.startswith("simulated_as_decided") else args.policy
            sim = simulate(
                *(sc.spec, profile, sc.rates, [policy]),
                seed=k,
                arrivals=sent,
                start=begin,
                latencies=loop,
                machine=host,
                queue_factor=math.inf,
                with_series=True,
                observed_rps=seen,
                options={"replay": {"schedule": replayed[1]}},
            )
            rows_of[model] = measures(sim[policy].summary)
            if model not in ("simulated_one_figure", "simulated_steady_host"):
                late = np.nan_to_num(sim[policy].series["violation_ratio"][::BIN_S])
                rows_of[f"{model}_late_by_10s"] = [round(float(v), 3) for v in late]
        runs.append({**row, **rows_of, "start_plan": start.describe() if start else None})
    return runs


def _saved_batch(path: Path, option: str, console: Console) -> tuple[list[dict[str, Any]], Machine, Profile, dict[str, float]]:
    """:func:`load_runs` of ``path``, or exit 2 naming ``option`` and what is wrong with the file."""
    try:
        return load_runs(path)
    except (ValueError, KeyError, TypeError, InvalidInput) as exc:
        console.print(f"error: {option}: {exc}")
        raise SystemExit(2) from None


def _served_with(path: Path, sc: Scenario, rows: list[dict[str, Any]], console: Console) -> Scenario:
    """``sc`` with the profile of the batch saved at ``path`` (``--profile-of``): the trace stays the one the runs
    sent, and each run's host speed is read against that profile's probe (``rebased``)."""
    _, _, profile, probed = _saved_batch(path, "--profile-of", console)
    missing = profile.covers(sc.spec)
    if missing:
        console.print(f"error: --profile-of: {path}: {'; '.join(map(str, missing))}")
        raise SystemExit(2)
    rebased(rows, sc.profile_probe, probed)
    return dataclasses.replace(sc, profile=profile, profile_probe=probed)


def _host_speeds(args: argparse.Namespace, console: Console) -> tuple[float, ...]:
    """The host's relative speeds, measured before the runs (:mod:`hostspeed`; none with ``--host-seconds 0``)."""
    if args.host_seconds == 0:
        return ()
    console.print(f"== the host's speed, {args.host_seconds:g} s", highlight=False)
    speeds = tuple(hostspeed.relative_speeds(args.host_seconds))
    console.print(f"   {hostspeed.summary(list(speeds))}", highlight=False)
    return speeds


def _saved_duration(rows: list[dict[str, Any]], default: int) -> int:
    """The seconds of trace a saved batch ran: what its observer read each second of (``default`` if unknown)."""
    seconds = {len(r["observed_rps"]) for r in rows if r.get("observed_rps") is not None}
    return seconds.pop() if len(seconds) == 1 else default


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    args = _arguments()
    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=True, width=200)
    start_shape: dict[str, dict[str, float]] = {}
    if args.from_runs is not None:
        rows, machine, profile, probed = _saved_batch(args.from_runs, "--from-runs", console)
        args.runs = len(rows)
        args.duration = _saved_duration(rows, args.duration)
        scenario = _scenario(args, console, (profile, probed))
        if args.profile_of is not None:
            scenario = _served_with(args.profile_of, scenario, rows, console)
    else:
        scenario = _scenario(args, console)
        speeds = _host_speeds(args, console)
        console.print("== the CPU one start of each variant's server takes", highlight=False)
        started, start_shape = startup_cpu(scenario.spec, scenario.models)
        console.print(f"   {started}, {start_shape}", highlight=False)
        rows, machine = _measured_runs(args, scenario, console)
        machine = dataclasses.replace(machine, jitter=speeds, startup_cpu_s=started)
        if args.save_runs is not None:
            save_runs(args.save_runs, rows, machine, scenario.profile, scenario.profile_probe)
    # a starting server may use a whole core while it loads its model, as the embedded runtime lets it, and a new
    # server serves when the runs' servers did, not when the controller planned it would
    machine = dataclasses.replace(machine, startup_cores=min(STARTUP_BOOST_CORES, machine.cores), ready_s=ready_seconds(rows))
    runs = _simulated_runs(args, scenario, rows, machine, console)
    print(json.dumps(clean(output(args, scenario, runs, machine, start_shape)), allow_nan=False))


if __name__ == "__main__":
    main()
