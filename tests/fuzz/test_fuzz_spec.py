"""Fuzzing the InferenceService spec: any input parses or is refused with field path + hint."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from infadapter.errors import InvalidSpec
from infadapter.spec import InferenceService, InferenceServiceSpec, load_resource, parse_resource, parse_spec
from tests.fuzz.samples import FULL_SPEC, SPEC_PATHS
from tests.fuzz.strategies import assert_clear, dotted, fuzz, nasty_scalars, nested, related, replaced, same_data


def _parse_or_refuse(raw: Any) -> InferenceServiceSpec | InvalidSpec:
    before = copy.deepcopy(raw)
    try:
        result: InferenceServiceSpec | InvalidSpec = parse_spec(raw)
    except InvalidSpec as exc:
        assert_clear(exc)
        result = exc
    assert same_data(raw, before), "parse_spec changed its input"
    return result


def test_the_full_spec_is_valid_and_round_trips() -> None:
    spec = parse_spec(FULL_SPEC)
    assert parse_spec(spec.to_dict()) == spec


@fuzz(150)
@given(raw=nested(16))
def test_arbitrary_data_is_parsed_or_refused_with_path_and_hint(raw: Any) -> None:
    _parse_or_refuse(raw)


@fuzz(300)
@given(path=st.sampled_from(SPEC_PATHS), value=st.one_of(nasty_scalars, nested(4)))
def test_a_wrong_value_at_any_field_is_reported_at_that_field(path: tuple[Any, ...], value: Any) -> None:
    raw = replaced(FULL_SPEC, path, value)
    result = _parse_or_refuse(raw)
    if isinstance(result, InvalidSpec):
        field = dotted(path, "spec")
        paths = [e.path for e in result.errors]
        assert any(related(p, field) for p in paths), f"mutating {field} gave errors elsewhere: {paths}"
    else:
        assert parse_spec(result.to_dict()) == result  # what is accepted is stable


@fuzz(60)
@given(path=st.sampled_from(SPEC_PATHS))
def test_a_missing_field_is_a_default_or_an_error_at_its_path(path: tuple[Any, ...]) -> None:
    raw = copy.deepcopy(FULL_SPEC)
    node = raw
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    result = _parse_or_refuse(raw)
    if isinstance(result, InvalidSpec):
        assert any(related(e.path, dotted(path, "spec")) for e in result.errors)


@fuzz(60)
@given(key=st.text(min_size=1, max_size=20).filter(lambda k: k not in FULL_SPEC), value=nasty_scalars)
def test_an_unknown_key_is_named_with_a_spelling_hint(key: str, value: Any) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec({**FULL_SPEC, key: value})
    assert_clear(info.value)
    assert any(e.path == f"spec.{key}" and "spelling" in e.hint for e in info.value.errors)


@pytest.mark.parametrize(
    ("path", "value", "expect"),
    [
        (("variants", 0, "accuracy"), float("nan"), "finite"),
        (("budget", "cpu"), float("inf"), "finite"),
        (("resources", "gpusPerReplica"), [-1], "greater"),
        (("modelName",), "../etc", "model name"),
        (("modelName",), 'a"b', "model name"),
        (("variants", 0, "resources", "memory"), "lots", "memory quantity"),
        (("forecast", "windowSeconds"), 10**400, "smaller"),
        (("variants", 1, "name"), "resnet18", "appears twice"),
    ],
    ids=["nan", "inf", "negative-gpus", "model-name-path", "model-name-quote", "memory", "huge-int", "duplicate-name"],
)
def test_values_that_used_to_pass_or_crash_are_refused(path: tuple[Any, ...], value: Any, expect: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(replaced(FULL_SPEC, path, value))
    assert_clear(info.value)
    assert expect in str(info.value).lower() or expect in " ".join(e.hint for e in info.value.errors)


# --------------------------------------------------------------------------- whole resources and files


_METADATA = st.one_of(nested(4), st.fixed_dictionaries({}, optional={"name": nasty_scalars, "namespace": nasty_scalars}))
_RESOURCES = st.fixed_dictionaries(
    {"spec": st.just(FULL_SPEC)},
    optional={"apiVersion": nasty_scalars, "kind": nasty_scalars, "metadata": _METADATA, "status": nested(4)},
)


@fuzz(100)
@given(raw=st.one_of(nested(12), _RESOURCES))
def test_a_whole_resource_is_parsed_or_refused(raw: Any) -> None:
    before = copy.deepcopy(raw)
    try:
        resource = parse_resource(raw)
    except InvalidSpec as exc:
        assert_clear(exc)
    else:
        assert isinstance(resource, InferenceService)
    assert same_data(raw, before)


def _write_and_load(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        load_resource(path)
    except InvalidSpec as exc:
        assert_clear(exc)
    assert path.read_bytes() == data, "loading a spec changed the file"


@fuzz(150)
@given(text=st.text(max_size=300))
def test_any_text_file_loads_or_is_refused(tmp_path: Path, text: str) -> None:
    _write_and_load(tmp_path, "spec.yaml", text.encode("utf-8", "surrogatepass"))


@fuzz(100)
@given(data=st.binary(max_size=300))
def test_any_bytes_load_or_are_refused(tmp_path: Path, data: bytes) -> None:
    _write_and_load(tmp_path, "spec.yaml", data)


@fuzz(100)
@given(docs=st.lists(st.one_of(nested(8), st.just({"kind": "InferenceService", "spec": FULL_SPEC}), st.just(FULL_SPEC)), max_size=3))
def test_multi_document_files_load_one_service_or_are_refused(tmp_path: Path, docs: list[Any]) -> None:
    text = yaml.safe_dump_all(docs, allow_unicode=True) if docs else ""
    _write_and_load(tmp_path, "spec.yaml", text.encode())


@fuzz(80)
@given(path=st.sampled_from(SPEC_PATHS), value=st.one_of(nasty_scalars, nested(3)))
def test_a_mutated_yaml_file_is_refused_at_the_field(tmp_path: Path, path: tuple[Any, ...], value: Any) -> None:
    doc = {"apiVersion": "infadapter.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "svc"}, "spec": replaced(FULL_SPEC, path, value)}
    file = tmp_path / "svc.yaml"
    file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        load_resource(file)
    except InvalidSpec as exc:
        assert_clear(exc)
        assert exc.source == str(file)
        assert any(related(e.path, dotted(path, "spec")) for e in exc.errors), [e.path for e in exc.errors]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (b"", "no InferenceService"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b"[" * 3000 + b"]" * 3000, "too deep"),
        (b"spec: {variants: [{name: a, accuracy: " + b"9" * 5000 + b"}]}", "4300 digits"),
        (b"- 1\n- 2\n", "a list"),
        (b"spec: {variants: [{name: a, accuracy: 0.5}]}\n---\nspec: {variants: [{name: b, accuracy: 0.5}]}\n", "2 InferenceService"),
        (b"metadata: {name: 'Not A Name'}\nspec: {variants: [{name: a, accuracy: 0.5}]}", "kubernetes name"),
        (b"spec: {variants: [{name: a, accuracy: .nan}]}", "finite"),
        (b"spec: !!python/object:os.system {}", "not valid yaml"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path: Path, text: bytes, expect: str) -> None:
    file = tmp_path / "spec.yaml"
    file.write_bytes(text)
    with pytest.raises(InvalidSpec) as info:
        load_resource(file)
    assert_clear(info.value)
    assert expect.lower() in str(info.value).lower()


def test_a_missing_or_unreadable_path_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.yaml", tmp_path):
        with pytest.raises(InvalidSpec) as info:
            load_resource(path)
        assert_clear(info.value)
