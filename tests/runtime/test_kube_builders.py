"""The Kubernetes objects of a service (pure builders): the profiled serving configuration, Guaranteed pods,
no request lost when a pod goes, per-request balancing, a highly available router, a linear router config."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infadapter.runtime.kube.desired import desired_objects
from infadapter.runtime.kube.objects import ROUTER_STATUS_PORT, Images, Owner, parse_quantity
from infadapter.runtime.kube.router import AGENT_SCRIPT, AGENT_STATE_DIR, DNS_REFRESH, applied_weights, router_configmap
from infadapter.serving.repository import onnxruntime_autocomplete_config, serving_for
from infadapter.spec import InferenceServiceSpec, parse_resource
from tests.operator.harness import service

OWNER = Owner(name="demo", namespace="ml", uid="uid-1")
K8S_VERSION = "1.33"


def spec_with(*variants: dict[str, Any], **fields: Any) -> InferenceServiceSpec:
    body = service(**fields)
    body["spec"]["variants"] += list(variants)
    return parse_resource(body).spec


def every_source() -> InferenceServiceSpec:
    """pvc (small), http (large), s3, a path in the image, a torchscript model, a GPU variant."""
    return spec_with(
        {"name": "s3var", "accuracy": 0.75, "source": {"uri": "s3://bucket/prefix"}},
        {"name": "inimage", "accuracy": 0.72, "source": {"uri": "/opt/models"}},
        {"name": "torch", "accuracy": 0.71, "source": {"uri": "pvc://models/torch", "format": "torchscript"}},
        {"name": "gpu", "accuracy": 0.9, "gpu": True, "source": {"uri": "pvc://models/gpu"}},
    )


SIZES = {"small": (0.5, 0, 1), "large": (2.0, 0, 2), "s3var": (1.0, 0, 1), "inimage": (1.0, 0, 0), "torch": (1.5, 0, 1), "gpu": (1.0, 1, 1)}


def objects(spec: InferenceServiceSpec | None = None, sizes: dict[str, tuple[float, int, int]] | None = None, **kw: Any) -> list[dict[str, Any]]:
    spec = spec or every_source()
    sizes = sizes or {k: v for k, v in SIZES.items() if k in spec.variant_names}
    return desired_objects(OWNER, spec, sizes, {n: 10_000 // len(sizes) for n in sizes}, Images(), **kw)


def named(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def server_pod(name: str, spec: InferenceServiceSpec | None = None, cpu: float | None = None) -> dict[str, Any]:
    sizes = {k: v for k, v in SIZES.items() if k in (spec or every_source()).variant_names}
    if cpu is not None:
        sizes[name] = (cpu, *sizes[name][1:])
    pod: dict[str, Any] = named(objects(spec, sizes), "Deployment", f"demo-{name}")["spec"]["template"]["spec"]
    return pod


def serving_config(pod: dict[str, Any]) -> str:
    init = next(c for c in pod["initContainers"] if c["name"] == "serving-config")
    return str(next(e["value"] for e in init["env"] if e["name"] == "SERVING_CONFIG"))


def test_every_object_is_valid_kubernetes_for_every_source():
    import kubernetes_validate

    objs = objects(disruption_budget=True)
    assert {o["kind"] for o in objs} == {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"}
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for obj in objects(spec_with(routing={"kind": "GatewayAPI", "gatewayRef": "gw.infra"})):
        if obj["kind"] != "HTTPRoute":
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------- the profiled serving configuration


def test_onnx_servers_run_the_profiled_instances_and_threads_whatever_their_size():
    """Instances of the variant's largest size (maxCpu 4 -> 4), one ORT thread each, OpenMP likewise: the
    profiler's and the embedded runtime's rule, so an in-place resize needs no other configuration."""
    spec = every_source()
    texts = {serving_config(server_pod("small", spec, cpu)) for cpu in (1.0, 2.0, 3.0, 4.0)}
    assert texts == {onnxruntime_autocomplete_config("demo", serving_for(4.0))}
    text = texts.pop()
    assert "instance_group [ { count: 4 kind: KIND_CPU } ]" in text
    assert 'key: "intra_op_thread_count" value: { string_value: "1" }' in text
    assert 'key: "inter_op_thread_count" value: { string_value: "1" }' in text
    assert "max_batch_size: 0" in text and "input" not in text  # inputs and outputs: Triton's auto-complete
    triton = server_pod("small", spec)["containers"][0]
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in triton["env"]
    assert "--model-repository=/serving" in triton["args"]
    assert "--backend-config=onnxruntime,default-max-batch-size=0" in triton["args"]  # else auto-complete batches


def test_the_largest_size_the_plan_can_give_sizes_the_instances():
    # maxCpu 2.5 in steps of 1 core: the largest size is 2 cores; a budget under maxCpu caps it too
    spec = spec_with({"name": "capped", "accuracy": 0.6, "source": {"uri": "pvc://models/c"}, "resources": {"maxCpu": 2.5}})
    assert "count: 2 kind: KIND_CPU" in serving_config(_pod(spec, "capped", 1.0))
    small_budget = spec_with(budget={"cpu": 3})
    assert "count: 3 kind: KIND_CPU" in serving_config(_pod(small_budget, "small", 1.0))


def _pod(spec: InferenceServiceSpec, name: str, cpu: float) -> dict[str, Any]:
    sizes = dict.fromkeys(spec.variant_names, (1.0, 0, 1))
    sizes[name] = (cpu, 0, 1)
    pod: dict[str, Any] = named(objects(spec, sizes), "Deployment", f"demo-{name}")["spec"]["template"]["spec"]
    return pod


def test_gpu_plans_and_other_formats_serve_their_repository_as_it_is():
    for name, repository in (("torch", "/models"), ("gpu", "/models")):
        pod = server_pod(name)
        assert [c["name"] for c in pod.get("initContainers", [])] == []
        assert f"--model-repository={repository}" in pod["containers"][0]["args"]
        assert {"name": "OMP_NUM_THREADS", "value": "1"} in pod["containers"][0]["env"]


def test_the_serving_config_init_links_every_version_and_writes_the_config(tmp_path: Path):
    """The init container's script, run with sh on a copy of a repository (paths moved under tmp_path)."""
    pod = server_pod("small")
    init = next(c for c in pod["initContainers"] if c["name"] == "serving-config")
    source = tmp_path / "models" / "demo"
    for version in ("1", "3"):
        (source / version).mkdir(parents=True)
        (source / version / "model.onnx").write_bytes(b"onnx" + version.encode())
        (source / version / "weights.bin").write_bytes(b"external data")
    (source / "config.pbtxt").write_text("ignored: the profiled configuration wins")
    (source / "notes").mkdir()
    script = init["command"][2].replace('"/models/', f'"{tmp_path}/models/').replace('"/serving/', f'"{tmp_path}/serving/')
    env = {"SERVING_CONFIG": serving_config(pod), "PATH": "/usr/bin:/bin"}
    subprocess.run(["sh", "-c", script], check=True, env=env, timeout=10)
    served = tmp_path / "serving" / "demo"
    assert (served / "config.pbtxt").read_text() == serving_config(pod)
    assert sorted(p.name for p in served.iterdir()) == ["1", "3", "config.pbtxt"]
    assert (served / "3" / "model.onnx").read_bytes() == b"onnx3" and (served / "1" / "weights.bin").is_symlink()
    subprocess.run(["sh", "-c", script], check=True, env=env, timeout=10)  # a restarted init container: idempotent
    empty = script.replace(f"{tmp_path}/models/demo", f"{tmp_path}/nothing")
    failed = subprocess.run(["sh", "-c", empty], env=env, capture_output=True, text=True, timeout=10, check=False)
    assert failed.returncode != 0 and "no numbered version directory" in failed.stderr


# --------------------------------------------------------------------------- Guaranteed pods, probes, graceful stop


def qos_class(pod: dict[str, Any]) -> str:
    """The kubelet's rule: Guaranteed when every container (init containers too) has cpu and memory limits
    equal to its requests."""
    for container in pod["containers"] + pod.get("initContainers", []):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            limit, request = resources.get("limits", {}).get(resource), resources.get("requests", {}).get(resource)
            if limit is None or parse_quantity(limit) != parse_quantity(request if request is not None else limit):
                return "Burstable"
    return "Guaranteed"


@pytest.mark.parametrize("variant", ["small", "large", "s3var", "inimage", "torch", "gpu"])
def test_server_pods_are_guaranteed_with_their_init_containers_sized_as_the_server(variant: str):
    pod = server_pod(variant)
    assert qos_class(pod) == "Guaranteed"
    triton = pod["containers"][0]["resources"]["limits"]
    for init in pod.get("initContainers", []):  # the pod's effective request stays the server's
        assert init["resources"]["limits"] == {"cpu": triton["cpu"], "memory": triton["memory"]}


def test_probes_suit_a_cpu_capped_server_and_startup_follows_the_load_time():
    spec = spec_with({"name": "slow", "accuracy": 0.9, "loadTimeSeconds": 120, "source": {"uri": "pvc://models/slow"}})
    for cpu in (0.25, 1.0, 4.0):
        triton = _pod(spec, "slow", cpu)["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert triton[probe]["timeoutSeconds"] > 1, probe
        startup = triton["startupProbe"]
        allowed_s = startup["periodSeconds"] * startup["failureThreshold"]
        assert allowed_s >= 3 * 120 / min(1.0, cpu)  # loading is CPU-bound: slower under a small quota
        assert "initialDelaySeconds" not in triton["livenessProbe"]  # the startup probe guards the start
    fast = _pod(spec, "small", 1.0)["containers"][0]["startupProbe"]
    assert fast["periodSeconds"] * fast["failureThreshold"] < allowed_s


def test_a_stopping_server_outlives_its_removal_from_the_router_and_its_in_flight_requests():
    pod = server_pod("large")
    triton = pod["containers"][0]
    drain_s = triton["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert drain_s >= 2 + 5 + 1  # the router's DNS refresh + the cluster DNS TTL + the endpoints' propagation
    assert DNS_REFRESH == "2s"
    exit_s = int(next(a for a in triton["args"] if a.startswith("--exit-timeout-secs=")).split("=")[1])
    assert pod["terminationGracePeriodSeconds"] > drain_s + exit_s


# --------------------------------------------------------------------------- balancing, router availability


def test_variant_services_are_headless_so_the_router_sees_every_pod():
    objs = objects()
    servers = named(objs, "Service", "demo-servers")
    for variant in ("small", "large"):
        svc = named(objs, "Service", f"demo-{variant}")
        assert svc["spec"]["clusterIP"] == "None"
        pod_labels = named(objs, "Deployment", f"demo-{variant}")["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert servers["spec"]["selector"].items() <= pod_labels.items()  # the fallback holds every server
    assert servers["spec"]["clusterIP"] == "None"
    router_pods = named(objs, "Deployment", "demo-router")["spec"]["template"]["metadata"]["labels"]
    assert not servers["spec"]["selector"].items() <= router_pods.items()


def test_two_router_replicas_spread_and_guarded_by_a_disruption_budget():
    objs = objects(disruption_budget=True)
    router = named(objs, "Deployment", "demo-router")
    assert router["spec"]["replicas"] == 2
    assert router["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = router["spec"]["template"]
    assert pod["spec"]["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    budget = named(objs, "PodDisruptionBudget", "demo-router")
    assert budget["spec"]["maxUnavailable"] == 1 and budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert not [o for o in objects() if o["kind"] == "PodDisruptionBudget"]  # only when the applier knows the kind
    envoy, agent = pod["spec"]["containers"]
    stop_s = envoy["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert "/healthcheck/fail" in agent["lifecycle"]["preStop"]["exec"]["command"][2]
    assert pod["spec"]["terminationGracePeriodSeconds"] > stop_s
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "status"}
    assert {"name": "status", "containerPort": ROUTER_STATUS_PORT} in envoy["ports"]


def test_a_router_pod_is_ready_only_once_its_sidecar_saw_envoy_hold_the_weights():
    pod = named(objects(), "Deployment", "demo-router")["spec"]["template"]["spec"]
    agent = next(c for c in pod["containers"] if c["name"] == "weights")
    marker = agent["readinessProbe"]["exec"]["command"]
    assert marker == ["test", "-f", f"{AGENT_STATE_DIR}/applied"]
    assert f"state={AGENT_STATE_DIR}/applied" in AGENT_SCRIPT
    assert {"name": "agent", "mountPath": AGENT_STATE_DIR} in agent["volumeMounts"]


# --------------------------------------------------------------------------- the router ConfigMap grows linearly


def router_configmap_bytes(variants: int) -> int:
    body = service(name="resnet")
    body["metadata"]["namespace"] = "ml-serving"
    body["spec"]["variants"] = [{"name": f"resnet{i}", "accuracy": 0.5, "source": {"uri": f"pvc://models/r{i}"}} for i in range(variants)]
    spec = parse_resource(body).spec
    cm = router_configmap(Owner("resnet", "ml-serving", "u"), spec)
    return len(cm["data"]["envoy.yaml"].encode())


def test_router_configmap_grows_linearly_in_the_variants():
    """Measured (envoy.yaml bytes): before, every cluster listed every other variant's Service as its fallback,
    18,746 B at 8 variants and 746,212 B at 64 (N^2; past 1 MiB with longer names); now one fallback name."""
    sizes = {n: router_configmap_bytes(n) for n in (2, 8, 64)}
    per_variant = [(sizes[8] - sizes[2]) / 6, (sizes[64] - sizes[8]) / 56]
    assert math.isclose(per_variant[0], per_variant[1], rel_tol=0.05), sizes  # a constant cost per variant
    assert sizes[8] < 13_000 and sizes[64] < 64_000, sizes
    assert sizes[64] * 16 < 1024 * 1024  # 16x headroom under the ConfigMap limit at the CRD's 64 variants


def test_the_router_confirms_weights_from_envoys_runtime_answer():
    answer = json.dumps(
        {
            "entries": {
                "infadapter.weights.small": {"layer_values": ["", "2500"], "final_value": "2500"},
                "infadapter.weights.large": {"layer_values": ["", "7500"], "final_value": "7500"},
                "infadapter.weights.gone": {"layer_values": ["", "0"], "final_value": "0"},
                "other.key": {"final_value": "x"},
            },
            "layers": ["static", "admin"],
        },
        indent=1,
    )
    assert applied_weights(answer, ["small", "large"]) == {"small": 2500, "large": 7500}
    assert applied_weights(answer.encode()) == {"small": 2500, "large": 7500, "gone": 0}
    assert applied_weights({"entries": {}, "layers": []}, ["small"]) == {}  # nothing applied yet
    for bad in ("<html>", "[]", '{"layers": []}', json.dumps({"entries": {"infadapter.weights.small": {"final_value": "half"}}})):
        with pytest.raises(ValueError):
            applied_weights(bad)


def test_a_deployment_on_a_named_accelerator_type_requests_its_resource_on_its_nodes():
    import kubernetes_validate

    from infadapter.runtime.kube.apply import template_size

    types = [
        {"name": "t4", "count": 2, "price": 0.35, "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}},
        {"name": "mi", "count": 1, "price": 2.0, "resource": "amd.com/gpu", "nodeSelector": {"gpu": "mi300"}},
    ]
    spec = spec_with({"name": "big", "accuracy": 0.8, "accelerators": ["t4", "mi"], "source": {"uri": "pvc://models/big"}}, accelerators=types)
    sizes = dict.fromkeys(spec.variant_names, (1.0, 0, 0)) | {"big-t4": (2.0, 1, 2), "big-mi": (4.0, 1, 1)}
    objs = objects(spec, sizes)
    t4 = named(objs, "Deployment", "demo-big-t4")
    pod = t4["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert t4["spec"]["replicas"] == 2 and template_size(t4) == (2.0, 1)
    mi = named(objs, "Deployment", "demo-big-mi")
    assert mi["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "1"
    assert template_size(mi) == (4.0, 1)
    assert "nodeSelector" not in named(objs, "Deployment", "demo-big")["spec"]["template"]["spec"]  # the variant's own: anywhere
    for obj in (t4, mi, named(objs, "Service", "demo-big-t4")):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_a_batching_deployment_runs_the_dynamic_batcher_at_its_size_on_its_hardware():
    import kubernetes_validate

    types = [{"name": "t4", "count": 2, "price": 0.35, "nodeSelector": {"gpu": "t4"}}]
    spec = spec_with({"name": "big", "accuracy": 0.8, "accelerators": ["t4"], "batchSizes": [8], "source": {"uri": "pvc://models/big"}}, accelerators=types)
    sizes = dict.fromkeys(spec.variant_names, (1.0, 0, 0)) | {"big-b8": (2.0, 0, 1), "big-t4-b8": (2.0, 1, 1), "big-t4": (2.0, 1, 1)}
    objs = objects(spec, sizes)

    def config(name: str) -> tuple[str, list[str]]:
        pod = named(objs, "Deployment", f"demo-{name}")["spec"]["template"]["spec"]
        inits = {c["name"]: c for c in pod["initContainers"]}
        env = {e["name"]: e["value"] for e in inits["serving-config"]["env"]} if "serving-config" in inits else {}
        return env.get("SERVING_CONFIG", ""), pod["containers"][0]["args"]

    cpu_text, cpu_args = config("big-b8")
    assert "max_batch_size: 8" in cpu_text and "dynamic_batching" in cpu_text and "KIND_CPU" in cpu_text
    assert "--backend-config=onnxruntime,default-max-batch-size=8" in cpu_args
    gpu_text, gpu_args = config("big-t4-b8")
    assert "max_batch_size: 8" in gpu_text and "count: 1 kind: KIND_GPU" in gpu_text
    assert "--backend-config=onnxruntime,default-max-batch-size=8" in gpu_args
    plain_text, plain_args = config("big-t4")  # an unbatched GPU deployment runs its repository as it is
    assert plain_text == "" and not any("default-max-batch-size" in a for a in plain_args)
    unbatched_text, _ = config("big")
    assert "max_batch_size: 0" in unbatched_text
    kubernetes_validate.validate(named(objs, "Deployment", "demo-big-t4-b8"), K8S_VERSION, strict=True)
