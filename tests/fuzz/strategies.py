"""Hypothesis strategies and checks shared by the fuzz tests of user input.

Every fuzz test states the same contract: an input either works, or raises an
:class:`~infadapter.errors.InvalidInput` whose every error names where (a field path, an
option or a file) and says how to fix it (a hint). Nothing else may escape.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from infadapter.errors import InvalidInput

#: scale every fuzz test with INFADAPTER_FUZZ_EXAMPLES (default: modest, so the suite stays fast)
SCALE = float(os.environ.get("INFADAPTER_FUZZ_EXAMPLES", "1"))


def fuzz(max_examples: int) -> settings:
    """Deterministic settings (CI sees the same examples every run), no deadline on a shared machine."""
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- values

#: scalars users (and their editors) actually produce, plus the ones parsers trip on
nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e309",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "500m",
            "1500m",
            "2",
            "0.5",
            "1Gi",
            "[/]",
            "[bold]x",
            "[/red]",
            "{",
            "}",
            "\x00",
            "é",
            "名前",
            "\U0001f600",
            "a" * 300,
            "resnet18",
            "Auto",
            "Envoy",
            "onnx",
            "true",
            "yes",
            "~",
            "null",
            "- x",
            "a: b",
            "'",
            '"',
            "\\",
        ]
    ),
    st.text(max_size=20),
)


def nested(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary YAML-like data: mappings (string or odd keys), lists, nasty scalars."""
    return st.recursive(
        nasty_scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(["variants", "spec", "kind", "sloMs", "cpu"])), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


# --------------------------------------------------------------------------- paths in nested data


def leaf_paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys / indexes) to a node of ``data``, containers included."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaf_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaf_paths(value, (*prefix, i))


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``data`` with the node at ``path`` replaced by ``value``."""
    if not path:
        return value
    out = copy.deepcopy(data)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def dotted(path: tuple[Any, ...], prefix: str = "") -> str:
    """``("variants", 0, "name")`` -> ``variants[0].name`` (the notation of FieldError.path)."""
    out = prefix
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def same_data(a: Any, b: Any) -> bool:
    """Structural equality in which NaN equals NaN (for "the input was not mutated")."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_data(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_data(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --------------------------------------------------------------------------- the contract


def assert_clear(exc: InvalidInput) -> None:
    """Every error of ``exc`` says where (path) and how to fix it (hint); the message is printable."""
    assert exc.errors, f"{type(exc).__name__} without errors: {exc}"
    for error in exc.errors:
        assert error.path or exc.source, f"error without a field path or source: {error}"
        assert error.message.strip(), f"error without a message: {error!r}"
        assert error.hint.strip(), f"error without a hint: {error}"
    text = str(exc)
    assert "Traceback" not in text
    assert len(text) < 20_000, "an error message should not echo megabytes of input"


def related(error_path: str, field_path: str) -> bool:
    """Whether an error at ``error_path`` is about the field at ``field_path`` (same, ancestor or child)."""
    if not error_path:
        return True
    a, b = error_path, field_path
    return a == b or b.startswith((a + ".", a + "[")) or a.startswith((b + ".", b + "["))
