"""The served-rate and served-accuracy queries against real tritonservers scraped by a real Prometheus.

Two servers stand for two variants of one service (both serve the public model name ``resnet`` with a
tiny python-backend identity model); Prometheus labels each target with its ``variant``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infadapter.errors import ApplyFailed
from infadapter.metrics.exporter import InfAdapterMetrics
from infadapter.metrics.prometheus import Observer, served_accuracy_query
from infadapter.runtime.local.prometheus import PrometheusProcess, find_prometheus

pytestmark = pytest.mark.slow

SENT = {"resnet50": 30, "resnet18": 20}
ACCURACY = {"resnet50": 0.7613, "resnet18": 0.69758}

CONFIG = """name: "resnet"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""
MODEL = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
        return out
"""


def _repository(root: Path) -> Path:
    (root / "resnet" / "1").mkdir(parents=True)
    (root / "resnet" / "config.pbtxt").write_text(CONFIG)
    (root / "resnet" / "1" / "model.py").write_text(MODEL)
    return root


@pytest.fixture(scope="module")
def tritons_scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is absent (apt-get install -y --no-install-recommends prometheus)")
    from infadapter.serving.triton import TritonProcess

    repo = _repository(tmp_path_factory.mktemp("repo"))
    try:
        servers = {v: TritonProcess(repo, log_path=repo / f"{v}.log", name=f"obs-{v}", allow_grpc=False) for v in SENT}
    except ApplyFailed as exc:
        pytest.skip(f"no tritonserver: {exc}")
    metrics = InfAdapterMetrics()
    metrics.describe_service("default", "resnet", slo_latency_s=0.5, slo_target_ratio=0.99, variant_accuracy=ACCURACY)
    prom = PrometheusProcess()
    try:
        for server in servers.values():
            server.start(timeout_s=120, wait=False)
        for server in servers.values():
            server.wait_ready(timeout_s=120)
        prom.set_targets("infadapter", "run", [f"127.0.0.1:{metrics.serve()}"])
        for variant, server in servers.items():
            labels = {"namespace": "default", "name": "resnet", "variant": variant}
            prom.set_targets("triton", f"default-resnet-{variant}", [f"127.0.0.1:{server.metrics_port}"], labels)
        prom.start()
        prom.wait_for_targets(count=1 + len(servers), timeout_s=30)
        body = {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        with requests.Session() as session:
            for variant, count in SENT.items():
                for _ in range(count):
                    reply = session.post(f"{servers[variant].http_url}/v2/models/resnet/infer", json=body, timeout=10)
                    assert reply.status_code == 200, reply.text
        # a few scrapes after the requests, so rate() has more than two samples to extrapolate from
        observer, deadline = Observer(prom.url), time.monotonic() + 20
        while time.monotonic() < deadline:
            samples = observer.query('count_over_time(nv_inference_request_success{name="resnet"}[1m]) >= 6')
            if len(samples) == len(servers):
                break
            time.sleep(0.5)
        yield prom.url
    finally:
        prom.stop()
        metrics.close()
        for server in servers.values():
            server.stop()


def _counters(url: str, metric: str) -> dict[str, float]:
    return Observer(url).by_label(f'sum by (variant) ({metric}{{namespace="default",name="resnet"}})', "variant")


def test_triton_counters_carry_the_variant_and_count_every_request(tritons_scraped: str) -> None:
    assert _counters(tritons_scraped, "nv_inference_request_success") == SENT
    assert set(_counters(tritons_scraped, "nv_inference_request_failure").values()) <= {0.0}
    rates = Observer(tritons_scraped).served_rates_rps("default", "resnet", window_s=60)
    assert rates.keys() == SENT.keys() and all(r > 0 for r in rates.values())


def test_served_accuracy_weights_declared_accuracy_by_requests_served(tritons_scraped: str) -> None:
    observer = Observer(tritons_scraped)
    # both queries at one instant: a scrape between two evaluations moves every rate() a little
    at_s = time.time()
    served = observer.scalar(served_accuracy_query("default", "resnet", 60), at_s)
    rates = observer.served_rates_rps("default", "resnet", window_s=60, at_s=at_s)
    assert served == pytest.approx(sum(ACCURACY[v] * r for v, r in rates.items()) / sum(rates.values()), rel=1e-6)
    # rate() extrapolates a young series to the window's edges, so the shares are only close to 30:20
    by_requests = sum(ACCURACY[v] * n for v, n in SENT.items()) / sum(SENT.values())
    assert served == pytest.approx(by_requests, abs=0.01)
