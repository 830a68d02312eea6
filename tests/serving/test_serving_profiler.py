"""Profiler: grow-then-bisect on the rate; a real measurement gives more capacity to more CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infadapter.cli import app
from infadapter.errors import InvalidInput
from infadapter.loadgen import LoadReport, RequestRecord, summarize
from infadapter.profiles import Profile, load_profile, save_profile
from infadapter.serving.profiler import PointResult, Profiler, largest_planned_cores, parse_cpus
from infadapter.serving.repository import Serving, serving_for
from infadapter.serving.search import OVERLOAD_FACTOR, RateStep, ceiling_steps, search_capacity, slo_holds
from infadapter.spec import parse_spec

from .conftest import MODEL_NAME


def _fake_measure(capacity_rps: float, calls: list[float]):  # type: ignore[no-untyped-def]
    def measure(rate_rps: float) -> LoadReport:
        calls.append(rate_rps)
        latency = 10.0 if rate_rps <= capacity_rps else 1000.0
        return summarize([RequestRecord(i / 100, latency, True) for i in range(100)], slo_ms=100.0, duration_s=1.0)

    return measure


@pytest.mark.parametrize(("capacity", "guess"), [(37.0, 5.0), (37.0, 200.0), (3.0, 1.0), (500.0, 490.0)])
def test_search_brackets_the_capacity_within_tolerance(capacity: float, guess: float) -> None:
    calls: list[float] = []
    found, best, steps = search_capacity(_fake_measure(capacity, calls), guess, 99.0, max_steps=12, tolerance=0.05)
    assert found <= capacity
    assert found >= capacity / 1.06
    assert best is not None and best.rate_rps == found and best.passed
    assert len(steps) == len(calls) <= 12


def test_search_reports_zero_when_even_little_load_misses_the_slo() -> None:
    found, best, _ = search_capacity(_fake_measure(0.0, []), 10.0, 99.0, max_steps=10)
    assert found == 0.0 and best is None


def test_slo_holds_allows_one_percent_over_at_p99() -> None:
    ok = [RequestRecord(i / 100, 10.0, True) for i in range(99)]
    assert slo_holds(summarize([*ok, RequestRecord(0.995, 500.0, True)], 100.0), 99.0)
    assert not slo_holds(summarize([*ok[:98], RequestRecord(0.98, 500.0, True), RequestRecord(0.99, 1.0, False)], 100.0), 99.0)


def test_parse_cpus_sorts_and_rejects_bad_lists() -> None:
    assert parse_cpus("1,0.25, 0.5") == [0.25, 0.5, 1.0]
    for bad in ("", "a,b", "0,1"):
        with pytest.raises(InvalidInput):
            parse_cpus(bad)


@pytest.mark.slow
def test_profile_cli_measures_more_capacity_with_more_cpu(tiny_models: dict[str, Path], tmp_path: Path, triton_available: None) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "kind": "InferenceService",
                "metadata": {"name": "tiny"},
                "spec": {
                    "modelName": MODEL_NAME,
                    "slo": {"latencyMs": 300, "percentile": 99},
                    "variants": [{"name": "resnet18", "accuracy": 0.69758, "source": {"uri": f"file://{tiny_models['resnet18']}"}}],
                    "resources": {"minCpu": 0.1, "cpuStep": 0.1, "maxCpu": 2},
                },
            }
        )
    )
    out = tmp_path / "profile.yaml"
    result = CliRunner().invoke(
        app, ["profile", "--spec", str(spec), "--cpus", "0.1,1", "--duration-s", "1.5", "--max-steps", "5", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)["points"]
    assert [p["cpu"] for p in points] == [0.1, 1.0]
    low, high = points[0]["capacityRps"], points[1]["capacityRps"]
    assert low > 0 and high > 1.5 * low  # 10x the quota: clearly more capacity, even on a busy machine
    # the SLO holds when <= 1 % is over it, so the interpolated p99 may sit a little above it
    assert all(p["p99Ms"] is not None and p["p99Ms"] <= 2 * 300 for p in points)
    profile = load_profile(out)
    assert profile.slo_ms == 300 and profile.variants == ["resnet18"]
    assert profile.capacity_rps("resnet18", 1.0) == pytest.approx(high)
    assert profile.capacity_rps("resnet18", 0.5) < profile.capacity_rps("resnet18", 1.0)
    # both sizes measured with the servers the spec's largest planned size runs (2 cores, not the largest measured),
    # and the file says so
    for cpu in (0.1, 1.0):
        assert profile.serving_at("resnet18", cpu) == {"cpu": cpu, "gpus": 0, **serving_for(2.0, float(os.cpu_count() or 1)).record("python")}


def test_profile_cli_rejects_unknown_variant(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["profile", "--spec", str(Path(__file__).parents[2] / "examples" / "demo.yaml"), "--variants", "vgg", "--out", str(tmp_path / "p.yaml")]
    )
    assert result.exit_code == 2


def test_a_borderline_failure_is_measured_again_and_the_better_outcome_counts() -> None:
    calls: list[float] = []

    def measure(rate_rps: float) -> LoadReport:
        calls.append(rate_rps)
        # the first measurement at 20 rps is disturbed: 5 % over the SLO, the median still fine
        disturbed = rate_rps == 20.0 and calls.count(20.0) == 1
        slow = 5 if disturbed else (0 if rate_rps <= 30.0 else 100)
        return summarize([RequestRecord(i / 100, 500.0 if i < slow else 10.0, True) for i in range(100)], slo_ms=100.0, duration_s=1.0)

    found, _, steps = search_capacity(measure, 20.0, 99.0, max_steps=8, tolerance=0.05, retries=1)
    assert calls[:2] == [20.0, 20.0]
    assert not steps[0].passed and steps[1].passed
    assert 28.5 <= found <= 30.0


def test_profile_cache_path_changes_with_slo_cpus_model_and_method(tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infadapter.serving.profiler import profile_cache_path
    from infadapter.spec import parse_spec

    def spec_for(model: Path, slo: float):  # type: ignore[no-untyped-def]
        return parse_spec(
            {"modelName": "resnet", "slo": {"latencyMs": slo}, "variants": [{"name": "a", "accuracy": 0.7, "source": {"uri": f"file://{model}"}}]}
        )

    base = profile_cache_path(spec_for(tiny_models["resnet18"], 200), [0.5, 1], cache_dir=tmp_path)
    assert base.parent == tmp_path and base.name.startswith("resnet-") and base.suffix == ".yaml"
    assert profile_cache_path(spec_for(tiny_models["resnet18"], 200), [1, 0.5], cache_dir=tmp_path) == base
    assert profile_cache_path(spec_for(tiny_models["resnet18"], 300), [0.5, 1], cache_dir=tmp_path) != base
    assert profile_cache_path(spec_for(tiny_models["resnet18"], 200), [0.5], cache_dir=tmp_path) != base
    assert profile_cache_path(spec_for(tiny_models["resnet34"], 200), [0.5, 1], cache_dir=tmp_path) != base
    import infadapter.serving.profiler as profiler_module

    monkeypatch.setattr(profiler_module, "METHOD", profiler_module.METHOD + 1)  # a profile measured by another search
    assert profile_cache_path(spec_for(tiny_models["resnet18"], 200), [0.5, 1], cache_dir=tmp_path) != base


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--cpus", "nan"], "--cpus"),
        (["--cpus", "1,inf"], "--cpus"),
        (["--duration-s", "inf"], "--duration-s"),
        (["--slo-ms", "0"], "--slo-ms"),
        (["--max-steps", "0"], "--max-steps"),
        (["--spec", ""], "--spec"),
    ],
)
def test_profile_cli_refuses_bad_values_naming_the_option(args: list[str], option: str, tmp_path: Path) -> None:
    spec = str(Path(__file__).parents[2] / "examples" / "demo.yaml")
    result = CliRunner().invoke(app, ["profile", "--spec", spec, "--out", str(tmp_path / "p.yaml"), *args])
    assert result.exit_code == 2 and option in result.output, result.output


class _RecordingProfiler(Profiler):
    """Measures nothing: records the serving configuration each point would be measured with."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(200.0, work_dir=work_dir, use_cgroup=False)
        self.asked: list[tuple[str, float, Serving | None]] = []

    def measure_point(
        self, variant: str, onnx_path: Path, model_name: str, cpu_cores: float, guess_rps: float | None = None, serving: Serving | None = None
    ) -> PointResult:
        self.asked.append((variant, cpu_cores, serving))
        return PointResult(variant, cpu_cores, 10.0 * cpu_cores, 50.0, 1.0, serving=serving or Serving())


def test_every_size_is_measured_with_the_serving_of_the_variants_largest_planned_size(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "modelName": "resnet",
            "variants": [{"name": "a", "accuracy": 0.7}, {"name": "b", "accuracy": 0.8, "resources": {"maxCpu": 0.75}}],
            "budget": {"cpu": 2},
            "resources": {"cpuStep": 0.25, "minCpu": 0.25, "maxCpu": 1.5},
        }
    )
    largest = largest_planned_cores(spec)
    assert largest == {"a": 1.5, "b": 0.75}
    profiler = _RecordingProfiler(tmp_path)
    profile, results = profiler.profile({"a": tmp_path / "a.onnx", "b": tmp_path / "b.onnx"}, "resnet", [1.0, 0.25, 0.5], largest)
    cores = float(os.cpu_count() or 1)
    # what the embedded runtime's servers run with, at every size (so an in-place resize keeps the profiled stack)
    assert [(v, c, s) for v, c, s in profiler.asked] == [(v, c, serving_for(largest[v], cores)) for v in ("a", "b") for c in (0.25, 0.5, 1.0)]
    assert [r.serving for r in results] == [s for _, _, s in profiler.asked]
    for variant in ("a", "b"):
        for cpu in (0.25, 0.5, 1.0):
            assert profile.serving_at(variant, cpu) == {"cpu": cpu, "gpus": 0, **serving_for(largest[variant], cores).record("python")}
    assert profile.serving_at("a", 0.75) is None  # not measured: not recorded


def test_without_the_spec_the_largest_measured_size_fixes_the_serving(tmp_path: Path) -> None:
    profiler = _RecordingProfiler(tmp_path)
    profile, _ = profiler.profile({"a": tmp_path / "a.onnx"}, "resnet", [0.25, 2.0])
    expected = serving_for(2.0, float(os.cpu_count() or 1))
    assert {s for _, _, s in profiler.asked} == {expected}
    saved = tmp_path / "profile.yaml"
    save_profile(profile, saved)
    assert load_profile(saved).serving_at("a", 0.25) == {"cpu": 0.25, "gpus": 0, **expected.record("python")}


def test_a_measured_server_runs_the_serving_configuration_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository and environment of the measured server (up to its start; no Triton needed)."""
    import infadapter.serving.profiler as profiler_module

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not read: the manifest describes it")
    tensor = {"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}
    onnx.with_suffix(".json").write_text(json.dumps({"input": tensor, "output": {"name": "output", "datatype": "FP32", "shape": [-1, 1000]}}))
    started: list[tuple[Path, dict[str, str]]] = []

    class FakeTriton:
        def __init__(self, repo: Path, **kwargs: object) -> None:
            started.append((repo, dict(kwargs["env"])))  # type: ignore[call-overload]

        def start(self, timeout_s: float) -> float:
            raise RuntimeError("no server in a unit test")

        def stop(self) -> None:
            pass

    monkeypatch.setattr(profiler_module, "TritonProcess", FakeTriton)
    profiler = Profiler(200.0, work_dir=tmp_path / "work", use_cgroup=False)
    with pytest.raises(RuntimeError, match="no server"):
        profiler.measure_point("a", onnx, "resnet", 0.5, serving=Serving(instance_count=2))
    ((repo, env),) = started
    config = (repo / "resnet" / "config.pbtxt").read_text()
    assert "count: 2 kind: KIND_CPU" in config and 'key: "intra_op_threads" value: { string_value: "1" }' in config
    assert env == {"OMP_NUM_THREADS": "1"}


def _step(rate_rps: float, latency_ms: float, seconds: int = 4) -> RateStep:
    """A step of ``rate_rps`` whose answers all take ``latency_ms`` (one every 1/rate s)."""
    n = int(rate_rps * seconds)
    report = summarize([RequestRecord(i / rate_rps, latency_ms, True) for i in range(n)], slo_ms=200.0, duration_s=float(seconds))
    return RateStep(rate_rps, report.p99_ms <= 200.0, report)


def test_a_point_records_the_median_at_capacity_and_the_saturation_for_the_simulator(tmp_path: Path) -> None:
    # 10 rps passed (50 ms); 20 rps failed with answers 1.5 s late: only the first 2.5 s of it came back in the step
    steps = (_step(10.0, 50.0), _step(20.0, 1500.0))
    result = PointResult("a", 1.0, 10.0, 50.0, 1.0, steps, p50_ms=50.0)
    point = result.point()
    assert (point.capacity_rps, point.p50_ms, point.p99_ms) == (10.0, 50.0, 50.0)
    assert point.saturation_rps == pytest.approx(50 / 4.0)  # answers before the step's end: 50 of the 80 sent
    assert point.max_offered_rps == 20.0  # sent more than it answered: the saturation is a ceiling
    saved = tmp_path / "p.yaml"
    save_profile(Profile(200.0, {"a": (point,)}), saved)
    assert load_profile(saved).points["a"] == (point,)
    assert "p50Ms: 50.0" in saved.read_text() and "maxOfferedRps: 20.0" in saved.read_text()


def _server(capacity_rps: float, ceiling_rps: float, seconds: int = 4):  # type: ignore[no-untyped-def]
    """A server that keeps the SLO (200 ms) up to ``capacity_rps`` and answers at most ``ceiling_rps``:
    request ``i`` of a step at rate ``r`` is answered at ``max(i / r, i / ceiling)`` + 120 ms (+ 300 ms past the capacity)."""
    offered: list[float] = []

    def measure(rate_rps: float) -> LoadReport:
        offered.append(rate_rps)
        extra = 120.0 + (300.0 if rate_rps > capacity_rps else 0.0)  # over half the SLO: the search grows x1.5
        n = int(rate_rps * seconds)
        records = [RequestRecord(i / rate_rps, (max(i / rate_rps, i / ceiling_rps) - i / rate_rps) * 1000.0 + extra, True) for i in range(n)]
        return summarize(records, slo_ms=200.0, duration_s=float(seconds))

    return measure, offered


def test_an_overload_step_measures_the_throughput_ceiling_the_search_never_reached() -> None:
    measure, offered = _server(capacity_rps=10.0, ceiling_rps=15.0)
    capacity, _, steps = search_capacity(measure, 8.0, 99.0, max_steps=8, tolerance=0.05)
    before = max(s.report.completed_rps for s in steps)
    assert 9.5 <= capacity <= 10.0 and before < 12.0  # every step of the search was answered as sent (or nearly)
    added = ceiling_steps(measure, capacity, steps, 99.0)
    assert len(added) == 1  # it answered 2/3 of what it was sent: the ceiling, no heavier step
    extra = added[0]
    assert extra.rate_rps == OVERLOAD_FACTOR * capacity == offered[-1]
    assert not extra.passed
    point = PointResult("a", 1.0, capacity, 120.0, 1.0, (*steps, extra), p50_ms=120.0).point()
    # the ceiling, less the answers the step's fixed delay (0.42 s of 4 s) pushes past its end: not what the search sent
    assert point.saturation_rps == pytest.approx(15.0 * (1 - 0.42 / 4), rel=0.02)
    assert point.saturation_rps > before


def test_no_overload_step_when_one_was_already_offered_or_nothing_passed() -> None:
    measure, offered = _server(capacity_rps=10.0, ceiling_rps=15.0)
    steps = [RateStep(10.0, True, measure(10.0)), RateStep(20.0, False, measure(20.0))]
    assert ceiling_steps(measure, 10.0, steps, 99.0) == []
    assert ceiling_steps(measure, 0.0, [], 99.0) == []
    assert offered == [10.0, 20.0]  # neither call measured anything


def test_a_server_that_keeps_up_at_twice_its_capacity_is_stepped_harder_until_it_does_not() -> None:
    # the SLO, not the throughput, limits the capacity (a quota throttled in bursts): 10 rps, ceiling 30
    measure, offered = _server(capacity_rps=10.0, ceiling_rps=30.0)
    capacity, _, steps = search_capacity(measure, 8.0, 99.0, max_steps=8, tolerance=0.05)
    added = ceiling_steps(measure, capacity, steps, 99.0)
    assert [s.rate_rps for s in added] == [OVERLOAD_FACTOR * capacity, OVERLOAD_FACTOR**2 * capacity] == offered[-2:]
    assert added[0].report.completed_rps > 0.8 * added[0].report.achieved_rps  # kept up: not the ceiling
    point = PointResult("a", 1.0, capacity, 120.0, 1.0, (*steps, *added), p50_ms=120.0).point()
    assert point.saturation_rps == pytest.approx(30.0 * (1 - 0.42 / 4), rel=0.02)  # the heavier step's answers
    unbounded, sent = _server(capacity_rps=10.0, ceiling_rps=1000.0)
    assert len(ceiling_steps(unbounded, 10.0, [RateStep(10.0, True, unbounded(10.0))], 99.0, most=3)) == 3
    assert sent == [10.0, 20.0, 40.0, 80.0]  # at most ``most`` steps, however far the ceiling


class _ScriptedProfiler(Profiler):
    """Each measurement of a size answers at the next of the ceilings scripted for it (a stand-in server, no Triton)."""

    def __init__(self, work_dir: Path, ceilings: dict[float, list[float]]) -> None:
        super().__init__(200.0, work_dir=work_dir, use_cgroup=False)
        self.ceilings = ceilings
        self.asked: list[float] = []

    def measure_point(
        self, variant: str, onnx_path: Path, model_name: str, cpu_cores: float, guess_rps: float | None = None, serving: Serving | None = None
    ) -> PointResult:
        self.asked.append(cpu_cores)
        ceiling = self.ceilings[cpu_cores][self.asked.count(cpu_cores) - 1]
        measure, _ = _server(capacity_rps=0.6 * ceiling, ceiling_rps=ceiling)
        overload = RateStep(2.0 * ceiling, False, measure(2.0 * ceiling))  # answers about 0.9 x the ceiling within it
        return PointResult(variant, cpu_cores, 0.6 * ceiling, 150.0, 1.0, (overload,), serving=serving or Serving())


@pytest.mark.parametrize(
    ("ceilings", "asked", "kept"),
    [
        ({0.5: [10.0], 1.0: [6.0, 20.0]}, [0.5, 1.0, 1.0], 20.0),  # 6 a core against 20 a core: measured again, the higher kept
        ({0.5: [10.0], 1.0: [6.0, 5.0]}, [0.5, 1.0, 1.0], 6.0),  # the second is lower still: the first stays
        ({0.5: [10.0], 1.0: [16.0]}, [0.5, 1.0], 16.0),  # 16 a core against 20: within the trend, measured once
    ],
)
def test_a_size_far_below_the_smaller_sizes_ceiling_per_core_is_measured_again(
    ceilings: dict[float, list[float]], asked: list[float], kept: float, tmp_path: Path
) -> None:
    profiler = _ScriptedProfiler(tmp_path, ceilings)
    profile, results = profiler.profile({"a": tmp_path / "a.onnx"}, "resnet", [1.0, 0.5])
    assert profiler.asked == asked
    assert [r.cpu_cores for r in results] == [0.5, 1.0]  # one result a size, whatever was measured again
    answered = results[1].saturation_rps
    assert answered is not None and answered == pytest.approx(kept * (1 - 0.42 / 4), rel=0.03)
    assert profile.points["a"][1].saturation_rps == pytest.approx(answered, abs=0.01)
