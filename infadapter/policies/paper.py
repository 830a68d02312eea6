"""The paper's adapter and its MS+ baseline, as the authors' code ran (research notes §2, §3, §5, §8).

* Capacity model (§3.2): one OLS line per variant fitted on the profile's points at CPU ∈ {1,2,4,8,16},
  ``th_m(n) = int(κ·(s_m·n + b_m))`` with κ = 0.8 (the brute-force version that produced the paper's
  numbers; ``head=True`` gives the later Gurobi version ``floor(κ·(s_m·n + int(min(b_m, 0.99))))``).
* Sizes: the spec's bounds (:mod:`infadapter.policies.sizes`): one replica of ``minCpu..maxCpu`` cores,
  then more replicas of ``maxCpu``, within the CPU budget — on the paper's spec 2..20 cores, the paper's
  range. The paper's adapter sizes CPU only: variants measured only on GPUs are left out (noted).
* Solver (§3.6a): brute force. The budget is first capped at the fewest cores with which the most
  accurate variant alone reaches λ̂; variants are enumerated in ascending accuracy, each skipped or given
  a size of at most the remaining cores, and a branch stops as soon as its capacity reaches λ̂. Every
  candidate gets the greedy most-accurate-first split (§3.5) and is scored ``AA − α·RC/B − β·LC/max l``
  (§3.3).
  No candidate: the fallback ``[(least accurate, B cores, 1.0)]`` (its largest size within the bounds).
* MS+ (§8): per variant the fewest cores in ``[2, cap]`` (here: the smallest size of at most ``cap``
  cores) reaching λ̂; the best single variant by the same score.
* The tick (§2): every 30 s, the first 2 minutes after the start; the per-second arrivals of the last
  600 s (only the run's own: the dispatcher counter began with the run) reduced to per-minute maxima;
  EWMA(span 10) of them while fewer than 10 exist, then the LSTM (EWMA again when no trained weights
  are given, with a note); λ̂ = int(1.1·forecast); stabilisation: while λ̂ ≤ the λ̂ of the applied
  config and the counter is < 4, count and hold; otherwise solve. Quotas round(q_m); every size change
  recreates the instance (make-before-break, §7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from infadapter.errors import FieldError, InvalidInput
from infadapter.forecast.simple import ewma_last
from infadapter.planning import Plan, VariantPlan
from infadapter.policies.base import Decision, FloatArray, Observation, StateDict
from infadapter.policies.sizes import Rung, ladder
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

#: the CPU sizes the authors fitted their regressions on (``train_capacity_models.py``)
FIT_CPUS = (1.0, 2.0, 4.0, 8.0, 16.0)
CAPACITY_COEF = 0.8
LOAD_MARGIN = 1.10
STABILISATION_DECISIONS = 4


def fit_linear_capacity(profile: Profile, variant: str, cpus: Sequence[float] = FIT_CPUS) -> tuple[float, float]:
    """(slope RPS/core, intercept RPS): OLS of the profile's capacity on cores at ``cpus``."""
    points = {p.cpu_cores: p.capacity_rps for p in profile.points[variant] if p.gpus == 0}
    xs = np.array([c for c in cpus if c in points], dtype=np.float64)
    if xs.size < 2:  # a profile measured elsewhere: fit on whatever it has
        xs = np.array(sorted(points), dtype=np.float64)
    ys = np.array([points[c] for c in xs], dtype=np.float64)
    if xs.size == 1:  # one measurement: a line through it and the origin
        return float(ys[0] / xs[0]), 0.0
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope), float(intercept)


def linear_capacity(slope: float, intercept: float, cores: float, *, head: bool = False, coef: float = CAPACITY_COEF) -> int:
    """The paper's ``th_m(n)`` for one replica of ``cores`` (0 for no cores)."""
    if cores <= 0:
        return 0
    if head:
        return max(0, math.floor(coef * (slope * cores + int(min(intercept, 0.99)))))
    return max(0, int(coef * (slope * cores + intercept)))


@dataclass(frozen=True)
class PaperModel:
    """What the paper's solver knows: variants in ascending accuracy, the sizes each may take
    (:func:`~infadapter.policies.sizes.ladder`: the spec's bounds) with their ``th`` capacities, weights."""

    names: tuple[str, ...]
    accuracies: tuple[float, ...]
    load_times_s: tuple[float, ...]
    lines: tuple[tuple[float, float], ...]  # (slope, intercept) per variant
    rungs: tuple[tuple[Rung, ...], ...]  # sizes per variant, increasing total cores
    rung_rps: tuple[tuple[int, ...], ...]  # replicas x th(cores per replica), per rung
    budget: float
    cost_weight: float
    transition_weight: float
    head: bool = False

    @staticmethod
    def from_spec(spec: InferenceServiceSpec, profile: Profile, *, head: bool = False) -> PaperModel:
        """The model over the variants the profile measured on CPU (the paper's adapter sized CPU only)."""
        variants = sorted((v for v in spec.variants if profile.runs_on_cpu(v.name) and ladder(spec, v.name)), key=lambda v: (v.accuracy, v.name))
        lines = tuple(fit_linear_capacity(profile, v.name) for v in variants)
        rungs = tuple(ladder(spec, v.name) for v in variants)
        rung_rps = tuple(
            tuple(r.replicas * linear_capacity(slope, intercept, r.cpu_cores, head=head) for r in sizes)
            for (slope, intercept), sizes in zip(lines, rungs, strict=True)
        )
        return PaperModel(
            tuple(v.name for v in variants),
            tuple(v.accuracy for v in variants),
            tuple(v.load_time_s for v in variants),
            lines,
            rungs,
            rung_rps,
            float(spec.budget.cpu),
            spec.objective.cost_weight,
            spec.objective.transition_weight,
            head,
        )

    @property
    def capacities(self) -> tuple[tuple[int, ...], ...]:
        """``th_m(n)`` of one replica for whole cores ``n = 0..budget`` (the paper's table)."""
        return tuple(tuple(linear_capacity(s, b, n, head=self.head) for n in range(int(self.budget) + 1)) for s, b in self.lines)

    def score(self, chosen: Mapping[int, int], load: int, current: Mapping[str, Rung]) -> tuple[float, dict[int, float]]:
        """(F, quotas by variant index) of a choice (variant index -> rung index), split most accurate first."""
        remaining = float(load)
        quotas: dict[int, float] = {}
        for m in sorted(chosen, key=lambda i: -self.accuracies[i]):
            q = min(float(self.rung_rps[m][chosen[m]]), remaining)
            quotas[m] = q
            remaining -= q
        accuracy = sum(self.accuracies[m] * q for m, q in quotas.items()) / load
        max_load = max(self.load_times_s)
        loading = max((self.load_times_s[m] for m, k in chosen.items() if self.rungs[m][k] != current.get(self.names[m])), default=0.0)
        cores = sum(self.rungs[m][k].total_cores for m, k in chosen.items())
        objective = accuracy - self.cost_weight * cores / self.budget - self.transition_weight * loading / max_load
        return objective, quotas

    def cap(self, load: int) -> float:
        """The fewest cores with which the most accurate variant alone reaches ``load`` (else the budget)."""
        sizes = zip(self.rungs[-1], self.rung_rps[-1], strict=True)
        return next((r.total_cores for r, rps in sizes if rps >= load), self.budget)

    def fallback(self, load: int) -> dict[int, int]:
        """The least accurate variant on the most it may have (the paper: on the whole budget)."""
        return {0: len(self.rungs[0]) - 1}


def _current_key(current: Plan | None) -> tuple[tuple[str, Rung], ...]:
    if current is None:
        return ()
    return tuple(sorted((v.name, Rung(round(v.cpu_cores, 6), v.replicas)) for v in current.variants))


@lru_cache(maxsize=4096)
def _brute_force(model: PaperModel, load: int, current: tuple[tuple[str, Rung], ...]) -> tuple[tuple[int, int], ...] | None:
    cur = dict(current)
    cap = model.cap(load)
    best: list[Any] = [None, -math.inf]

    def visit(index: int, remaining: float, chosen: dict[int, int], capacity: int) -> None:
        if capacity >= load and chosen:
            objective, _ = model.score(chosen, load, cur)
            if objective > best[1] + 1e-12:
                best[0], best[1] = dict(chosen), objective
            return
        if index == len(model.names):
            return
        visit(index + 1, remaining, chosen, capacity)
        for k, rung in enumerate(model.rungs[index]):
            if rung.total_cores > remaining + 1e-9:
                break
            chosen[index] = k
            visit(index + 1, remaining - rung.total_cores, chosen, capacity + model.rung_rps[index][k])
            del chosen[index]

    visit(0, cap, {}, 0)
    return None if best[0] is None else tuple(sorted(best[0].items()))


@lru_cache(maxsize=4096)
def _ms_plus(model: PaperModel, load: int, current: tuple[tuple[str, Rung], ...]) -> tuple[tuple[int, int], ...] | None:
    cur = dict(current)
    cap = model.cap(load)
    best: tuple[tuple[int, int], ...] | None = None
    best_f = -math.inf
    for m in range(len(model.names)):
        k = next((k for k, r in enumerate(model.rungs[m]) if r.total_cores <= cap + 1e-9 and model.rung_rps[m][k] >= load), None)
        if k is None:
            continue
        objective, _ = model.score({m: k}, load, cur)
        if objective > best_f + 1e-12:
            best, best_f = ((m, k),), objective
    return best


def paper_plan(model: PaperModel, load_rps: int, current: Plan | None, *, single_variant: bool = False) -> Plan:
    """The paper's decision for λ̂ = ``load_rps`` (brute force, or MS+ with ``single_variant``)."""
    load = max(1, int(load_rps))
    key = _current_key(current)
    chosen = (_ms_plus if single_variant else _brute_force)(model, load, key)
    status = "optimal"
    notes: tuple[str, ...] = ()
    if chosen is None:
        chosen = tuple(model.fallback(load).items())
        status = "infeasible"
        ((m, k),) = chosen
        notes = (f"no configuration reaches {load} rps: fallback {model.names[m]}@{model.rungs[m][k].describe()}",)
    picks = dict(chosen)
    objective, quotas = model.score(picks, load, dict(key))
    rounded = {m: round(q) for m, q in quotas.items()}
    total = sum(rounded.values())
    variants = tuple(
        VariantPlan(
            name=model.names[m],
            cpu_cores=model.rungs[m][k].cpu_cores,
            replicas=model.rungs[m][k].replicas,
            weight=(rounded[m] / total) if total else 1.0 / len(picks),
            capacity_rps=float(model.rung_rps[m][k]),
            accuracy=model.accuracies[m],
        )
        for m, k in sorted(picks.items(), key=lambda item: -model.accuracies[item[0]])
    )
    served = sum(quotas.values())
    return Plan(
        variants,
        "optimal" if status == "optimal" else "infeasible",
        load_rps=float(load),
        served_rps=served,
        objective=objective,
        accuracy=sum(model.accuracies[m] * q for m, q in quotas.items()) / served if served else 0.0,
        cost_cpu=sum(v.total_cpu for v in variants),
        notes=notes,
    )


def minute_maxima(window_rps: FloatArray) -> FloatArray:
    """Per-minute maxima of a window, minutes counted from its start (the last one may be partial)."""
    values = np.asarray(window_rps, dtype=np.float64)
    peaks = [values[i : i + 60] for i in range(0, values.size, 60)]
    out = [float(np.nanmax(p)) for p in peaks if p.size and not np.isnan(p).all()]
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class StabilisedState(StateDict):
    """The paper's stabilisation: λ̂ of the applied config and the count of "not higher" decisions."""

    current_load: float = 0.0
    counter: int = 0


class PaperPolicy:
    """``infadapter-paper`` and ``msplus``: the paper's adapter loop (see the module docstring)."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        profile: Profile,
        *,
        single_variant: bool = False,
        interval_s: float = 30.0,
        first_tick_s: float = 120.0,
        window_s: int = 600,
        head: bool = False,
        lstm_weights: str | None = None,
        run_start_s: float = 0.0,
        margin_ratio: float = LOAD_MARGIN - 1.0,
        stabilisation: int = STABILISATION_DECISIONS,
    ) -> None:
        self.name = "msplus" if single_variant else "infadapter-paper"
        self.single_variant = single_variant
        self.interval_s = float(interval_s)
        self.first_tick_s = float(first_tick_s)
        self.window_s = int(window_s)
        self.run_start_s = float(run_start_s)
        self.margin_ratio = float(margin_ratio)
        self.stabilisation = int(stabilisation)
        self.model = PaperModel.from_spec(spec, profile, head=head)
        if not self.model.names:
            raise InvalidInput(
                [
                    FieldError(
                        "policy",
                        f"{self.name!r}: no variant was measured on CPU within the budget",
                        "the paper's adapter sizes CPU only: drop it from --policies, or profile a variant on CPU",
                    )
                ],
                "policy",
            )
        self.notes: list[str] = []
        left_out = [v.name for v in spec.variants if v.name not in self.model.names]
        if left_out:
            self.notes.append(f"CPU sizes only (the paper's adapter): {', '.join(left_out)} left out (no CPU measurement or no size within the budget)")
        if spec.budget.gpu > 0 and any(v.gpu and profile.gpu_counts(v.name) for v in spec.variants):
            self.notes.append("CPU sizes only (the paper's adapter): the spec's GPUs are not used")
        self._lstm: Any = None
        if lstm_weights is not None:
            from infadapter.forecast import make_forecaster

            self._lstm = make_forecaster("lstm", weights_path=lstm_weights)
            self.notes.append(f"forecast: EWMA(span 10) warm-up, then the LSTM {lstm_weights}")
        else:
            self.notes.append("no trained LSTM weights given: EWMA(span 10) of minute peaks throughout")

    def initial_state(self) -> StabilisedState:
        return StabilisedState()

    def state_from_dict(self, raw: dict[str, Any]) -> StabilisedState:
        return StabilisedState.from_dict(raw)

    def between_ticks(self, obs: Observation, state: StabilisedState) -> bool:
        return False

    def forecast(self, obs: Observation) -> tuple[float, float]:
        """(forecast of the next minute's peak, newest observed second)."""
        seconds = int(min(self.window_s, max(0.0, obs.now_s - self.run_start_s)))
        window = obs.history_rps[obs.history_rps.size - seconds :] if seconds > 0 else obs.history_rps[:0]
        peaks = minute_maxima(window)
        observed = window[~np.isnan(window)]
        last = float(observed[-1]) if observed.size else math.nan
        if peaks.size == 0:
            return math.nan, last
        if self._lstm is not None and peaks.size >= 10:
            self._lstm.update(window, now_s=obs.now_s)
            return float(self._lstm.predict(60.0).point_rps), last
        return ewma_last(peaks, 10.0), last

    def decide(self, obs: Observation, state: StabilisedState) -> tuple[Decision, StabilisedState]:
        forecast, observed = self.forecast(obs)
        if math.isnan(forecast):
            return Decision(None, forecast, observed, resize="recreate"), state
        load = int((1.0 + self.margin_ratio) * forecast)
        if load <= state.current_load and state.counter < self.stabilisation:
            return Decision(None, float(load), observed, resize="recreate"), replace(state, counter=state.counter + 1)
        plan = paper_plan(self.model, load, obs.current, single_variant=self.single_variant)
        return Decision(plan, float(load), observed, resize="recreate"), StabilisedState(float(load), 0)
