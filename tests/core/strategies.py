"""Hypothesis strategies for small random decision problems."""

from __future__ import annotations

from hypothesis import strategies as st

from infadapter.solver import Problem, ResourceOption, ServiceProblem, VariantOptions


@st.composite
def variant_options(draw: st.DrawFn, name: str) -> VariantOptions:
    n = draw(st.integers(1, 4))
    cores = sorted(draw(st.lists(st.integers(1, 8), min_size=n, max_size=n, unique=True)))
    per_core = draw(st.integers(1, 400)) / 10.0
    options = tuple(ResourceOption(float(c), 1, 0, round(per_core * c * draw(st.integers(60, 100)) / 100.0, 3)) for c in cores)
    current = draw(st.one_of(st.none(), st.sampled_from(options)))
    return VariantOptions(
        name=name,
        accuracy=draw(st.integers(500, 950)) / 1000.0,
        options=options,
        load_time_s=draw(st.integers(0, 100)) / 10.0,
        current=current,
    )


@st.composite
def service_problems(draw: st.DrawFn, name: str = "svc", max_variants: int = 4) -> ServiceProblem:
    k = draw(st.integers(1, max_variants))
    variants = tuple(draw(variant_options(f"v{i}")) for i in range(k))
    return ServiceProblem(
        name=name,
        load_rps=draw(st.integers(0, 250_000)) / 1000.0,
        variants=variants,
        cost_weight=draw(st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0])),
        transition_weight=draw(st.sampled_from([0.0, 0.001, 0.05, 0.5])),
    )


@st.composite
def problems(draw: st.DrawFn, max_services: int = 1) -> Problem:
    n = draw(st.integers(1, max_services))
    services = tuple(draw(service_problems(f"s{i}", max_variants=4 if n == 1 else 2)) for i in range(n))
    return Problem(services, budget_cpu=float(draw(st.integers(1, 16))))
