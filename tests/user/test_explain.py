"""``infadapter explain``: the plan's objective terms, the exact runner-up, and the nearest loads that change it."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infadapter.planning import service_problem
from infadapter.planning.problem import spec_problem
from infadapter.profiles import load_profile
from infadapter.solver.evaluate import score
from infadapter.solver.problem import TOLERANCE
from infadapter.spec import load_spec
from tests.user.conftest import Cli
from tests.user.test_reports import SPEC


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 9)] for n, k in (("resnet18", 24), ("resnet50", 10))}
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    return {"spec": spec, "profile": profile}


def _explain(cli: Cli, files: dict[str, Path], load: float, *extra: str) -> dict[str, Any]:
    code, out, err = cli("explain", "--spec", str(files["spec"]), "--profile", str(files["profile"]), "--load", f"{load:g}", "--json", *extra)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def _plan(cli: Cli, files: dict[str, Path], load: float, *extra: str) -> dict[str, Any]:
    code, out, err = cli("plan", "--spec", str(files["spec"]), "--profile", str(files["profile"]), "--load", f"{load:g}", "--json", *extra)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def _config(variants: list[dict[str, Any]]) -> set[tuple[str, float, int, int]]:
    return {(v["name"], v["cpu"], v["replicas"], v["gpus"]) for v in variants}


@pytest.mark.parametrize("load", [50.0, 75.0, 150.0])
def test_the_chosen_plan_is_plans_and_its_terms_add_up(cli: Cli, files: dict[str, Path], load: float) -> None:
    explained = _explain(cli, files, load, "--current", "resnet50=8")
    planned = _plan(cli, files, load, "--current", "resnet50=8")
    chosen = explained["chosen"]
    assert _config(chosen["variants"]) == _config(planned["variants"])
    assert chosen["objective"] == pytest.approx(planned["objective"], abs=1e-8)
    terms = chosen["terms"]
    assert terms["accuracy"] + terms["cost"] + terms["transition"] == pytest.approx(chosen["objective"], abs=1e-8)
    assert terms["cost"] == pytest.approx(-0.05 * planned["cost_cpu"] / 8.0, abs=1e-8)


@pytest.mark.parametrize("load", [50.0, 75.0, 150.0])
def test_the_runner_up_is_the_best_other_configuration_by_brute_force(cli: Cli, files: dict[str, Path], load: float) -> None:
    explained = _explain(cli, files, load)
    spec = load_spec(files["spec"])
    problem = service_problem(spec, load_profile(files["profile"], spec.slo.latency_ms), load)
    best_config = _config(explained["chosen"]["variants"])
    others = []
    for combo in itertools.product(*[(None, *v.options) for v in problem.variants]):
        chosen = {v.name: o for v, o in zip(problem.variants, combo, strict=True) if o is not None}
        solution = score(problem, chosen, spec_problem(spec))
        config = {(n, o.cpu_cores, o.replicas, o.gpus) for n, o in chosen.items()}
        if chosen and solution.cost_cpu <= spec.budget.cpu + TOLERANCE and solution.served_rps >= load - TOLERANCE and config != best_config:
            others.append(solution.objective)
    second = explained["runner_up"]
    assert second is not None
    assert _config(second["variants"]) != best_config
    assert second["objective"] == pytest.approx(max(others), abs=1e-8)
    assert explained["margin"] == pytest.approx(explained["chosen"]["objective"] - second["objective"], abs=1e-8)
    assert explained["margin"] >= 0


def test_the_change_points_are_the_nearest_loads_where_the_configuration_changes(cli: Cli, files: dict[str, Path]) -> None:
    load = 45.0  # resnet50 at 5 cores serves 50 rps: up it needs 6 cores past 50, down 4 cores suffice from 40
    explained = _explain(cli, files, load)
    here = _config(explained["chosen"]["variants"])
    up, down = explained["changes"]["up"], explained["changes"]["down"]
    assert up["load_rps"] == pytest.approx(50.0, abs=0.02) and down["load_rps"] == pytest.approx(40.0, abs=0.02)
    for change in (up, down):
        assert _config(_plan(cli, files, change["last_same_rps"])["variants"]) == here
        assert _config(_plan(cli, files, change["load_rps"])["variants"]) == _config(change["variants"]) != here
        assert abs(change["load_rps"] - change["last_same_rps"]) <= 0.02


def test_text_output_names_the_terms_the_runner_up_and_the_changes(cli: Cli, files: dict[str, Path]) -> None:
    code, out, err = cli("explain", "--spec", str(files["spec"]), "--profile", str(files["profile"]), "--load", "45")
    assert code == 0, err
    assert "objective" in out and "accuracy" in out and "cost" in out and "transition" in out
    assert "runner-up: resnet50:5c/1.00 resnet18:1c/0.00" in out
    above = re.search(r"above: changes at ([0-9.]+) rps", out)
    below = re.search(r"below: changes at ([0-9.]+) rps", out)
    assert above and below, out
    assert float(above.group(1)) == pytest.approx(50.0, abs=0.02) and float(below.group(1)) == pytest.approx(40.0, abs=0.02)


def test_a_negative_load_is_a_usage_error(cli: Cli, files: dict[str, Path]) -> None:
    code, _, err = cli("explain", "--spec", str(files["spec"]), "--profile", str(files["profile"]), "--load", "-5")
    assert code == 2 and "--load" in err
