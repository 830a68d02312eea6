"""Router figures (Envoy, as the embedded runtime configures it), printed as one JSON object.

1. ``overhead``: the same open-loop Poisson load (tiny ResNet-18, 32x32 input) sent directly to a
   tritonserver and through the runtime's Envoy; the added p50/p99 latency is the router's cost.
2. ``max_rate_one_core``: Envoy with one worker thread (``--concurrency 1``) in front of a trivial
   backend (a second Envoy answering ``200`` with ``direct_response``), driven closed-loop by many
   connections; requests per second answered (a floor: the Python client shares the 2 cores).
3. ``sustained``: a fixed open-loop rate (default 2,000 req/s) for 60 s through the router to the
   trivial backend: sent, errors, achieved rate, client-side p50/p99.

    .venv/bin/python benchmarks/router.py [--rate 2000] [--seconds 60] [--skip-triton]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.processes import free_port  # noqa: E402
from infadapter.runtime.envoy_config import Endpoint  # noqa: E402
from infadapter.runtime.local.envoy import EnvoyProcess, find_envoy  # noqa: E402

REQUEST = b"GET /v2/health/ready HTTP/1.1\r\nHost: bench\r\n\r\n"


def trivial_backend(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """An Envoy that answers every request with 200 (the cheapest HTTP server at hand)."""
    port, admin = free_port(), free_port()
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "ok",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "ok",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "ok",
                                                    "domains": ["*"],
                                                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }
    path = workdir / "backend.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [str(find_envoy()), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "--log-level", "error", "--base-id", "7"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            asyncio.run(_one_request(port))
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("trivial backend did not start")


async def _one_request(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await _read_response(reader)
    writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _closed_loop(port: int, seconds: float, connections: int) -> dict[str, float]:
    done = [0]
    errors = [0]
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            writer.write(REQUEST)
            try:
                ok = await _read_response(reader) == 200
            except (OSError, asyncio.IncompleteReadError):
                errors[0] += 1
                return
            done[0] += ok
            errors[0] += not ok
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return {"rps": round(done[0] / elapsed, 1), "errors": errors[0], "connections": connections, "seconds": round(elapsed, 1)}


async def _open_loop(port: int, rate_rps: float, seconds: float, connections: int) -> dict[str, float]:
    """Fixed-rate arrivals; latency from the scheduled time (no coordinated omission)."""
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = [0]
    loop = asyncio.get_running_loop()

    async def one(at: float) -> None:
        reader, writer = await idle.get()
        try:
            writer.write(REQUEST)
            ok = await _read_response(reader) == 200
            latencies.append((loop.time() - at) * 1000.0)
            errors[0] += not ok
            idle.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            errors[0] += 1
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    total = int(rate_rps * seconds)
    t0 = loop.time()
    tasks = []
    for k in range(total):
        at = t0 + k / rate_rps
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(at)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    lat = np.array(latencies)
    return {
        "target_rps": rate_rps,
        "seconds": seconds,
        "sent": total,
        "ok": int(lat.size) - errors[0],
        "errors": errors[0],
        "achieved_rps": round(total / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "max_ms": round(float(lat.max()), 1),
    }


def router_side(stats: str) -> dict[str, object]:
    """Envoy's own view: 5xx count and the cumulative latency quantiles of ``downstream_rq_time`` (ms)."""
    out: dict[str, object] = {}
    for line in stats.splitlines():
        name, _, value = line.partition(": ")
        if name == "http.ingress.downstream_rq_5xx":
            out["downstream_5xx"] = int(value)
        elif name == "http.ingress.downstream_rq_time" and value.startswith("P"):
            # "P0(interval,cumulative) P25(...) ... P100(...)": keep the cumulative values
            quantiles = {item.split("(")[0][1:]: item.split(",")[1].rstrip(")") for item in value.split()}
            out["rq_time_ms"] = {f"p{k}": float(v) for k, v in quantiles.items() if k in ("50", "99", "99.9", "100")}
    return out


def router_to(port: int, concurrency: int = 1) -> EnvoyProcess:
    router = EnvoyProcess(["trivial"], concurrency=concurrency)
    router.start()
    router.set_endpoints({"trivial": [Endpoint("127.0.0.1", port)]})
    router.set_weights({"trivial": 1.0})
    return router


def overhead(rate_rps: float, seconds: float, rounds: int = 3) -> dict[str, object]:
    from infadapter.cache import cache_root
    from infadapter.loadgen import LoadGenerator
    from infadapter.serving.models import build_family
    from infadapter.serving.repository import Serving, write_repository
    from infadapter.serving.triton import TritonProcess

    (model,) = build_family(cache_root() / "models-test32", ["resnet18"], image_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        write_repository(Path(tmp) / "repo", "resnet", model.path, Serving(1, 1))
        with TritonProcess(Path(tmp) / "repo", allow_grpc=False, log_path=Path(tmp) / "triton.log") as triton:
            router = router_to(triton.http_port)
            runs: dict[str, list[dict[str, float]]] = {"direct": [], "via_envoy": []}
            try:
                for _ in range(rounds):  # interleaved: the machine's background load hits both alike
                    for label, url in (("direct", triton.url), ("via_envoy", router.url)):
                        report = LoadGenerator(url, "resnet", slo_ms=1000).run_constant(rate_rps, seconds)
                        runs[label].append({"p50_ms": report.p50_ms, "p99_ms": report.p99_ms, "errors": report.errors, "sent": report.sent})
            finally:
                router.close()
    out: dict[str, object] = {"rate_rps": rate_rps, "rounds": rounds, "seconds_each": seconds}
    for label, values in runs.items():
        out[label] = {k: round(float(np.median([v[k] for v in values])), 2) for k in ("p50_ms", "p99_ms")} | {
            "errors": int(sum(v["errors"] for v in values)),
            "sent": int(sum(v["sent"] for v in values)),
        }
    for q in ("p50_ms", "p99_ms"):
        out[f"added_{q}"] = round(float(np.median([v[q] for v in runs["via_envoy"]]) - np.median([v[q] for v in runs["direct"]])), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000.0, help="sustained open-loop rate (req/s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the sustained run")
    parser.add_argument("--overhead-rate", type=float, default=50.0, help="rate of the Triton overhead comparison")
    parser.add_argument("--skip-triton", action="store_true", help="skip the Triton overhead comparison")
    args = parser.parse_args()
    result: dict[str, object] = {"machine": {"cpus": os.cpu_count()}}
    if not args.skip_triton:
        result["overhead"] = overhead(args.overhead_rate, 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        backend, port = trivial_backend(Path(tmp))
        try:
            router = router_to(port, concurrency=1)
            try:
                result["max_rate_one_core"] = asyncio.run(_closed_loop(router.listen_port, 5.0, 32))
                result["sustained"] = asyncio.run(_open_loop(router.listen_port, args.rate, args.seconds, 64))
                time.sleep(6.0)  # Envoy merges histograms at its 5-s stats flush
                stats = router._session.get(f"{router.admin_url}/stats", params={"filter": "ingress.downstream_rq_(5xx|time)"}, timeout=5).text
                result["router_side"] = router_side(stats)
            finally:
                router.close()
        finally:
            backend.kill()
            backend.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
