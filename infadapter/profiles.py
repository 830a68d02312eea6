"""Capacity profiles: per variant x resource option, the max RPS at which the SLO percentile holds.

Two file formats are read:

* the paper's CSV (``capacity_result_Feb_21.csv``: one row per variant ``ARCH`` x ``CPU`` x ``SLA``),
  from which the rows of one SLA are taken; ``ARCH`` ``n`` becomes variant ``resnet{n}``
  (:mod:`infadapter.paper_csv`);
* the project's own YAML/JSON (what ``infadapter profile`` writes)::

      kind: Profile
      sloMs: 750
      percentile: 99
      variants:
        resnet18:
          - {cpu: 1, capacityRps: 19, p99Ms: 389.1}
          - {cpu: 2, capacityRps: 43}
          - {cpu: 1, gpus: 1, capacityRps: 900}
          - {cpu: 1, gpus: 1, accelerator: t4, capacityRps: 700}   # a named type of the spec's accelerators
          - {cpu: 1, gpus: 1, accelerator: t4, maxBatchSize: 8, capacityRps: 1500}   # its servers batching up to 8
      serving:            # optional: how the servers ran when measured (older profiles have none)
        resnet18:
          - {cpu: 1, gpus: 0, tool: infadapter, backend: python+onnxruntime, instanceGroup: "2:CPU",
             intraOpThreads: 1, interOpThreads: 1, ompThreads: 1, maxBatchSize: 0, dynamicBatching: false}

Between measured core counts the capacity is interpolated linearly after the measured
points are made monotone (pool-adjacent-violators), below the smallest measurement it
scales linearly to zero, above the largest it stays flat (no extrapolation). ``r``
replicas of one size serve ``r`` times the capacity of one.

A point on a named accelerator type is the capacity of the variant's deployment on that type,
``<variant>-<type>``, and one with ``maxBatchSize: n`` that of the deployment whose servers batch up
to ``n`` requests, ``<variant>[-<type>]-b<n>`` (:func:`infadapter.spec_fields.placement_name`): the
capacity functions take that name, as the planner and the modes do.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infadapter.errors import ApplyFailed, FieldError, InfAdapterError, InvalidInput, InvalidProfile
from infadapter.paper_csv import paper_profile
from infadapter.profile_fields import accelerator_field, batch_field, number_field, short_repr
from infadapter.spec import InferenceServiceSpec
from infadapter.spec_fields import placement_name
from infadapter.yamlfile import read_text, yaml_documents, yaml_error_text

#: a load offered this far past the saturation, or (offered load unknown) a saturation this far past the
#: capacity, was measured in overload, so the saturation is the server's ceiling
CEILING_MARGIN = 0.02


@dataclass(frozen=True)
class ProfilePoint:
    """One measurement: on ``cpu_cores`` (and ``gpus``), ``capacity_rps`` keeps the SLO percentile."""

    cpu_cores: float
    capacity_rps: float
    gpus: int = 0
    p99_ms: float | None = None
    saturation_rps: float | None = None
    accelerator: str = ""  # a named accelerator type; "" for CPU or the default GPU
    batch: int = 0  # the servers' largest batch when measured (``maxBatchSize``); 0: no batching
    p50_ms: float | None = None  # client-side median at the capacity (with ``p99_ms``, the latency's spread there)
    #: the highest load any step of the measurement offered: a saturation well below it is the server's ceiling
    max_offered_rps: float | None = None


def isotonic(values: Sequence[float]) -> list[float]:
    """Pool-adjacent-violators: the closest non-decreasing sequence (least squares)."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out.extend([total / count] * int(count))
    return out


@dataclass(frozen=True)
class Profile:
    """Capacities of every variant, measured at one SLO (``slo_ms`` at ``percentile``)."""

    slo_ms: float
    points: Mapping[str, tuple[ProfilePoint, ...]]
    percentile: float = 99.0
    source: str = ""
    #: per variant, the serving configuration of each measured size (``{cpu, gpus, instanceGroup, ...}``)
    serving: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict, compare=False)
    _curves: dict[tuple[str, int], tuple[list[float], list[float]]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, pts in self.points.items():
            by_size: dict[tuple[str, int], list[ProfilePoint]] = {}
            for p in pts:
                by_size.setdefault((placement_name(name, p.accelerator, p.batch), p.gpus), []).append(p)
            for key, group in by_size.items():
                group.sort(key=lambda p: p.cpu_cores)
                xs = [p.cpu_cores for p in group]
                ys = isotonic([p.capacity_rps for p in group])
                self._curves[key] = (xs, ys)

    @property
    def variants(self) -> list[str]:
        return list(self.points)

    def gpu_counts(self, variant: str) -> list[int]:
        """The GPU counts (per replica) measured for ``variant``, excluding 0."""
        return sorted({g for (name, g) in self._curves if name == variant and g > 0})

    def measured(self, name: str) -> bool:
        """Whether anything of ``name`` (a variant, or its deployment on a named accelerator type) was measured."""
        return any(key == name for key, _ in self._curves)

    def runs_on_cpu(self, variant: str) -> bool:
        """Whether ``variant`` was measured without a GPU (one profiled only on GPUs is not offered on CPU)."""
        return (variant, 0) in self._curves

    def cpu_range(self, variant: str, gpus: int = 0) -> tuple[float, float]:
        """The smallest and largest measured cores (with ``gpus``): outside them capacities are assumed."""
        xs, _ = self._curve(variant, gpus)
        return xs[0], xs[-1]

    def unmeasured(self, variant: str, cpu_cores: float, gpus: int = 0) -> str | None:
        """Why ``cpu_cores`` (+ ``gpus``) lies outside what was measured for ``variant``, or None when inside."""
        if (variant, gpus) not in self._curves:
            return f"{variant} was not measured with {gpus} GPU(s)"
        low, high = self.cpu_range(variant, gpus)
        hardware = f" with {gpus} GPU(s)" if gpus else ""
        size = f"{variant} at {cpu_cores:g} cores{hardware}"
        if cpu_cores > high + 1e-9:
            return f"{size} is above the largest measured size ({high:g} cores): cores beyond it add no capacity"
        if cpu_cores < low - 1e-9:
            return f"{size} is below the smallest measured size ({low:g} cores): its capacity is extrapolated linearly to zero"
        return None

    def _curve(self, variant: str, gpus: int) -> tuple[list[float], list[float]]:
        try:
            return self._curves[(variant, gpus)]
        except KeyError:
            raise KeyError(f"profile has no points for variant {variant!r} with {gpus} GPU(s)") from None

    def capacity_rps(self, variant: str, cpu_cores: float, replicas: int = 1, gpus: int = 0) -> float:
        """Max RPS at the SLO for ``replicas`` instances of ``cpu_cores`` (+ ``gpus``) each."""
        if cpu_cores <= 0 or replicas <= 0:
            return 0.0
        xs, ys = self._curve(variant, gpus)
        if cpu_cores <= xs[0]:
            one = ys[0] * cpu_cores / xs[0]
        elif cpu_cores >= xs[-1]:
            one = ys[-1]
        else:
            i = bisect_right(xs, cpu_cores) - 1
            x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
            one = y0 + (y1 - y0) * (cpu_cores - x0) / (x1 - x0)
        return max(0.0, one) * replicas

    def p99_at_capacity_ms(self, variant: str, cpu_cores: float) -> float | None:
        """The measured tail latency at the capacity nearest ``cpu_cores`` (None if not recorded)."""
        pts = [p for p in self.points.get(variant, ()) if p.gpus == 0 and p.p99_ms is not None]
        if not pts:
            return None
        return min(pts, key=lambda p: abs(p.cpu_cores - cpu_cores)).p99_ms

    def point_at(self, name: str, cpu_cores: float, gpus: int = 0) -> ProfilePoint | None:
        """The point measured for ``name`` (a variant or one of its deployments) at exactly this size, if any."""
        for variant, pts in self.points.items():
            for p in pts:
                if p.gpus == gpus and abs(p.cpu_cores - cpu_cores) < 1e-9 and placement_name(variant, p.accelerator, p.batch) == name:
                    return p
        return None

    def covers(self, spec: InferenceServiceSpec) -> list[FieldError]:
        """Errors for every spec variant that this profile cannot size."""
        errors: list[FieldError] = []
        for i, v in enumerate(spec.variants):
            if v.name not in self.points:
                errors.append(
                    FieldError(
                        f"spec.variants[{i}].name",
                        f"variant {v.name!r} has no capacity in the profile (it has {', '.join(self.variants) or 'none'})",
                        "profile it with `infadapter profile` or rename the variant",
                    )
                )
        return errors

    def restricted(self, names: Iterable[str]) -> Profile:
        keep = set(names)
        serving = {k: v for k, v in self.serving.items() if k in keep}
        return Profile(self.slo_ms, {k: v for k, v in self.points.items() if k in keep}, self.percentile, self.source, serving)

    def serving_at(self, variant: str, cpu_cores: float, gpus: int = 0) -> Mapping[str, Any] | None:
        """How ``variant``'s servers ran when ``cpu_cores`` (+ ``gpus``) was measured; None when not recorded."""
        for record in self.serving.get(variant, ()):
            if abs(float(record.get("cpu", -1)) - cpu_cores) < 1e-9 and int(record.get("gpus", 0)) == gpus:
                return record
        return None

    def to_dict(self) -> dict[str, Any]:
        variants: dict[str, list[dict[str, Any]]] = {}
        for name, pts in self.points.items():
            rows: list[dict[str, Any]] = []
            for p in pts:
                row: dict[str, Any] = {"cpu": p.cpu_cores, "capacityRps": p.capacity_rps}
                if p.gpus:
                    row["gpus"] = p.gpus
                if p.accelerator:
                    row["accelerator"] = p.accelerator
                if p.batch:
                    row["maxBatchSize"] = p.batch
                if p.p99_ms is not None:
                    row["p99Ms"] = p.p99_ms
                if p.p50_ms is not None:
                    row["p50Ms"] = p.p50_ms
                if p.saturation_rps is not None:
                    row["saturationRps"] = p.saturation_rps
                if p.max_offered_rps is not None:
                    row["maxOfferedRps"] = p.max_offered_rps
                rows.append(row)
            variants[name] = rows
        out: dict[str, Any] = {"kind": "Profile", "sloMs": self.slo_ms, "percentile": self.percentile}
        if self.source:
            out["source"] = self.source
        out["variants"] = variants
        if self.serving:
            out["serving"] = {k: [dict(r) for r in v] for k, v in self.serving.items()}
        return out


# --------------------------------------------------------------------------- reading


def profile_from_dict(raw: Any, source: str = "profile") -> Profile:
    """Validate the project's profile mapping; raise :class:`InvalidProfile` with every error."""
    errors: list[FieldError] = []
    if not isinstance(raw, Mapping):
        raise InvalidProfile([FieldError("", "expected a mapping with kind: Profile", "see docs/profiles in the README")], source)
    if raw.get("kind", "Profile") != "Profile":
        errors.append(FieldError("kind", f"expected 'Profile', got {raw.get('kind')!r}", "set kind: Profile"))
    slo = number_field(raw.get("sloMs"), "sloMs", errors, positive=True) if "sloMs" in raw else None
    if "sloMs" not in raw:
        errors.append(FieldError("sloMs", "missing", "add the SLO latency (ms) at which capacities were measured"))
    pct = number_field(raw.get("percentile", 99.0), "percentile", errors, positive=True, below=100.0)
    variants = raw.get("variants")
    points: dict[str, tuple[ProfilePoint, ...]] = {}
    if not isinstance(variants, Mapping) or not variants:
        errors.append(FieldError("variants", "expected a non-empty mapping of variant -> list of points", "add variants:"))
    else:
        for name, rows in variants.items():
            base = f"variants.{name}"
            if not isinstance(name, str) or not name.strip():
                errors.append(FieldError(base, f"variant names are non-empty strings, got {short_repr(name)}", "name it as in the spec, e.g. resnet18"))
                continue
            if not isinstance(rows, list) or not rows:
                errors.append(FieldError(base, "expected a non-empty list of points", "add - {cpu: 1, capacityRps: 10}"))
                continue
            pts = [p for i, row in enumerate(rows) if (p := _point(row, f"{base}[{i}]", errors)) is not None]
            seen: set[tuple[float, int, str, int]] = set()
            for p in pts:
                if (p.cpu_cores, p.gpus, p.accelerator, p.batch) in seen:
                    on = (f" on {p.accelerator}" if p.accelerator else "") + (f" batching {p.batch}" if p.batch else "")
                    errors.append(FieldError(base, f"two points for cpu={p.cpu_cores} gpus={p.gpus}{on}", "keep one measurement per size"))
                seen.add((p.cpu_cores, p.gpus, p.accelerator, p.batch))
            if pts:
                points[name] = tuple(pts)
    if errors:
        raise InvalidProfile(errors, source)
    assert slo is not None and pct is not None
    return Profile(slo, points, pct, str(raw.get("source", "")), _serving_records(raw.get("serving")))


#: a profile point's fields, as written
POINT_FIELDS = ("cpu", "gpus", "accelerator", "maxBatchSize", "capacityRps", "p50Ms", "p99Ms", "saturationRps", "maxOfferedRps")


def _point(row: Any, path: str, errors: list[FieldError]) -> ProfilePoint | None:
    """One point of a variant, checked field by field (None, with the errors added, when unusable)."""
    if not isinstance(row, Mapping):
        errors.append(FieldError(path, "expected a mapping", "write {cpu: 1, capacityRps: 10}"))
        return None
    unknown = set(row) - set(POINT_FIELDS)
    if unknown:
        errors.append(FieldError(f"{path}.{sorted(unknown)[0]}", "unknown field", f"use {', '.join(POINT_FIELDS)}"))
    cpu = number_field(row.get("cpu"), f"{path}.cpu", errors, positive=True) if "cpu" in row else None
    if "cpu" not in row:
        errors.append(FieldError(f"{path}.cpu", "missing", "add the cores of this measurement"))
    cap = number_field(row.get("capacityRps"), f"{path}.capacityRps", errors) if "capacityRps" in row else None
    if "capacityRps" not in row:
        errors.append(FieldError(f"{path}.capacityRps", "missing", "add the measured capacity in RPS"))
    gpus = row.get("gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 0 <= gpus <= 64:
        errors.append(FieldError(f"{path}.gpus", f"expected a whole number 0..64, got {short_repr(gpus)}", "write 0, 1, 2…"))
        gpus = 0
    p50 = number_field(row["p50Ms"], f"{path}.p50Ms", errors, positive=True) if row.get("p50Ms") is not None else None
    p99 = number_field(row["p99Ms"], f"{path}.p99Ms", errors) if row.get("p99Ms") is not None else None
    sat = number_field(row["saturationRps"], f"{path}.saturationRps", errors) if row.get("saturationRps") is not None else None
    offered = number_field(row["maxOfferedRps"], f"{path}.maxOfferedRps", errors) if row.get("maxOfferedRps") is not None else None
    accelerator = accelerator_field(row.get("accelerator"), f"{path}.accelerator", gpus, errors)
    batch = batch_field(row, path, errors)
    if cpu is None or cap is None:
        return None
    return ProfilePoint(cpu, cap, gpus, p99, sat, accelerator, batch, p50, offered)


def _serving_records(raw: Any) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """The optional ``serving`` section, as written (what a profile does not say is not invented).

    Kept, never required: older profiles have none, and a malformed entry only loses its record.
    """
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for name, records in raw.items():
        if isinstance(name, str) and isinstance(records, list):
            kept = tuple(dict(r) for r in records if isinstance(r, Mapping) and isinstance(r.get("cpu"), int | float))
            if kept:
                out[name] = kept
    return out


def load_profile(path: str | Path, slo_ms: float | None = None, name_format: str = "resnet{arch}") -> Profile:
    """Read a profile: the paper's CSV (rows at ``slo_ms``) or the project's YAML/JSON."""
    file = Path(path)
    if not file.is_file():
        raise InvalidProfile([FieldError("", f"no such file: {file}", "pass --profile with an existing path")], str(file))
    if file.suffix.lower() == ".csv":
        return profile_from_dict(paper_profile(file, slo_ms, name_format), str(file))
    hint = "write a Profile YAML/JSON or the paper's CSV"
    try:
        text = read_text(file)
    except OSError as exc:
        raise InvalidProfile([FieldError("", f"cannot read {file}: {exc.strerror or exc}", "check the path")], str(file)) from None
    except UnicodeDecodeError as exc:
        raise InvalidProfile([FieldError("", f"{file} is not UTF-8 text (byte {exc.start})", hint)], str(file)) from None
    if file.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, too-long integers, too-deep nesting
            problem = str(exc).split(";")[0] if not isinstance(exc, RecursionError) else "nesting too deep"
            raise InvalidProfile([FieldError("", f"not valid JSON: {problem}", hint)], str(file)) from None
    else:
        try:
            docs = yaml_documents(text)
        except yaml.YAMLError as exc:
            raise InvalidProfile([FieldError("", yaml_error_text(exc), hint)], str(file)) from None
        if len(docs) > 1:
            raise InvalidProfile([FieldError("", f"the file holds {len(docs)} YAML documents, expected one", "keep one Profile per file")], str(file))
        raw = docs[0] if docs else None
    profile = profile_from_dict(raw, str(file))
    if slo_ms is not None and abs(profile.slo_ms - slo_ms) > 1e-9:
        raise InvalidProfile(
            [FieldError("sloMs", f"profile was measured at SLO {profile.slo_ms:g} ms, the spec asks {slo_ms:g} ms", "re-profile at the spec's SLO")],
            str(file),
        )
    return profile


def save_profile(profile: Profile, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write ``profile`` as YAML (or JSON when the suffix is .json), atomically.

    The text goes to a temporary file in the same directory that replaces ``path`` only once it is
    complete, so a failure (disk full, interrupt) leaves the previous file, or none, never half of one.
    ``extra``: more top-level sections written beside the profile (e.g. the serving configuration).
    """
    file = Path(path)
    data = {**profile.to_dict(), **(extra or {})}
    if file.suffix.lower() == ".json":
        text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    except OSError as exc:
        raise _write_error(file, exc) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(file)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(file, exc) from None
        raise


#: errno values that mean "this path cannot be written" (the user's to fix), not "the machine failed"
_PATH_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ENOENT, errno.EROFS, errno.ENAMETOOLONG, errno.EEXIST}


def _write_error(file: Path, exc: OSError) -> InfAdapterError:
    reason = exc.strerror or str(exc)
    if exc.errno in _PATH_ERRNOS:
        return InvalidInput([FieldError(str(file), f"cannot write the profile: {reason}", "give a writable file path (--out)")], "output")
    return ApplyFailed(f"{file}: cannot write the profile: {reason} (hint: free disk space or pick another path)")
