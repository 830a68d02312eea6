"""The paper's adapter and MS+ reproduce documented decisions of the authors' code (research notes §3, §5, §8)."""

from __future__ import annotations

import numpy as np
import pytest

from infadapter.planning import static_plan
from infadapter.policies import Observation, make_policy
from infadapter.policies.paper import PaperModel, StabilisedState, fit_linear_capacity, minute_maxima, paper_plan

from .fixtures import paper_profile, paper_spec


def test_linear_fit_matches_the_authors_regression() -> None:
    """§3.2: OLS on CPU {1,2,4,8,16} at SLA 750 gives s=24.446, b=-6.167 for ResNet18."""
    slope, intercept = fit_linear_capacity(paper_profile(), "resnet18")
    assert slope == pytest.approx(24.446, abs=1e-3)
    assert intercept == pytest.approx(-6.167, abs=1e-3)
    slope, intercept = fit_linear_capacity(paper_profile(), "resnet152")
    assert (slope, intercept) == (pytest.approx(3.815, abs=1e-3), pytest.approx(-2.25, abs=1e-3))


def test_head_capacity_table_matches_the_notes() -> None:
    """§3.2 table: th(n) at HEAD for ResNet152, n = 2..20."""
    model = PaperModel.from_spec(paper_spec(), paper_profile(), head=True)
    assert model.capacities[-1][2:] == (4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 35, 38, 41, 44, 47, 50, 53, 56, 59)
    assert model.capacities[0][2:6] == (34, 53, 73, 92)


@pytest.mark.parametrize(
    ("load", "infadapter", "msplus"),
    [
        (20, {"resnet152": (8, 20)}, ("resnet152", 8)),
        (50, {"resnet101": (3, 12), "resnet50": (5, 38)}, ("resnet50", 7)),
        (100, {"resnet50": (13, 100)}, ("resnet50", 13)),
        (200, {"resnet50": (16, 129), "resnet18": (4, 71)}, ("resnet34", 20)),
        (250, {"resnet50": (10, 80), "resnet34": (2, 20), "resnet18": (8, 150)}, ("resnet18", 14)),
        (300, {"resnet50": (7, 55), "resnet18": (13, 245)}, ("resnet18", 16)),
    ],
)
def test_brute_force_and_msplus_reproduce_the_section_3_7_table(load: int, infadapter: dict[str, tuple[int, int]], msplus: tuple[str, int]) -> None:
    spec, profile = paper_spec(), paper_profile()
    model = PaperModel.from_spec(spec, profile, head=True)
    current = static_plan(spec, profile, {"resnet152": 20})
    plan = paper_plan(model, load, current)
    got = {v.name: (round(v.cpu_cores), round(v.weight * load)) for v in plan.variants}
    assert got == infadapter
    single = paper_plan(model, load, current, single_variant=True)
    assert [(v.name, round(v.cpu_cores)) for v in single.variants] == [msplus]


def test_infeasible_load_falls_back_to_the_least_accurate_variant_on_the_whole_budget() -> None:
    model = PaperModel.from_spec(paper_spec(), paper_profile())
    plan = paper_plan(model, 5000, None)
    assert plan.status == "infeasible"
    assert [(v.name, v.cpu_cores) for v in plan.variants] == [("resnet18", 20.0)]


def test_minute_maxima_are_counted_from_the_window_start() -> None:
    window = np.concatenate((np.full(60, 10.0), np.full(60, 30.0), np.full(30, 20.0)))
    assert minute_maxima(window).tolist() == [10.0, 30.0, 20.0]


def _obs(now_s: float, rps: float, current_load: float | None = None) -> Observation:
    history = np.full(int(now_s), rps)
    spec, profile = paper_spec(), paper_profile()
    return Observation(now_s, history, static_plan(spec, profile, {"resnet152": 20}), 67.0)


def test_forecast_is_ewma_of_minute_peaks_plus_ten_percent() -> None:
    policy = make_policy("infadapter-paper", paper_spec(), paper_profile())
    decision, _ = policy.decide(_obs(300.0, 50.0), policy.initial_state())
    assert decision.forecast_rps == int(1.1 * 50.0)  # λ̂ = int(1.1 · forecast)
    assert decision.plan is not None
    assert "EWMA" in policy.notes[0]


def test_stabilisation_scales_down_only_on_the_fifth_lower_forecast() -> None:
    """§2 step 3: λ̂ ≤ the applied λ̂ holds while the counter is < 4; a higher λ̂ re-solves at once."""
    policy = make_policy("infadapter-paper", paper_spec(), paper_profile())
    state = StabilisedState(current_load=100.0, counter=0)
    reasons = []
    for _ in range(5):
        decision, state = policy.decide(_obs(300.0, 40.0), state)
        reasons.append(decision.plan is not None)
    assert reasons == [False, False, False, False, True]
    assert state == StabilisedState(decision.forecast_rps, 0)
    assert decision.forecast_rps in (43.0, 44.0)  # int(1.1 x EWMA(40, ...)), EWMA ~ 40 up to rounding
    state = StabilisedState(current_load=10.0, counter=3)
    decision, state = policy.decide(_obs(300.0, 40.0), state)
    assert decision.plan is not None and state.counter == 0


def test_paper_policy_only_sees_its_own_run() -> None:
    """The dispatcher counter began with the run: history before t=0 is ignored."""
    policy = make_policy("infadapter-paper", paper_spec(), paper_profile())
    history = np.concatenate((np.full(3600, 500.0), np.full(120, 50.0)))
    obs = Observation(120.0, history, None, 0.0)
    decision, _ = policy.decide(obs, policy.initial_state())
    assert decision.forecast_rps == 55.0


def test_every_size_change_recreates() -> None:
    policy = make_policy("msplus", paper_spec(), paper_profile())
    decision, _ = policy.decide(_obs(300.0, 50.0), policy.initial_state())
    assert decision.resize == "recreate"
    assert decision.plan is not None and len(decision.plan.variants) == 1
