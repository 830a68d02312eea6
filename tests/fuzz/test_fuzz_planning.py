"""Fuzzing the planning inputs that come straight from users: ``--current`` sizes and the load."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infadapter.cli.configuration import parse_configuration
from infadapter.errors import InvalidInput
from infadapter.planning import plan_for_load
from infadapter.profiles import profile_from_dict
from infadapter.spec import parse_spec
from tests.fuzz.strategies import assert_clear, fuzz

SPEC = parse_spec(
    {
        "variants": [{"name": "resnet18", "accuracy": 0.69758}, {"name": "resnet50", "accuracy": 0.7613}],
        "budget": {"cpu": 8},
        "resources": {"minCpu": 1, "maxCpu": 4},
    }
)
PROFILE = profile_from_dict(
    {"sloMs": 750, "variants": {name: [{"cpu": c, "capacityRps": per_core * c} for c in (1, 2, 4)] for name, per_core in (("resnet18", 19), ("resnet50", 7))}}
)
_PARTS = st.sampled_from(["resnet18", "resnet50", "resnet", "=", ",", " ", "2", "0", "-1", "nan", "inf", "1e400", "1.5", "x", "名", "[/]"])


@fuzz(200)
@given(text=st.one_of(st.lists(_PARTS, max_size=8).map("".join), st.text(max_size=30)))
def test_current_sizes_parse_or_name_the_option(text: str) -> None:
    try:
        sizes = parse_configuration(text, SPEC, "--current")
    except InvalidInput as exc:
        assert_clear(exc)
        assert all(e.path == "--current" for e in exc.errors)
    else:
        assert set(sizes) <= set(SPEC.variant_names)
        assert all(0 < v.cores < float("inf") for v in sizes.values())


@fuzz(30)
@given(load_rps=st.one_of(st.floats(0, 1e6), st.sampled_from([0.0, 1e-300, 1e9, 1e15])))
def test_any_load_up_to_the_cli_bound_gives_a_plan(load_rps: float) -> None:
    plan = plan_for_load(SPEC, PROFILE, load_rps)
    assert plan.status in ("optimal", "infeasible")
    assert plan.cost_cpu <= SPEC.budget.cpu + 1e-9


def _backends() -> list[Any]:
    return ["auto", "dp", "cbc", "highs"]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflowing cast to int64 is undefined, not a crash
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("load_rps", [1e20, 1e300])
def test_an_absurd_load_is_infeasible_not_a_crash(backend: str, load_rps: float) -> None:
    plan = plan_for_load(SPEC, PROFILE, load_rps, backend=backend)  # type: ignore[arg-type]
    assert plan.status == "infeasible"
