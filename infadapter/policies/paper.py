"""The paper's adapter and its MS+ baseline, as the authors' code ran (research notes §2, §3, §5, §8).

* Capacity model (§3.2): one OLS line per variant fitted on the profile's points at CPU ∈ {1,2,4,8,16},
  ``th_m(n) = int(κ·(s_m·n + b_m))`` with κ = 0.8 (the brute-force version that produced the paper's
  numbers; ``head=True`` gives the later Gurobi version ``floor(κ·(s_m·n + int(min(b_m, 0.99))))``).
* Solver (§3.6a): brute force. The budget is first capped at the fewest cores with which the most
  accurate variant alone reaches λ̂; variants are enumerated in ascending accuracy, each skipped or given
  ``2..remaining`` cores, and a branch stops as soon as its capacity reaches λ̂. Every candidate gets
  the greedy most-accurate-first split (§3.5) and is scored ``AA − α·RC/B − β·LC/max l`` (§3.3).
  No candidate: the fallback ``[(least accurate, B cores, 1.0)]``.
* MS+ (§8): per variant the fewest cores in ``[2, cap]`` reaching λ̂; the best single variant by the
  same score.
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

from infadapter.forecast.simple import ewma_last
from infadapter.planning import Plan, VariantPlan
from infadapter.policies.base import Decision, FloatArray, Observation, StateDict
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
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope), float(intercept)


def linear_capacity(slope: float, intercept: float, cores: int, *, head: bool = False, coef: float = CAPACITY_COEF) -> int:
    """The paper's ``th_m(n)`` (0 for no cores)."""
    if cores <= 0:
        return 0
    if head:
        return max(0, math.floor(coef * (slope * cores + int(min(intercept, 0.99)))))
    return max(0, int(coef * (slope * cores + intercept)))


@dataclass(frozen=True)
class PaperModel:
    """What the paper's solver knows: variants in ascending accuracy, their ``th(n)`` tables, weights."""

    names: tuple[str, ...]
    accuracies: tuple[float, ...]
    load_times_s: tuple[float, ...]
    capacities: tuple[tuple[int, ...], ...]  # capacities[m][n] for n = 0..budget
    budget: int
    min_cores: int
    cost_weight: float
    transition_weight: float

    @staticmethod
    def from_spec(spec: InferenceServiceSpec, profile: Profile, *, head: bool = False, min_cores: int = 2) -> PaperModel:
        variants = sorted(spec.variants, key=lambda v: (v.accuracy, v.name))
        budget = int(spec.budget.cpu)
        tables = []
        for v in variants:
            slope, intercept = fit_linear_capacity(profile, v.name)
            tables.append(tuple(linear_capacity(slope, intercept, n, head=head) for n in range(budget + 1)))
        return PaperModel(
            tuple(v.name for v in variants), tuple(v.accuracy for v in variants), tuple(v.load_time_s for v in variants),
            tuple(tables), budget, min_cores, spec.objective.cost_weight, spec.objective.transition_weight,
        )

    def score(self, cores: Mapping[int, int], load: int, current: Mapping[str, int]) -> tuple[float, dict[int, float]]:
        """(F, quotas by variant index) of a choice, with the greedy most-accurate-first split."""
        remaining = float(load)
        quotas: dict[int, float] = {}
        for m in sorted(cores, key=lambda i: -self.accuracies[i]):
            q = min(float(self.capacities[m][cores[m]]), remaining)
            quotas[m] = q
            remaining -= q
        accuracy = sum(self.accuracies[m] * q for m, q in quotas.items()) / load
        max_load = max(self.load_times_s)
        loading = max((self.load_times_s[m] for m, n in cores.items() if n != current.get(self.names[m], 0)), default=0.0)
        objective = accuracy - self.cost_weight * sum(cores.values()) / self.budget - self.transition_weight * loading / max_load
        return objective, quotas

    def cap(self, load: int) -> int:
        """The fewest cores with which the most accurate variant alone reaches ``load`` (else the budget)."""
        best = self.capacities[-1]
        return next((n for n in range(self.min_cores, self.budget + 1) if best[n] >= load), self.budget)

    def fallback(self, load: int) -> dict[int, int]:
        return {0: self.budget}


def _current_key(current: Plan | None) -> tuple[tuple[str, int], ...]:
    if current is None:
        return ()
    return tuple(sorted((v.name, round(v.cpu_cores)) for v in current.variants))


@lru_cache(maxsize=4096)
def _brute_force(model: PaperModel, load: int, current: tuple[tuple[str, int], ...]) -> tuple[tuple[int, int], ...] | None:
    cur = dict(current)
    cap = model.cap(load)
    best: list[Any] = [None, -math.inf]

    def visit(index: int, remaining: int, chosen: dict[int, int], capacity: int) -> None:
        if capacity >= load and chosen:
            objective, _ = model.score(chosen, load, cur)
            if objective > best[1] + 1e-12:
                best[0], best[1] = dict(chosen), objective
            return
        if index == len(model.names):
            return
        visit(index + 1, remaining, chosen, capacity)
        for n in range(model.min_cores, remaining + 1):
            chosen[index] = n
            visit(index + 1, remaining - n, chosen, capacity + model.capacities[index][n])
            del chosen[index]

    visit(0, cap, {}, 0)
    return None if best[0] is None else tuple(sorted(best[0].items()))


@lru_cache(maxsize=4096)
def _ms_plus(model: PaperModel, load: int, current: tuple[tuple[str, int], ...]) -> tuple[tuple[int, int], ...] | None:
    cur = dict(current)
    cap = model.cap(load)
    best: tuple[tuple[int, int], ...] | None = None
    best_f = -math.inf
    for m in range(len(model.names)):
        n = next((c for c in range(model.min_cores, cap + 1) if model.capacities[m][c] >= load), None)
        if n is None:
            continue
        objective, _ = model.score({m: n}, load, cur)
        if objective > best_f + 1e-12:
            best, best_f = ((m, n),), objective
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
        notes = (f"no configuration reaches {load} rps: fallback {model.names[0]}@{model.budget}",)
    cores = dict(chosen)
    objective, quotas = model.score(cores, load, dict(key))
    rounded = {m: round(q) for m, q in quotas.items()}
    total = sum(rounded.values())
    variants = tuple(
        VariantPlan(
            name=model.names[m], cpu_cores=float(cores[m]), weight=(rounded[m] / total) if total else 1.0 / len(cores),
            capacity_rps=float(model.capacities[m][cores[m]]), accuracy=model.accuracies[m],
        )
        for m in sorted(cores, key=lambda i: -model.accuracies[i])
    )
    served = sum(quotas.values())
    return Plan(
        variants, "optimal" if status == "optimal" else "infeasible", load_rps=float(load), served_rps=served,
        objective=objective, accuracy=sum(model.accuracies[m] * q for m, q in quotas.items()) / served if served else 0.0,
        cost_cpu=float(sum(cores.values())), notes=notes,
    )


def minute_maxima(window_rps: FloatArray) -> FloatArray:
    """Per-minute maxima of a window, minutes counted from its start (the last one may be partial)."""
    values = np.asarray(window_rps, dtype=np.float64)
    peaks = [values[i:i + 60] for i in range(0, values.size, 60)]
    out = [float(np.nanmax(p)) for p in peaks if p.size and not np.isnan(p).all()]
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class StabilisedState(StateDict):
    """The paper's stabilisation: λ̂ of the applied config and the count of "not higher" decisions."""

    current_load: float = 0.0
    counter: int = 0


class PaperPolicy:
    """``infadapter-paper`` and ``msplus``: the paper's adapter loop (see the module docstring)."""

    def __init__(self, spec: InferenceServiceSpec, profile: Profile, *, single_variant: bool = False,
                 interval_s: float = 30.0, first_tick_s: float = 120.0, window_s: int = 600, head: bool = False,
                 lstm_weights: str | None = None, run_start_s: float = 0.0, margin_ratio: float = LOAD_MARGIN - 1.0,
                 stabilisation: int = STABILISATION_DECISIONS) -> None:
        self.name = "msplus" if single_variant else "infadapter-paper"
        self.single_variant = single_variant
        self.interval_s = float(interval_s)
        self.first_tick_s = float(first_tick_s)
        self.window_s = int(window_s)
        self.run_start_s = float(run_start_s)
        self.margin_ratio = float(margin_ratio)
        self.stabilisation = int(stabilisation)
        self.model = PaperModel.from_spec(spec, profile, head=head)
        self.notes: list[str] = []
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
        window = obs.history_rps[obs.history_rps.size - seconds:] if seconds > 0 else obs.history_rps[:0]
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
