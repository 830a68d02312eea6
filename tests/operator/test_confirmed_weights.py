"""The split a leaving variant is drained on is the one Envoy applies, as every ready router pod reports it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from infadapter.runtime.envoy_config import RUNTIME_PREFIX
from infadapter.runtime.kube.actuator import _confirmed
from infadapter.runtime.kube.objects import LABEL_COMPONENT
from infadapter.spec import parse_spec

SPEC = parse_spec({"variants": [{"name": "small", "accuracy": 0.7}, {"name": "large", "accuracy": 0.8}]})


def router(ip: str, ready: bool = True) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": {"labels": {LABEL_COMPONENT: "router"}}, "status": {"phase": "Running", "podIP": ip, "conditions": conditions}}


def runtime(**weights: int) -> str:
    return json.dumps({"entries": {f"{RUNTIME_PREFIX}.{k}": {"final_value": str(v), "layer_values": ["", str(v)]} for k, v in weights.items()}})


def test_a_leaving_variant_counts_as_routed_while_any_router_pod_still_sends_to_it() -> None:
    answers = {"10.0.0.1": runtime(small=10000, large=0), "10.0.0.2": runtime(small=5000, large=5000)}
    calls: list[str] = []

    async def probe(ip: str) -> str:
        calls.append(ip)
        return answers[ip]

    written = {"small": 1.0}
    shares = asyncio.run(_confirmed(probe, [router("10.0.0.1"), router("10.0.0.2"), router("10.0.0.3", ready=False)], SPEC, written))
    assert calls == ["10.0.0.1", "10.0.0.2"]  # an unready router pod serves nothing: not asked
    assert shares["large"] > 0  # the second pod has not applied the new split yet


def test_once_every_router_pod_applies_the_split_it_is_the_one_reported() -> None:
    async def probe(ip: str) -> str:
        return runtime(small=10000, large=0)

    assert asyncio.run(_confirmed(probe, [router("10.0.0.1"), router("10.0.0.2")], SPEC, {"small": 1.0})) == {"small": 1.0}


def test_a_router_that_cannot_be_asked_does_not_block_the_switch() -> None:
    async def probe(ip: str) -> str:
        raise OSError("connection refused")

    assert asyncio.run(_confirmed(probe, [router("10.0.0.1")], SPEC, {"small": 1.0})) == {"small": 1.0}
