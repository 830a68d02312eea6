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
from infadapter.runtime.prometheus import PrometheusProcess, find_prometheus

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
        time.sleep(2.5)  # two more scrapes
        yield prom.url
    finally:
        prom.stop()
        metrics.close()
        for server in servers.values():
            server.stop()


def _increase(url: str, metric: str) -> dict[str, float]:
    query = f'sum by (variant) (increase({metric}{{namespace="default",name="resnet"}}[1m]))'
    return Observer(url).by_label(query, "variant")


def test_triton_counters_carry_the_variant_and_count_every_request(tritons_scraped: str) -> None:
    served = _increase(tritons_scraped, "nv_inference_request_success")
    assert served.keys() == SENT.keys()
    # increase() extrapolates to the window's edges: the ratio is what it must keep
    assert served["resnet50"] / served["resnet18"] == pytest.approx(SENT["resnet50"] / SENT["resnet18"], rel=0.1)
    assert all(v == 0 for v in _increase(tritons_scraped, "nv_inference_request_failure").values())
    rates = Observer(tritons_scraped).served_rates_rps("default", "resnet", window_s=60)
    assert rates.keys() == SENT.keys() and all(r > 0 for r in rates.values())


def test_served_accuracy_weights_declared_accuracy_by_requests_served(tritons_scraped: str) -> None:
    expected = sum(ACCURACY[v] * n for v, n in SENT.items()) / sum(SENT.values())
    served = Observer(tritons_scraped).scalar(served_accuracy_query("default", "resnet", 60))
    assert served == pytest.approx(expected, abs=0.005)
