"""The operator's side of a shared budget (infadapter.operator.pool): grants follow the pool object, the members'
needs and what the others still hold; the pool's status is written when it changes. The whole loop runs on the
real control plane in tests/cluster/test_pool.py; here the API is a dict, to show each rule on its own."""

from __future__ import annotations

import asyncio
from typing import Any

from infadapter.operator.pool import Grant, Pools, Refusal
from infadapter.profiles import Profile, ProfilePoint
from infadapter.spec import InferenceServiceSpec, parse_spec


class Api:
    """The two calls the pool makes: get the InferenceBudget, merge-patch its status."""

    def __init__(self, cpu: float | None) -> None:
        self.cpu = cpu
        self.gets = 0
        self.patches: list[dict[str, Any]] = []

    async def get(self, path: str) -> dict[str, Any] | None:
        self.gets += 1
        assert path == "/apis/infadapter.io/v1alpha1/namespaces/ns/inferencebudgets/team"
        return None if self.cpu is None else {"spec": {"cpu": self.cpu, "gpu": 0}}

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        assert (method, path) == ("PATCH", "/apis/infadapter.io/v1alpha1/namespaces/ns/inferencebudgets/team/status")
        self.patches.append(body["status"])
        return {}


def _spec() -> InferenceServiceSpec:
    return parse_spec(
        {
            "variants": [{"name": "fast", "accuracy": 0.7, "loadTimeSeconds": 5}, {"name": "slow", "accuracy": 0.8, "loadTimeSeconds": 8}],
            "budget": {"pool": "team"},
            "resources": {"cpuStep": 0.5, "minCpu": 0.5, "maxCpu": 4, "maxReplicas": 2},
            "adaptation": {"intervalSeconds": 10},
        }
    )


PROFILE = Profile(750.0, {"fast": (ProfilePoint(1, 20), ProfilePoint(4, 80)), "slow": (ProfilePoint(1, 5), ProfilePoint(4, 20))})


def _grant(pools: Pools, api: Api, name: str, demand: float, held: tuple[float, float] | None, now_s: float, *, transitioning: bool = False) -> Grant | Refusal:
    return asyncio.run(pools.grant(api, "ns", name, _spec(), PROFILE, demand, held, now_s, transitioning))  # type: ignore[arg-type]


def test_a_missing_pool_is_refused_with_the_fix() -> None:
    refusal = _grant(Pools(), Api(None), "a", 5.0, None, 0.0)
    assert isinstance(refusal, Refusal) and refusal.reason == "PoolNotFound"
    assert "create it, or remove spec.budget.pool" in refusal.message


def test_a_member_grows_only_as_another_releases_what_it_holds() -> None:
    pools, api = Pools(), Api(8.0)
    first = _grant(pools, api, "a", 60.0, (0.0, 0.0), 0.0)
    assert isinstance(first, Grant) and first.cpu == first.share.cpu == 8.0  # alone in the pool
    _grant(pools, api, "a", 60.0, (8.0, 0.0), 0.5)  # and it uses it all
    # "b" joins while "a" still holds 8 cores: the pool is divided again, but "b" waits for "a" to shrink
    joined = _grant(pools, api, "b", 60.0, (0.0, 0.0), 1.0)
    assert isinstance(joined, Refusal) and joined.reason == "WaitingForPool"
    shrinking = _grant(pools, api, "a", 60.0, (8.0, 0.0), 2.0)
    assert isinstance(shrinking, Grant) and shrinking.cpu == shrinking.share.cpu == 4.0
    # it may switch to a cheaper plan beside what still runs: room for what it held plus the surge of its share
    assert shrinking.cap_cpu == 8.0 + 4.0 * 0.25
    # "a" has shrunk to 5 cores: "b" gets what that frees, not yet its whole share
    _grant(pools, api, "a", 60.0, (5.0, 0.0), 3.0)
    partly = _grant(pools, api, "b", 60.0, (0.0, 0.0), 3.5)
    assert isinstance(partly, Grant) and partly.cpu == 3.0 < partly.share.cpu
    assert "the rest as other members release it" in str(partly.status()["message"])
    _grant(pools, api, "a", 60.0, (4.0, 0.0), 4.0)
    whole = _grant(pools, api, "b", 60.0, (3.0, 0.0), 4.5)
    assert isinstance(whole, Grant) and whole.cpu == whole.share.cpu == 4.0 and whole.cap_cpu == 5.0
    # once "a" has re-planned, finished its transition and fits its share, its room is its share's surge again
    still = _grant(pools, api, "a", 60.0, (4.0, 0.0), 5.0, transitioning=True)
    assert isinstance(still, Grant) and still.cap_cpu == 9.0
    done = _grant(pools, api, "a", 60.0, (4.0, 0.0), 25.0)
    assert isinstance(done, Grant) and done.cap_cpu == 5.0
    # the InferenceBudget's status names both members and what they got
    status = api.patches[-1]
    assert status["memberCount"] == 2 and [m["name"] for m in status["members"]] == ["a", "b"]
    assert status["allocatedCpu"] == 8.0 and status["servedFraction"] == 1.0


def test_the_division_in_force_is_kept_while_it_covers_every_need() -> None:
    pools, api = Pools(), Api(10.0)
    _grant(pools, api, "a", 10.0, (0.0, 0.0), 0.0)
    _grant(pools, api, "b", 10.0, (0.0, 0.0), 0.5)
    before = _grant(pools, api, "a", 10.0, None, 1.0)
    assert isinstance(before, Grant)
    patches = len(api.patches)
    # a small change of load, past the pool interval: the shares in force still cover it, nothing moves
    after = _grant(pools, api, "a", 11.0, None, 30.0)
    assert isinstance(after, Grant) and after.share == before.share and len(api.patches) == patches
    # a need the share no longer covers: divided again, and the status says so
    grown = _grant(pools, api, "a", 70.0, None, 60.0)
    assert isinstance(grown, Grant) and grown.share.cpu > before.share.cpu and len(api.patches) == patches + 1


def test_a_member_not_heard_from_leaves_and_its_share_returns() -> None:
    pools, api = Pools(), Api(6.0)
    _grant(pools, api, "a", 20.0, (0.0, 0.0), 0.0)
    _grant(pools, api, "b", 20.0, (0.0, 0.0), 0.0)
    alone = _grant(pools, api, "a", 20.0, (3.0, 0.0), 200.0)  # "b" was deleted long ago
    assert isinstance(alone, Grant) and alone.cpu == 6.0
    assert api.patches[-1]["memberCount"] == 1
    # deleted (the operator's delete handler): gone at once, and the next member to ask gets the whole pool
    _grant(pools, api, "c", 20.0, (0.0, 0.0), 201.0)
    pools.forget("ns", "a")
    whole = _grant(pools, api, "c", 20.0, (3.0, 0.0), 202.0)
    assert isinstance(whole, Grant) and whole.cpu == 6.0 and api.patches[-1]["memberCount"] == 1
