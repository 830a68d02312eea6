"""The Envoy router: config builder (pure) and a real Envoy in front of trivial HTTP backends."""

from __future__ import annotations

import collections
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from infadapter.runtime.envoy_config import WEIGHT_SCALE, Endpoint, envoy_config, integer_weights
from infadapter.runtime.local.envoy import EnvoyProcess


def test_integer_weights_sum_to_scale_and_keep_proportions() -> None:
    ints = integer_weights({"a": 0.6, "b": 0.4 - 1e-9, "c": 0.0}, ["a", "b", "c"])
    assert sum(ints.values()) == WEIGHT_SCALE
    assert ints == {"a": 6000, "b": 4000, "c": 0}


def test_integer_weights_all_zero_spreads_evenly() -> None:
    assert integer_weights({}, ["a", "b"]) == {"a": 5000, "b": 5000}


def test_config_admin_on_loopback_runtime_keys_and_slo_bucket(tmp_path: Path) -> None:
    config = envoy_config(["resnet18", "resnet50"], {"resnet18": 1.0}, listen_port=1000, admin_port=1001, eds_dir=tmp_path, slo_ms=333)
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    route = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
    weighted = route["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]
    assert weighted["runtime_key_prefix"] == "infadapter.weights"
    assert [c["name"] for c in weighted["clusters"]] == ["resnet18", "resnet50"]
    assert [c["name"] for c in config["static_resources"]["clusters"]] == ["resnet18", "resnet50"]
    assert 333.0 in config["stats_config"]["histogram_bucket_settings"][0]["buckets"]


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = str(self.server.server_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _reply
    do_POST = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[list[int]]:
    servers = []
    for _ in range(3):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield [s.server_address[1] for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def envoy() -> Iterator[EnvoyProcess]:
    try:
        proc = EnvoyProcess(["a", "b", "c"], slo_ms=200)
    except Exception as exc:
        pytest.skip(f"envoy unavailable: {exc}")
    with proc:
        yield proc


def _split(envoy: EnvoyProcess, count: int, clients: int = 8) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()

    def client(n: int) -> None:
        with requests.Session() as session:
            got = collections.Counter(session.get(f"http://{envoy.url}/v2/x", timeout=5).text for _ in range(n))
        seen.update(got)

    threads = [threading.Thread(target=client, args=(count // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def test_live_weights_split_requests_within_five_percent(envoy: EnvoyProcess, backends: list[int]) -> None:
    envoy.set_endpoints({name: [Endpoint("127.0.0.1", port)] for name, port in zip("abc", backends, strict=True)})
    envoy.set_weights({"a": 0.7, "b": 0.3, "c": 0.0})
    seen = _split(envoy, 2000)
    assert abs(seen[str(backends[0])] / 2000 - 0.7) <= 0.05
    assert abs(seen[str(backends[1])] / 2000 - 0.3) <= 0.05
    assert seen[str(backends[2])] == 0
    assert envoy.runtime_weights() == {"a": 7000, "b": 3000, "c": 0}


def test_variant_without_instances_spills_to_the_others(envoy: EnvoyProcess, backends: list[int]) -> None:
    envoy.set_endpoints({"a": [], "b": [Endpoint("127.0.0.1", backends[1])]})
    envoy.set_weights({"a": 0.9, "b": 0.1})
    seen = _split(envoy, 160)
    assert seen == {str(backends[1]): 160}


def test_restart_restores_weights_and_endpoints(envoy: EnvoyProcess, backends: list[int]) -> None:
    envoy.set_endpoints({"a": [Endpoint("127.0.0.1", backends[0])], "b": [Endpoint("127.0.0.1", backends[1])]})
    envoy.set_weights({"a": 0.25, "b": 0.75})
    port = envoy.listen_port
    envoy._proc.kill()  # type: ignore[union-attr]
    envoy._proc.wait()  # type: ignore[union-attr]
    envoy.restart()
    assert envoy.listen_port == port
    assert envoy.runtime_weights() == {"a": 2500, "b": 7500, "c": 0}
    envoy.wait_endpoints()
    seen = _split(envoy, 400)
    assert abs(seen[str(backends[0])] / 400 - 0.25) <= 0.07


def test_the_access_log_names_the_chosen_variant_and_the_server_that_answered(backends: list[int], tmp_path: Path) -> None:
    try:
        proc = EnvoyProcess(["a", "b"], slo_ms=200, workdir=tmp_path, access_log=True)
    except Exception as exc:
        pytest.skip(f"envoy unavailable: {exc}")
    with proc:
        proc.set_endpoints({"a": [], "b": [Endpoint("127.0.0.1", backends[1])]})  # a spills to b
        proc.set_weights({"a": 0.5, "b": 0.5})
        seen = _split(proc, 200)
        assert seen == {str(backends[1]): 200}
        deadline = time.monotonic() + 10.0
        while len(proc.access_records()) < 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # flushed every second
        records = proc.access_records()
    assert len(records) == 200
    assert {r["host"] for r in records} == {f"127.0.0.1:{backends[1]}"}
    chosen = collections.Counter(r["cluster"] for r in records)
    assert set(chosen) == {"a", "b"} and 60 <= chosen["a"] <= 140  # the split's choice, before the spill
    assert all(r["status"] == 200 and r["duration_ms"] >= 0 and r["start_s"] > 1.7e9 for r in records)


def test_without_an_access_log_none_is_written(envoy: EnvoyProcess, backends: list[int]) -> None:
    envoy.set_endpoints({"a": [Endpoint("127.0.0.1", backends[0])]})
    envoy.set_weights({"a": 1.0})
    assert _split(envoy, 16) == {str(backends[0]): 16}  # requests went through
    assert not envoy.access_log_path.exists() and envoy.access_records() == []


def test_the_access_log_is_read_on_from_where_the_last_read_stopped(tmp_path: Path) -> None:
    envoy = EnvoyProcess(["a"], workdir=tmp_path, access_log=True)  # not started: the log is written by hand
    line = '{"start_s": "1764900000.5", "cluster": "a", "host": "127.0.0.1:9", "status": "200", "duration_ms": "%d"}\n'
    envoy.access_log_path.write_text(line % 1 + (line % 2)[:30], encoding="utf-8")  # the second line half written
    assert [r["duration_ms"] for r in envoy.access_records()] == [1.0]
    with envoy.access_log_path.open("a", encoding="utf-8") as log:
        log.write((line % 2)[30:] + "not json\n" + line % 3)
    assert [r["duration_ms"] for r in envoy.access_records()] == [1.0, 2.0, 3.0], "the rest of the line, a bad one skipped"
    assert envoy.access_records()[0] == {"start_s": 1764900000.5, "cluster": "a", "host": "127.0.0.1:9", "status": 200.0, "duration_ms": 1.0}
    envoy.access_log_path.write_text(line % 4, encoding="utf-8")  # replaced by a shorter log
    assert [r["duration_ms"] for r in envoy.access_records()] == [4.0]
