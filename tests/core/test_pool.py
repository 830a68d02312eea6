"""A pool's division among its members (infadapter.planning.pool): the joint plan fits, the shares sum within the
pool, each member can serve from its share what the division promised, and a short pool is shared fairly."""

from __future__ import annotations

import itertools

import pytest

from infadapter.planning import plan_for_load
from infadapter.planning.pool import Member, Share, allocate, minimum, with_budget
from infadapter.profiles import Profile, ProfilePoint
from infadapter.spec import InferenceServiceSpec, parse_spec


def _spec(max_replicas: int = 2) -> InferenceServiceSpec:
    return parse_spec(
        {
            "variants": [{"name": "fast", "accuracy": 0.7, "loadTimeSeconds": 5}, {"name": "slow", "accuracy": 0.8, "loadTimeSeconds": 8}],
            "budget": {"cpu": 6},
            "resources": {"cpuStep": 0.5, "minCpu": 0.5, "maxCpu": 4, "maxReplicas": max_replicas},
        }
    )


def _profile() -> Profile:
    return Profile(750.0, {"fast": (ProfilePoint(1, 20), ProfilePoint(4, 80)), "slow": (ProfilePoint(1, 5), ProfilePoint(4, 20))})


def _members(loads: dict[str, float]) -> dict[str, Member]:
    return {name: Member(_spec(), _profile(), load) for name, load in loads.items()}


def _serves_alone(share: Share) -> float:
    """What the member's own plan within its share serves of its predicted load (what its controller will do)."""
    plan = plan_for_load(with_budget(_spec(), share.cpu, share.gpu), _profile(), share.demand_rps)
    return plan.served_rps


def test_a_pool_that_serves_everyone_gives_each_member_a_share_its_own_plan_serves_its_load_from() -> None:
    shares = allocate(_members({"big": 90.0, "small": 4.0}), 12.0, 0)
    assert {s.reason for s in shares.values()} == {"Shared"}
    assert sum(s.cpu for s in shares.values()) <= 12.0 + 1e-9
    for share in shares.values():
        assert share.served_fraction == 1.0
        assert share.cpu >= share.needed_cpu
        assert _serves_alone(share) == pytest.approx(share.demand_rps)
    # what the joint plan leaves is handed out by predicted load: the busy member gets most of it
    assert shares["big"].cpu - shares["big"].needed_cpu > shares["small"].cpu - shares["small"].needed_cpu
    # the whole pool is given out (to the quantum)
    assert sum(s.cpu for s in shares.values()) == pytest.approx(12.0, abs=0.01)


def test_a_short_pool_serves_every_member_the_same_fraction_at_least() -> None:
    shares = allocate(_members({"a": 100.0, "b": 100.0, "c": 30.0}), 4.0, 0)
    assert {s.reason for s in shares.values()} == {"PoolShort"}
    assert sum(s.cpu for s in shares.values()) <= 4.0 + 1e-9
    fractions = {name: s.served_fraction for name, s in shares.items()}
    floor = min(fractions.values())
    assert 0.05 < floor < 1.0
    # no member is starved to feed another: the smallest fraction is the common one, and every member's own
    # plan within its share serves at least that fraction of its load
    for share in shares.values():
        assert _serves_alone(share) >= floor * share.demand_rps - 1e-6
    # the two equal members are treated alike, whatever their names
    assert shares["a"].cpu == shares["b"].cpu and fractions["a"] == fractions["b"]


def test_a_small_member_of_a_short_pool_keeps_the_smallest_plan_that_serves_it_whole() -> None:
    shares = allocate(_members({"tiny": 2.0, "huge": 500.0}), 3.0, 0)
    assert shares["tiny"].reason == "PoolShort" and shares["tiny"].served_fraction == 1.0
    assert shares["huge"].served_fraction < 1.0
    assert shares["tiny"].cpu == pytest.approx(minimum(_spec(), _profile(), 3.0, 0)[0])


def test_members_past_what_the_pool_can_hold_get_nothing_in_name_order() -> None:
    smallest, _ = minimum(_spec(), _profile(), 1.0, 0)
    assert smallest == 0.5
    shares = allocate(_members({"c": 1.0, "a": 1.0, "b": 1.0}), 1.0, 0)
    assert [n for n, s in sorted(shares.items()) if s.reason == "PoolExhausted"] == ["c"]
    assert shares["c"].cpu == 0 and "grow the pool" in shares["c"].message
    assert sum(s.cpu for s in shares.values()) <= 1.0


def test_shares_never_sum_past_the_pool_and_always_cover_their_joint_part() -> None:
    for pool, loads in itertools.product((1.0, 2.5, 7.0, 20.0), ((0.0, 0.0), (3.0, 70.0), (40.0, 41.0), (150.0, 1.0))):
        shares = allocate(_members({"x": loads[0], "y": loads[1]}), pool, 0)
        assert sum(s.cpu for s in shares.values()) <= pool + 1e-9, (pool, loads)
        for share in shares.values():
            assert share.cpu >= share.needed_cpu - 1e-9 and 0.0 <= share.served_fraction <= 1.0
            if share.reason == "Shared":
                assert _serves_alone(share) == pytest.approx(share.demand_rps), (pool, loads, share)


def test_members_with_no_load_share_the_pool_equally() -> None:
    shares = allocate(_members({"a": 0.0, "b": 0.0}), 5.0, 0)
    assert shares["a"].cpu == shares["b"].cpu == pytest.approx(2.5, abs=0.01)


def _gpu_spec() -> InferenceServiceSpec:
    return parse_spec(
        {
            "variants": [{"name": "fast", "accuracy": 0.7}, {"name": "slow", "accuracy": 0.8, "gpu": True}],
            "budget": {"cpu": 6, "gpu": 1},
            "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 4, "maxReplicas": 2},
        }
    )


def _gpu_profile() -> Profile:
    return Profile(750.0, {"fast": (ProfilePoint(1, 20), ProfilePoint(4, 80)), "slow": (ProfilePoint(1, 5), ProfilePoint(1, 200, gpus=1))})


def test_gpus_of_a_pool_go_whole_to_the_members_whose_plans_use_them_and_never_past_the_pool() -> None:
    members = {name: Member(_gpu_spec(), _gpu_profile(), load) for name, load in {"a": 150.0, "b": 150.0, "c": 10.0}.items()}
    shares = allocate(members, 12.0, 2)
    assert sum(s.gpu for s in shares.values()) <= 2 and sum(s.cpu for s in shares.values()) <= 12.0 + 1e-9
    for name, share in shares.items():
        plan = plan_for_load(with_budget(_gpu_spec(), share.cpu, share.gpu), _gpu_profile(), share.demand_rps)
        assert plan.cost_gpu <= share.gpu and plan.served_rps >= share.served_fraction * share.demand_rps - 1e-6, (name, share, plan)
    # the two busy members each serve their 150 rps on a GPU: the pool's two GPUs are theirs
    assert shares["a"].gpu == shares["b"].gpu == 1 and shares["c"].gpu == 0
