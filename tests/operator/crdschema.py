"""The CRD's openAPIV3Schema as a JSON Schema validator, plus the checks JSON Schema cannot express.

What the API server enforces at admission, mirrored here:

* types, bounds (OpenAPI v3.0 boolean ``exclusiveMinimum`` -> JSON Schema numbers), enums, patterns,
  ``nullable``, and unknown fields (``kubectl apply`` validates strictly by default);
* ``x-kubernetes-list-type: map`` keys are unique (duplicate variant names);
* the CEL rules (``x-kubernetes-validations``) this CRD uses: each is recognised by its text and
  evaluated by an equivalent Python check; an unknown rule fails the test suite (see ``KNOWN_RULES``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "inferenceservice.yaml"

_QUANTITY_RULE = re.compile(
    r"^\(type\(self\) == int \|\| type\(self\) == double\) \? \(double\(self\) > ([\d.]+)(?: && double\(self\) <= ([\d.]+))?\)"
    r" : \(type\(self\) == string && self\.matches\('(.+)'\)\)$"
)
_MIN_MAX_RULE = "type(self.minCpu) == string || type(self.maxCpu) == string || double(self.minCpu) <= double(self.maxCpu)"


def _cores(value: Any) -> float:
    text = str(value).strip()
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _min_max(obj: Any) -> str | None:
    if not isinstance(obj, Mapping):
        return None
    low, high = obj.get("minCpu", 1.0), obj.get("maxCpu", 20.0)  # the CRD's defaults, applied before CEL
    if isinstance(low, str) or isinstance(high, str):
        return None
    return None if float(low) <= float(high) else "minCpu is larger than maxCpu; swap them"


_RESERVED_TYPE_RULE = "self.name != 'gpu' && self.name != 'cpu'"
_DECLARED_TYPES_RULE = "self.variants.all(v, !has(v.accelerators) || v.accelerators.all(n, has(self.accelerators) && self.accelerators.exists(a, a.name == n)))"
_PLACEMENT_CLASH_RULE = "!has(self.accelerators) || self.variants.all(v, self.accelerators.all(a, !self.variants.exists(w, w.name == v.name + '-' + a.name)))"


def _dicts(value: Any, key: str) -> list[dict[str, Any]]:
    items = value.get(key, []) if isinstance(value, dict) else []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _reserved_type(value: Any) -> str | None:
    return "'gpu' and 'cpu' are reserved" if isinstance(value, dict) and value.get("name") in ("gpu", "cpu") else None


def _declared_types(spec: Any) -> str | None:
    declared = {a.get("name") for a in _dicts(spec, "accelerators")}
    listed = {n for v in _dicts(spec, "variants") if isinstance(v.get("accelerators", []), list) for n in v.get("accelerators", []) if isinstance(n, str)}
    return "a variant lists an undeclared accelerator type" if listed - declared else None


def _placement_clash(spec: Any) -> str | None:
    names = {v.get("name") for v in _dicts(spec, "variants")}
    types = [a.get("name") for a in _dicts(spec, "accelerators")]
    clash = any(f"{v}-{a}" in names for v in names for a in types)
    return "a variant has the name of another's deployment on an accelerator type" if clash else None


KNOWN_RULES: dict[str, Callable[[Any], str | None]] = {
    _MIN_MAX_RULE: _min_max,
    _RESERVED_TYPE_RULE: _reserved_type,
    _DECLARED_TYPES_RULE: _declared_types,
    _PLACEMENT_CLASH_RULE: _placement_clash,
}


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    crd: dict[str, Any] = docs[0]
    return crd


def open_api_schema(crd: Mapping[str, Any] | None = None) -> dict[str, Any]:
    crd = crd or load_crd()
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI v3.0 (Kubernetes structural schema) -> JSON Schema draft 2020-12."""
    out: dict[str, Any] = {}
    node = copy.deepcopy(dict(node))
    rules = node.pop("x-kubernetes-validations", [])
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    nullable = node.pop("nullable", False)
    for key in ("x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-int-or-string", "default", "description", "format"):
        node.pop(key, None)
    for key, value in node.items():
        if key == "properties":
            out["properties"] = {k: to_json_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = to_json_schema(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            continue
        else:
            out[key] = value
    if node.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if node.get("exclusiveMaximum") is True:
        out["exclusiveMaximum"] = out.pop("maximum")
    if out.get("type") == "object" and "properties" in out and not preserve:
        out["additionalProperties"] = False
    for rule in rules:
        match = _QUANTITY_RULE.match(rule["rule"])
        if match:  # a number of cores or a quantity string
            low, high, pattern = match.groups()
            number: dict[str, Any] = {"type": "number", "exclusiveMinimum": float(low)}
            if high:
                number["maximum"] = float(high)
            out["anyOf"] = [number, {"type": "string", "pattern": pattern.replace("\\\\", "\\")}]
        elif rule["rule"] not in KNOWN_RULES:
            raise AssertionError(f"unknown CEL rule in the CRD (add its Python equivalent): {rule['rule']}")
    if nullable and "type" in out:
        out["type"] = [out["type"], "null"]
    elif nullable and "anyOf" in out:
        out["anyOf"].append({"type": "null"})
    return out


def _walk(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[str]:
    """The checks JSON Schema cannot express: list-map keys and the known CEL rules."""
    for rule in schema.get("x-kubernetes-validations", []):
        check = KNOWN_RULES.get(rule["rule"])
        if check is not None:
            problem = check(value)
            if problem:
                yield f"{path}: {problem}"
    if isinstance(value, Mapping):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _walk(sub, value[key], f"{path}.{key}" if path else key)
    if isinstance(value, list):
        keys = schema.get("x-kubernetes-list-map-keys")
        if schema.get("x-kubernetes-list-type") == "map" and keys:
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    key = tuple(item.get(k) for k in keys)
                    if key in seen:
                        yield f"{path}[{i}]: Duplicate value: {dict(zip(keys, key, strict=True))}"
                    seen.add(key)
        for i, item in enumerate(value):
            yield from _walk(schema.get("items", {}), item, f"{path}[{i}]")


class CrdValidator:
    """Validate whole InferenceService objects as the API server would (structural + CEL + list maps)."""

    def __init__(self, crd: Mapping[str, Any] | None = None) -> None:
        self.schema = open_api_schema(crd)
        self.json_schema = to_json_schema(self.schema)
        self._validator = jsonschema.Draft202012Validator(self.json_schema)

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        found = []
        for error in self._validator.iter_errors(obj):
            where = ".".join(str(p) for p in error.absolute_path)
            found.append(f"{where}: {error.message}" if where else error.message)
        found.extend(_walk(self.schema, obj, ""))
        return found
