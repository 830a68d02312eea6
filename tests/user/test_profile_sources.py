"""Profiles from the user's own stack: a running Triton by URL, perf_analyzer and Model Analyzer CSVs.

The sample CSVs are written here with the columns the importers rely on (docs/serving.md): perf_analyzer's
``-f`` file (latencies in microseconds), Model Analyzer's ``metrics-model-inference.csv`` (milliseconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infadapter.profiles import load_profile

from .conftest import Cli

#: perf_analyzer -f, open-loop request rates; p99 16 ms, 41 ms, 250 ms
PERF_ANALYZER = """Request Rate,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,\
Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
100,99.8,30,400,100,50,9000,20,5,9800,12000,13500,16000
200,199.5,31,420,900,50,9100,20,5,11000,18000,25000,41000
300,281.0,33,450,30000,50,9200,20,5,45000,120000,160000,250000
"""
#: model-analyzer profile, two configurations of resnet50 on one GPU, a batch-4 row
MODEL_ANALYZER = """Model,Batch,Concurrency,Model Config Path,Instance Group,Max Batch Size,Satisfies Constraints,\
Throughput (infer/sec),p99 Latency (ms)
resnet50,1,1,resnet50_config_0,1:GPU,8,Yes,410.2,3.1
resnet50,1,8,resnet50_config_0,1:GPU,8,Yes,1650.5,9.4
resnet50,1,32,resnet50_config_0,1:GPU,8,No,2011.0,31.0
resnet50,1,8,resnet50_config_1,2:GPU,16,Yes,2210.0,8.8
resnet50,1,32,resnet50_config_1,2:GPU,16,Yes,2890.0,19.5
resnet50,4,8,resnet50_config_1,2:GPU,16,Yes,5000.0,15.0
"""


@pytest.fixture
def csvs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "pa.csv").write_text(PERF_ANALYZER, encoding="utf-8")
    (tmp_path / "ma.csv").write_text(MODEL_ANALYZER, encoding="utf-8")
    return {"perf-analyzer": tmp_path / "pa.csv", "model-analyzer": tmp_path / "ma.csv"}


def test_perf_analyzer_csv_gives_the_best_rate_within_the_slo(cli: Cli, csvs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    code, stdout, err = cli(
        "profile",
        "import",
        str(csvs["perf-analyzer"]),
        "--format",
        "perf-analyzer",
        "--variant",
        "resnet50",
        "--cpu",
        "4",
        "--slo-ms",
        "50",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, err
    point = json.loads(stdout)["points"][0]
    assert (point["capacityRps"], point["p99Ms"], point["saturationRps"]) == (199.5, 41.0, 281.0)  # 41 ms <= 50 < 250 ms
    assert load_profile(out, slo_ms=50).capacity_rps("resnet50", 4) == 199.5
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["serving"]["resnet50"][0]["loadLevels"] == "Request Rate"


def test_model_analyzer_csv_picks_the_best_configuration_and_merges_beside_cpu_points(cli: Cli, csvs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    assert (
        cli(
            "profile",
            "import",
            str(csvs["perf-analyzer"]),
            "--format",
            "perf-analyzer",
            "--variant",
            "resnet50",
            "--cpu",
            "4",
            "--slo-ms",
            "50",
            "--out",
            str(out),
        )[0]
        == 0
    )
    code, _, err = cli(
        "profile",
        "import",
        str(csvs["model-analyzer"]),
        "--format",
        "model-analyzer",
        "--variant",
        "resnet50",
        "--cpu",
        "4",
        "--gpus",
        "1",
        "--slo-ms",
        "50",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert "resnet50_config_1 has the highest capacity" in err and "1 rows with client batch > 1 skipped" in err
    profile = load_profile(out, slo_ms=50)
    assert profile.capacity_rps("resnet50", 4) == 199.5  # the CPU point is kept
    assert profile.capacity_rps("resnet50", 4, gpus=1) == 2890.0  # config_1 at concurrency 32: 19.5 ms; the batch-4 row skipped
    gpu = yaml.safe_load(out.read_text(encoding="utf-8"))["serving"]["resnet50"][1]
    assert gpu["modelConfig"] == "resnet50_config_1" and gpu["instanceGroup"] == "2:GPU" and gpu["maxBatchSize"] == 16


def test_importing_the_same_size_again_replaces_its_point(cli: Cli, csvs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    base = ["profile", "import", str(csvs["perf-analyzer"]), "--format", "perf-analyzer", "--variant", "resnet50", "--cpu", "4", "--out", str(out)]
    assert cli(*base, "--slo-ms", "50")[0] == 0
    code, _, err = cli(*base, "--slo-ms", "20")
    assert code == 2 and f"--out: {out} was measured at SLO 50 ms, these at 20 ms (hint: write another --out, or measure at --slo-ms 50)" in err
    (csvs["perf-analyzer"]).write_text(PERF_ANALYZER.replace("199.5", "180.0"), encoding="utf-8")
    assert cli(*base, "--slo-ms", "50")[0] == 0
    assert load_profile(out).points["resnet50"] == load_profile(out).points["resnet50"][:1]
    assert load_profile(out).capacity_rps("resnet50", 4) == 180.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--format: missing (hint: perf-analyzer or model-analyzer)"),
        (["--format", "csv"], "--format: unknown format 'csv' (hint: perf-analyzer or model-analyzer)"),
        (
            ["--format", "perf-analyzer", "--percentile", "97"],
            "--percentile: the CSV has no 'p97 latency' column (it has p50 latency, p90 latency, p95 latency, p99 latency)",
        ),
        (["--format", "perf-analyzer", "--model", "x"], "--model: applies to --format model-analyzer only (hint: drop it)"),
        (["--format", "model-analyzer", "--config", "nope"], "--config: no model configuration 'nope' (the CSV has resnet50_config_0, resnet50_config_1)"),
        (["--format", "model-analyzer", "--model", "resnet18"], "--model: the CSV holds no model 'resnet18' (resnet50) (hint: pick one with --model NAME)"),
    ],
)
def test_import_mistakes_exit_2_naming_the_option(cli: Cli, csvs: dict[str, Path], tmp_path: Path, args: list[str], message: str) -> None:
    fmt = args[args.index("--format") + 1] if "--format" in args else "perf-analyzer"
    file = csvs.get(fmt, csvs["perf-analyzer"])
    code, _, err = cli("profile", "import", str(file), "--variant", "resnet50", "--cpu", "4", "--slo-ms", "50", "--out", str(tmp_path / "p.yaml"), *args)
    assert code == 2 and message in " ".join(err.split()), err
    assert not (tmp_path / "p.yaml").exists()


def test_a_bad_cell_is_named_by_row_and_column(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(PERF_ANALYZER.replace("199.5", "fast"), encoding="utf-8")
    code, _, err = cli("profile", "import", str(bad), "--format", "perf-analyzer", "--variant", "resnet50", "--cpu", "4", "--slo-ms", "50")
    assert code == 2 and "row 3.Inferences/Second: expected a number, got 'fast' (hint: fix or drop the row)" in err


def test_import_without_a_size_or_slo_says_what_is_missing(cli: Cli, csvs: dict[str, Path]) -> None:
    code, _, err = cli("profile", "import", str(csvs["perf-analyzer"]), "--format", "perf-analyzer", "--variant", "resnet50")
    flat = " ".join(err.split())
    assert code == 2
    assert "--slo-ms: missing (hint: give the latency SLO the capacity is measured at, e.g. --slo-ms 200 (or --spec))" in flat
    assert "--cpu: missing: say what one replica measured has (hint: --cpu 4 (cores), or --gpus 1 (with --cpu for its cores))" in flat


def test_options_of_another_source_are_refused_not_ignored(cli: Cli, csvs: dict[str, Path]) -> None:
    code, _, err = cli(
        "profile", "import", str(csvs["perf-analyzer"]), "--format", "perf-analyzer", "--variant", "resnet50", "--cpu", "4", "--slo-ms", "50", "--cpus", "1,2"
    )
    assert code == 2 and "--cpus: does not apply to `profile import` (hint: it is for local: drop it)" in err


def test_an_unreachable_url_is_refused_before_any_load(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("profile", "--url", "http://127.0.0.1:9", "--variant", "resnet18", "--cpu", "1", "--slo-ms", "200", "--out", str(tmp_path / "p.yaml"))
    flat = " ".join(err.split())
    assert code == 2 and "--url: no Triton answers at http://127.0.0.1:9" in flat and "(hint: start the server, or check the host and HTTP port)" in flat
    code, _, err = cli("profile", "--url", "http://host", "--variant", "resnet18", "--cpu", "1", "--slo-ms", "200")
    assert code == 2 and "--url: 'http://host' is not http://HOST:PORT" in err


@pytest.mark.slow
def test_profile_by_url_measures_a_running_triton_and_records_how_it_serves(cli: Cli, running_triton: object, tmp_path: Path) -> None:
    url = f"http://{running_triton.url}"  # type: ignore[attr-defined]
    out = tmp_path / "profile.yaml"
    base = ["profile", "--url", url, "--variant", "resnet18", "--slo-ms", "200", "--duration-s", "1", "--max-steps", "3", "--out", str(out)]
    code, _, err = cli(*base, "--cpu", "2")
    assert code == 2 and "--model: the server at" in err and "no ready model 'resnet18'" in err and "it serves resnet" in err
    code, stdout, err = cli(*base, "--cpu", "2", "--model", "resnet", "--json", "--progress")
    assert code == 0, err
    assert "progress: 100% resnet18: " in err and "rps at the SLO" in err  # on stderr: stdout is the JSON
    point = json.loads(stdout)["points"][0]
    assert point["capacityRps"] > 0 and point["p99Ms"] <= 200
    served = yaml.safe_load(out.read_text(encoding="utf-8"))["serving"]["resnet18"][0]
    assert served["backend"] == "python" and served["instanceGroup"] == "1:CPU" and served["model"] == "resnet"
    assert served["tritonVersion"] and served["url"] == url and served["steps"] >= 1
    assert load_profile(out, slo_ms=200).capacity_rps("resnet18", 2) == point["capacityRps"]


def test_import_on_a_named_accelerator_type_adds_that_deployments_point(cli: Cli, csvs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    base = ["profile", "import", str(csvs["perf-analyzer"]), "--format", "perf-analyzer", "--variant", "resnet50", "--slo-ms", "50", "--out", str(out)]
    assert cli(*base, "--cpu", "4")[0] == 0
    code, _, err = cli(*base, "--cpu", "2", "--gpus", "1", "--accelerator", "t4")
    assert code == 0, err
    profile = load_profile(out)
    assert profile.capacity_rps("resnet50-t4", 2, gpus=1) == 199.5 and profile.capacity_rps("resnet50", 4) == 199.5  # both kept
    assert {p.accelerator for p in profile.points["resnet50"]} == {"", "t4"}
    code, _, err = cli(*base, "--cpu", "2", "--accelerator", "t4")
    assert code == 2 and "--accelerator: a point on an accelerator type needs gpus >= 1" in " ".join(err.split())
    code, _, err = cli(*base, "--cpu", "2", "--gpus", "1", "--accelerator", "T4!")
    assert code == 2 and "--accelerator: expected a type name" in " ".join(err.split())
