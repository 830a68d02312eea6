"""Everything ``infadapter simulate`` checks before it runs: arguments, files, policies, the start.

A simulation of a long trace takes minutes, so every mistake a user can make is found first and
reported at once (exit 2, the option named, a hint): an unknown policy late in ``--policies``, an empty
``--policies``, a ``--report`` that is a file, a profile that lacks a variant of the spec, a
``--start-plan`` the spec or profile cannot run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from infadapter.cli.arguments import named_input
from infadapter.errors import FieldError, InvalidInput, InvalidProfile
from infadapter.latencies import ARRIVAL_MODES

if TYPE_CHECKING:
    from infadapter.planning import Plan
    from infadapter.profiles import Profile
    from infadapter.sim.engine import FloatArray
    from infadapter.spec import InferenceServiceSpec
    from infadapter.traces import TraceOptions

DEFAULT_POLICIES = "ours,infadapter-paper,msplus,vpa,oracle"


@dataclass(frozen=True)
class SimulateArgs:
    """The command line as click parsed it."""

    trace: Path | None
    start: int | None
    duration: int | None
    scenario: str | None
    profile: Path | None
    spec_path: Path | None
    policies: str
    arrivals: str
    history: int | None
    lstm_weights: Path | None
    as_json: bool
    report: Path | None
    start_plan: str | None
    latencies: str = "simulator"


@dataclass(frozen=True)
class Setup:
    """What the run needs, every part checked."""

    spec: InferenceServiceSpec
    spec_path: Path
    profile: Profile
    profile_path: Path
    names: list[str]
    options: dict[str, dict[str, Any]]
    start: Plan | Literal["cold"]
    start_source: str  # "default" or "--start-plan"
    trace_path: Path
    first: int
    last: int
    window: FloatArray
    pre: FloatArray


def check_arguments(args: SimulateArgs, errors: list[FieldError]) -> None:
    """The checks that need no file (appended to ``errors``)."""
    from infadapter.control import MODE_LATENCIES

    if args.scenario not in (None, "paper"):
        errors.append(FieldError("--scenario", f"unknown scenario {args.scenario!r}", "use --scenario paper or --start/--duration"))
    if args.start is not None and args.start < 0:
        errors.append(FieldError("--start", f"{args.start} is negative", "give the first second of the window, >= 0"))
    if args.scenario == "paper" and (args.start is not None or args.duration is not None):
        errors.append(FieldError("--scenario", "--scenario paper fixes the window", "drop --start/--duration"))
    if args.arrivals not in ARRIVAL_MODES:
        errors.append(FieldError("--arrivals", f"unknown mode {args.arrivals!r}", f"use one of {', '.join(ARRIVAL_MODES)}"))
    if args.duration is not None and args.duration <= 0:
        errors.append(FieldError("--duration", "must be > 0", "e.g. 1260"))
    if args.history is not None and args.history < 0:
        errors.append(FieldError("--history", f"{args.history} must be >= 0", "e.g. 86400"))
    if args.lstm_weights is not None and not args.lstm_weights.is_file():
        errors.append(FieldError("--lstm-weights", f"no such file: {args.lstm_weights}", "train them with `infadapter forecast train`"))
    if not [p for p in args.policies.split(",") if p.strip()]:
        hint = f"name at least one, e.g. --policies ours,msplus,oracle (default: {DEFAULT_POLICIES})"
        errors.append(FieldError("--policies", f"no policy given ({args.policies!r})", hint))
    if args.start_plan is not None and not args.start_plan.strip():
        errors.append(FieldError("--start-plan", "empty", "VARIANT=CORES[xREPLICAS][:gpu=N],... or cold; leave it out for the default start"))
    if args.latencies not in MODE_LATENCIES:
        errors.append(FieldError("--latencies", f"unknown mode {args.latencies!r}", f"use one of {', '.join(MODE_LATENCIES)}"))
    if args.report is not None:
        errors.extend(report_errors(args.report))


def report_errors(report: Path) -> list[FieldError]:
    """Why ``report`` cannot be the report's directory (made if missing): checked before the run, not after."""
    hint = "give a directory for report.md and the plots, e.g. --report reports/sim"
    if report.exists() and not report.is_dir():
        return [FieldError("--report", f"{report} is a file, not a directory", hint)]
    parent = report
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [FieldError("--report", f"cannot make {report}: {parent} is a file", hint)]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [FieldError("--report", f"cannot write in {parent}", hint)]
    return []


def _spec_and_profile(args: SimulateArgs) -> tuple[InferenceServiceSpec, Path, Profile, Path]:
    from infadapter.cli.defaults import spec_or_default
    from infadapter.profiles import load_profile
    from infadapter.sim.scenario import DEFAULT_PROFILE, DEFAULT_SPEC, require_file
    from infadapter.spec import load_spec

    if args.scenario == "paper":  # the scenario is the paper's service: its own files, nothing to note
        spec_path = require_file(args.spec_path, DEFAULT_SPEC, "spec", "--spec")
    else:
        spec_path = require_file(spec_or_default(args.spec_path, quiet=args.as_json), DEFAULT_SPEC, "spec", "--spec")
    spec = named_input("--spec", load_spec, spec_path)
    profile_path = require_file(args.profile, DEFAULT_PROFILE, "profile", "--profile")
    profile = named_input("--profile", lambda p: load_profile(p, spec.slo.latency_ms), profile_path)
    missing = profile.covers(spec)
    if missing:
        raise InvalidProfile(missing, f"--profile {profile_path}")
    return spec, spec_path, profile, profile_path


def _start(args: SimulateArgs, spec: InferenceServiceSpec, profile: Profile) -> tuple[Plan | Literal["cold"], str]:
    from infadapter.cli.configuration import configuration_plan
    from infadapter.sim.run import default_start

    text = (args.start_plan or "").strip()
    if text.lower() == "cold":
        return "cold", "--start-plan"
    if text:
        return configuration_plan(text, spec, profile, "--start-plan"), "--start-plan"
    begin = default_start(spec, profile)
    return (begin if begin is not None else "cold"), "default"


def _policies(args: SimulateArgs, spec: InferenceServiceSpec, profile: Profile) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The policy names, each built once here so that a mistake in the last one stops the run before the first."""
    from infadapter.control import Latencies, policy_options
    from infadapter.policies import make_policy, parse_policies, recommended_options
    from infadapter.sim.scenario import DEFAULT_LSTM

    names = parse_policies(args.policies, spec, profile)
    if not names:
        raise InvalidInput([FieldError("--policies", f"{args.policies!r} leaves no policy to run", "e.g. --policies ours,msplus,oracle")], "arguments")
    lstm_weights = args.lstm_weights
    if lstm_weights is None and args.scenario == "paper" and DEFAULT_LSTM.is_file():
        lstm_weights = DEFAULT_LSTM  # the paper's LSTM, as `benchmarks/paper.py` trained and cached it
    paper_options = {"lstm_weights": str(lstm_weights)} if lstm_weights is not None else {}
    options: dict[str, dict[str, Any]] = {"infadapter-paper": paper_options, "msplus": paper_options}
    if args.scenario == "paper":  # the spec carries the paper's settings; ours runs with the project's defaults
        options["ours"] = recommended_options()
    errors: list[FieldError] = []
    for name in names:
        extra = {**policy_options(name, Latencies()), **options.get(name, {})}
        if name == "oracle":
            extra["future_rps"] = np.zeros(1)  # only built to check it: the run gives it the window
        try:
            make_policy(name, spec, profile, **extra)
        except InvalidInput as exc:
            errors.extend(FieldError("--policies", e.message if e.message.startswith(repr(name)) else f"{name!r}: {e.message}", e.hint) for e in exc.errors)
    if errors:
        raise InvalidInput(errors, "arguments")
    return names, options


def setup_from_args(args: SimulateArgs, reading: TraceOptions) -> Setup:
    """Every check, then the trace window: the run that follows only computes."""
    from infadapter.cli.trace import check_simulated_requests, read_cli_trace
    from infadapter.sim.scenario import DEFAULT_TRACE, PAPER_DURATION_S, PAPER_START_S, PRE_HISTORY_S, require_file

    spec, spec_path, profile, profile_path = _spec_and_profile(args)
    start, source = _start(args, spec, profile)
    names, options = _policies(args, spec, profile)
    trace_path = require_file(args.trace, DEFAULT_TRACE, "trace", "--trace")
    first, duration = (PAPER_START_S, PAPER_DURATION_S) if args.scenario == "paper" else (args.start or 0, args.duration)
    series = read_cli_trace(trace_path, reading, quiet=args.as_json).series(path=trace_path)
    if first >= series.size:
        raise InvalidInput([FieldError("--start", f"{first} is past the trace's end ({series.size} s)", "pick an earlier start")], "arguments")
    last = series.size if duration is None else min(series.size, first + duration)
    pre_s = PRE_HISTORY_S if args.history is None else args.history
    window = series[first:last]
    check_simulated_requests(window)
    return Setup(spec, spec_path, profile, profile_path, names, options, start, source, trace_path, first, last, window, series[max(0, first - pre_s) : first])
