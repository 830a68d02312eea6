"""Test harness: the emulator and a fake Prometheus on background threads, the real operator via KopfRunner."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import kmock
import yaml

from tests.cluster.kube import PROFILE, service_body
from tests.operator.crdschema import load_crd
from tests.operator.emulator import Emulator

T = TypeVar("T")
ISVC = "infadapter.io/v1alpha1/inferenceservices"


class Cluster:
    """The emulator served on 127.0.0.1 from its own event loop thread; sync helpers for tests."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.url = ""
        self.emulator: Emulator
        self._thread = threading.Thread(target=self._main, name="emulator", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with Emulator(**self._options) as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            await emulator.create("apiextensions.k8s.io/v1/customresourcedefinitions", "", load_crd())
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Cluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` (a coroutine factory or a plain function) in the emulator's loop."""

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                return await result
            return result

        future: Future[Any] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(10)

    # -- kubectl-like helpers --
    def create(self, key: str, body: Mapping[str, Any], namespace: str = "default") -> dict[str, Any]:
        return dict(self.call(lambda: self.emulator.create(key, namespace, body)))

    def get(self, key: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        found = self.call(lambda: self.emulator.objects.get((key, namespace, name)))
        return json.loads(json.dumps(found)) if found is not None else None

    def list(self, key: str, namespace: str | None = "default", **labels: str) -> list[dict[str, Any]]:
        def pick() -> list[dict[str, Any]]:
            out = []
            for (k, n, _), o in sorted(self.emulator.objects.items()):
                if k == key and (namespace is None or n == namespace):
                    have = o["metadata"].get("labels", {})
                    if all(have.get(a.replace("__", "/").replace("_", "."), None) == b for a, b in labels.items()):
                        out.append(json.loads(json.dumps(o)))
            return out

        return list(self.call(pick))

    def patch(self, key: str, name: str, patch: Mapping[str, Any], namespace: str = "default", sub: str | None = None) -> dict[str, Any]:
        return dict(self.call(lambda: self.emulator.update(key, namespace, name, patch, sub, "PATCH", "application/merge-patch+json")))

    def delete(self, key: str, name: str, namespace: str = "default") -> None:
        self.call(lambda: self.emulator.delete(key, namespace, name))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.list("v1/events", None) if e.get("involvedObject", {}).get("name") == name]


def wait_for(predicate: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.05, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}; last value: {last!r}")


class FakePrometheus:
    """Answers the router arrival-rate queries: ``loads[name]`` rps per service, or a failure ``mode``.

    Modes: ``ok``, ``error`` (HTTP 500 with a Prometheus error body), ``empty`` (no series),
    ``malformed`` (JSON that is not a Prometheus answer), ``garbage`` (not JSON), ``down`` (connection refused).
    """

    def __init__(self) -> None:
        self.loads: dict[str, float] = {}
        self.default_rps = 5.0
        self.mode = "ok"
        self.queries = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(parse_qs(urlparse(self.path).query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(parse_qs(self.rfile.read(length).decode()))

            def _answer(self, query: dict[str, list[str]]) -> None:
                fake.queries += 1
                status, body = fake.answer(urlparse(self.path).path, query)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        if self.mode == "error":
            return 500, {"status": "error", "errorType": "internal", "error": "injected failure"}
        if self.mode == "garbage":
            return 200, b"<html>not prometheus</html>"
        if self.mode == "malformed":
            return 200, {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [["x", "y", "z"]]}]}}
        promql = (query.get("query") or [""])[0]
        match = re.search(r'name="([^"]+)"', promql)
        rps = self.loads.get(match.group(1), self.default_rps) if match else self.default_rps
        if self.mode == "empty":
            result: list[Any] = []
        elif path.endswith("query_range"):
            start, end = float(query["start"][0]), float(query["end"][0])
            step = float(str(query.get("step", ["1"])[0]).rstrip("s"))
            values = []
            t = start
            while t <= end:
                values.append([t, f"{rps}"])
                t += step
            result = [{"metric": {}, "values": values}]
        else:
            result = [{"metric": {}, "value": [time.time(), f"{rps}"]}]
        return 200, {"status": "success", "data": {"resultType": "matrix" if path.endswith("query_range") else "vector", "result": result}}

    def __enter__(self) -> FakePrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


#: the emulator's services: the real tier's (tests/cluster/kube.py), with model sources the emulator's
#: init containers fetch and a 1 s interval
EMULATOR_SPEC: dict[str, Any] = {
    "variants": [
        {"name": "small", "accuracy": 0.70, "loadTimeSeconds": 1, "source": {"uri": "pvc://models/small"}},
        {"name": "large", "accuracy": 0.80, "loadTimeSeconds": 2, "source": {"uri": "https://example.com/large.onnx"}},
    ],
    "adaptation": {"intervalSeconds": 1, "scaleDownStabilizationSeconds": 0},
}


def service(name: str = "demo", **spec: Any) -> dict[str, Any]:
    body = service_body(name, **(copy.deepcopy(EMULATOR_SPEC) | spec))  # callers edit what they get
    body["metadata"]["namespace"] = "default"
    return body


def write_profile(directory: Path) -> Path:
    path = directory / "profile.yaml"
    path.write_text(yaml.safe_dump(PROFILE), encoding="utf-8")
    return path


@contextlib.contextmanager
def operator(cluster: Cluster, prometheus: FakePrometheus, profile: Path, *, peering: str = "", priority: int = 0, **env: str) -> Iterator[Any]:
    """The real operator (``kopf run -m infadapter.operator.handlers``) against the emulator."""
    from kopf.testing import KopfRunner

    settings = {
        "INFADAPTER_KUBE_SERVER": cluster.url,
        "INFADAPTER_PROMETHEUS_URL": prometheus.url,
        "INFADAPTER_DEFAULT_PROFILE": str(profile),
        "INFADAPTER_PROMETHEUS_TIMEOUT_S": "2",
        **env,
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        mode = [f"--peering={peering}", f"--priority={priority}"] if peering else ["--standalone"]
        with KopfRunner(["run", "-A", *mode, "-m", "infadapter.operator.handlers"], timeout=30) as runner:
            yield runner
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
