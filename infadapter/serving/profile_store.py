"""Profiles measured elsewhere, merged into a Profile file with the serving configuration they were measured with.

``infadapter profile --url`` and ``infadapter profile import`` add measurements to a Profile YAML/JSON
(``infadapter.profiles``), creating it or merging into it: a point of the same variant and size (cores,
GPUs) is replaced, every other point is kept. Beside ``variants`` the file gets a ``serving`` section,
which the profile reader ignores and these commands keep::

    serving:
      resnet50:
        - {cpu: 4, gpus: 1, tool: perf_analyzer, file: pa.csv, loadLevels: Request Rate}
        - {cpu: 2, gpus: 0, tool: infadapter, url: http://host:8000, model: resnet50, platform: onnxruntime_onnx,
           instanceGroup: "2:CPU", maxBatchSize: 0, dynamicBatching: false, tritonVersion: 2.40.0}

A file measured at another SLO or percentile is refused (its capacities would mean something else).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from infadapter.errors import FieldError, InvalidInput
from infadapter.profiles import Profile, ProfilePoint, load_profile, save_profile

#: serving configurations per variant: one mapping per measured size (``cpu``, ``gpus`` and what was found)
Serving = dict[str, list[dict[str, Any]]]


def read_existing(path: Path, slo_ms: float, percentile: float, option: str = "--out") -> tuple[Profile | None, Serving]:
    """The profile at ``path`` (None when there is none) and its serving section; refuses another SLO."""
    if not path.exists():
        return None, {}
    if path.is_dir():
        raise InvalidInput([FieldError(option, f"{path} is a directory", "give a file name, e.g. profile.yaml")], "arguments")
    try:
        profile = load_profile(path)
    except InvalidInput as exc:
        raise type(exc)(exc.errors, f"{option} {path} (the profile to merge into)") from None
    errors = []
    if abs(profile.slo_ms - slo_ms) > 1e-9:
        errors.append(
            FieldError(
                option,
                f"{path} was measured at SLO {profile.slo_ms:g} ms, these at {slo_ms:g} ms",
                f"write another --out, or measure at --slo-ms {profile.slo_ms:g}",
            )
        )
    if abs(profile.percentile - percentile) > 1e-9:
        errors.append(
            FieldError(
                option,
                f"{path} holds p{profile.percentile:g} capacities, these are p{percentile:g}",
                f"write another --out, or use --percentile {profile.percentile:g}",
            )
        )
    if errors:
        raise InvalidInput(errors, "arguments")
    return profile, _serving_section(path)


def _serving_section(path: Path) -> Serving:
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    section = raw.get("serving") if isinstance(raw, Mapping) else None
    if not isinstance(section, Mapping):
        return {}
    return {str(k): [dict(e) for e in v if isinstance(e, Mapping)] for k, v in section.items() if isinstance(v, list)}


def merge(
    existing: Profile | None, serving: Serving, variant: str, point: ProfilePoint, how: Mapping[str, Any], *, slo_ms: float, percentile: float, source: str
) -> tuple[Profile, Serving]:
    """``existing`` with ``point`` of ``variant`` added (replacing the same size) and its serving configuration."""
    points = {k: list(v) for k, v in (existing.points.items() if existing else ())}
    size = (point.cpu_cores, point.gpus, point.accelerator, point.batch)
    same = [p for p in points.get(variant, []) if (p.cpu_cores, p.gpus, p.accelerator, p.batch) == size]
    points[variant] = [p for p in points.get(variant, []) if p not in same] + [point]
    points[variant].sort(key=lambda p: (p.gpus, p.cpu_cores))
    kept = [e for e in serving.get(variant, []) if (e.get("cpu"), e.get("gpus", 0)) != (point.cpu_cores, point.gpus)]
    record = {"cpu": point.cpu_cores, "gpus": point.gpus, **how}
    merged = {**serving, variant: sorted([*kept, record], key=lambda e: (e.get("gpus", 0), e.get("cpu", 0)))}
    old = existing.source if existing else ""
    text = source if not old or old == source else f"{old}; {source}"
    return Profile(slo_ms, {k: tuple(v) for k, v in points.items()}, percentile, text), merged


def write(profile: Profile, serving: Serving, path: Path) -> None:
    """Write ``profile`` and its ``serving`` section atomically (YAML, or JSON for a .json path)."""
    save_profile(profile, path, {"serving": {k: v for k, v in serving.items() if k in profile.points}})


def points_of(profile: Profile, variants: Sequence[str]) -> list[tuple[str, ProfilePoint]]:
    """Every point of ``variants`` in ``profile`` (for printing what a merge left)."""
    return [(v, p) for v in variants for p in profile.points.get(v, ())]
