"""Observing a Prometheus over https with a private CA, and with a bearer token (rotated in its file)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infadapter.errors import MetricsUnavailable
from infadapter.metrics.prometheus import Observer
from infadapter.processes import free_port
from infadapter.runtime.local.prometheus import find_prometheus


def _certificate(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "tls.key", directory / "tls.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.mark.slow
def test_an_https_prometheus_is_read_with_its_ca_bundle_and_refused_without(tmp_path: Path) -> None:
    binary = find_prometheus()
    if binary is None:
        pytest.skip("prometheus is not installed (scripts/setup.sh installs Debian's)")
    key, cert = _certificate(tmp_path)
    web, config = tmp_path / "web.yml", tmp_path / "prometheus.yml"
    web.write_text(json.dumps({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}}))
    config.write_text("global: {}\n")
    port = free_port()
    args = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    good = Observer(url, ca_file=str(cert), timeout_s=5, retries=0)
    bad = Observer(url, timeout_s=5, retries=0)  # the system's CAs do not know this one
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert good.scalar("vector(42)") == 42.0
                break
            except MetricsUnavailable:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        with pytest.raises(MetricsUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            bad.scalar("vector(42)")
    finally:
        good.close()
        bad.close()
        process.terminate()
        process.wait(timeout=10)


def test_the_bearer_token_is_sent_and_re_read_when_it_rotates(tmp_path: Path) -> None:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            ok = self.headers.get("Authorization") in ("Bearer first", "Bearer second")
            body = {"status": "success", "data": {"resultType": "scalar", "result": [0, "7"]}} if ok else {"status": "error", "error": "401"}
            data = json.dumps(body).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("first\n")
    observer = Observer(f"http://127.0.0.1:{server.server_address[1]}", token_file=str(token), timeout_s=5)
    try:
        assert observer.scalar("vector(7)") == 7.0
        token.write_text("second")
        assert observer.scalar("vector(7)") == 7.0
        token.write_text("wrong")
        with pytest.raises(MetricsUnavailable) as refused:
            observer.scalar("vector(7)")
        assert "wrong" not in str(refused.value)
    finally:
        observer.close()
        server.shutdown()
        server.server_close()
    assert seen[:2] == ["Bearer first", "Bearer second"]


def test_waiting_for_targets_outlasts_a_prometheus_that_does_not_answer() -> None:
    from infadapter.runtime.local.prometheus import PrometheusProcess

    prom = PrometheusProcess(port=free_port())  # nothing listens there: every poll fails
    began = time.monotonic()
    with pytest.raises(MetricsUnavailable, match="no answer"):
        prom.wait_for_targets("envoy", timeout_s=0.6)
    assert time.monotonic() - began >= 0.6, "it polled until its deadline, not only once"
