"""The simulator's per-request path, made fast, still computes what the plain per-request loop computes.

References are the straightforward implementations the fast ones replaced: one request at a time through
the M/D/c queue with its cap, and nginx's smooth weighted round-robin slot by slot.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from infadapter.sim.service import ServiceTime, serve
from infadapter.sim.traffic import quantise, swrr_cycle


def reference_serve(arrivals_s: np.ndarray, size: ServiceTime, free_at_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    """Request by request: the k-th admitted request takes worker k mod c; dropped when it would wait over the cap."""
    c, d, cap = size.servers, size.service_s, size.queue_cap_s
    ring = list(np.sort(free_at_s))
    index = 0
    out = np.empty(arrivals_s.size)
    for j, t in enumerate(arrivals_s.tolist()):
        f = ring[index % c]
        s = t if t > f else f
        if s - t > cap:
            out[j] = math.nan
            continue
        ring[index % c] = s + d
        out[j] = s + d - t
        index += 1
    return out, np.sort(np.asarray([ring[(index + i) % c] for i in range(c)]))


@pytest.mark.parametrize("servers", [1, 2, 7])
@pytest.mark.parametrize("load", [0.3, 0.95, 1.5, 40.0])
def test_serve_matches_the_request_by_request_queue(servers: int, load: float) -> None:
    rng = np.random.default_rng(servers * 100 + int(load * 10))
    d, capacity = 0.05, 0.8 * servers / 0.05
    size = ServiceTime(servers, d, capacity, queue_cap_s=1.25 * capacity * d / servers)  # the cap ServiceModel sets
    rate = load * servers / d
    # bursts: the load switches on and off, so stretches with and without drops alternate
    gaps = rng.exponential(1.0 / rate, 20_000) * np.where(rng.random(20_000) < 0.02, 50.0, 1.0)
    arrivals = np.cumsum(gaps)
    free = rng.random(servers) * 0.2
    got, got_free = serve(arrivals, size, free)
    want, want_free = reference_serve(arrivals, size, free)
    assert np.array_equal(np.isnan(got), np.isnan(want))  # the same requests are dropped
    assert np.allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-9)
    assert np.allclose(got_free, want_free, rtol=0, atol=1e-9)


def test_an_overloaded_instance_costs_per_served_request_not_per_arrival() -> None:
    size = ServiceTime(2, 0.1, 16.0, queue_cap_s=0.125)
    arrivals = np.sort(np.random.default_rng(0).random(2_000_000) * 100)  # 20,000 rps at a 20-rps instance
    latency, _ = serve(arrivals, size)
    served = ~np.isnan(latency)
    assert 1500 <= served.sum() <= 2100 and latency[served].max() <= 0.1 + 0.125 + 1e-9


def reference_cycle(int_weights: tuple[int, ...]) -> list[int]:
    current = [0] * len(int_weights)
    total = sum(int_weights)
    out = []
    for _ in range(total):
        for i, w in enumerate(int_weights):
            current[i] += w
        best = max(range(len(current)), key=lambda i: (current[i], -i))
        current[best] -= total
        out.append(best)
    return out


@pytest.mark.parametrize("count", [1, 2, 3, 17, 150])
def test_swrr_cycle_matches_nginx_slot_by_slot(count: int) -> None:
    rng = np.random.default_rng(count)
    for _ in range(5):
        weights = quantise(rng.random(count) * (rng.random(count) > 0.3))
        assert swrr_cycle(weights).tolist() == reference_cycle(weights)


def test_the_benchmark_prints_one_json_object_and_nothing_else() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "simulate.py"), "--rps", "200", "--duration", "20", "--policies", "ours,msplus"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(done.stdout)
    assert set(result["cases"]) == {"paper_spec", "fleet"}
    for case in result["cases"].values():
        assert case["requests"] > 3000 and set(case["policies"]) == {"ours", "msplus"}
        assert all(p["control_s"] + p["serve_s"] <= p["wall_s"] + 0.05 for p in case["policies"].values())
