"""The plan memo is bounded: an operator that runs for months meets ever new load levels."""

from __future__ import annotations

from infadapter.policies.exact import PlanCache
from infadapter.profiles import Profile, ProfilePoint
from infadapter.spec import parse_spec

SPEC = {
    "modelName": "m",
    "variants": [{"name": "a", "accuracy": 0.7}, {"name": "b", "accuracy": 0.8}],
    "slo": {"latencyMs": 500},
    "budget": {"cpu": 16},
}


def test_the_memo_keeps_the_most_recently_used_plans_up_to_its_bound() -> None:
    profile = Profile(500.0, {n: tuple(ProfilePoint(float(c), k * c) for c in range(1, 9)) for n, k in (("a", 10.0), ("b", 4.0))})
    cache = PlanCache(parse_spec(SPEC, "test"), profile, max_entries=3)
    first, six = cache.plan(5.0, None), cache.plan(6.0, None)
    cache.plan(7.0, None)
    assert cache.plan(5.0, None) is first, "a hit: the same plan object"
    cache.plan(8.0, None)  # evicts the least recently used: 6 rps
    assert len(cache) == 3
    assert cache.plan(5.0, None) is first
    assert cache.plan(6.0, None) is not six, "6 rps was evicted: solved again"
    assert len(cache) == 3
