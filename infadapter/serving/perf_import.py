"""Capacities measured by Triton's own tools: perf_analyzer's CSV (``-f``) and Model Analyzer's results CSV.

Both files hold one row per load level (a concurrency or a request rate) with the throughput reached and
the latency percentiles. The capacity at the SLO is the highest throughput of a level whose latency at
the SLO percentile is within the SLO (as the local profiler's search defines it); the highest throughput
of any level is the saturation. The columns read (matched by name, in any order, others ignored):

* **perf_analyzer** (``perf_analyzer -f out.csv``): ``Inferences/Second``; ``p50|p90|p95|p99 latency``
  in **microseconds**; the first column, ``Concurrency`` or ``Request Rate``, names the load level.
* **Model Analyzer** (``results/metrics-model-inference.csv``): ``Model``, ``Throughput (infer/sec)``,
  ``p99 Latency (ms)`` (or ``p95``/``p90``/``p50 Latency (ms)`` for another percentile) in
  **milliseconds**; optional ``Batch`` (rows of client batch > 1 are skipped: a request of the service is
  one inference), ``Model Config Path`` (several configurations: the one with the highest capacity, or
  ``config``), ``Instance Group``, ``Max Batch Size``, ``Concurrency``/``Request Rate``.

Every bad cell is an :class:`~infadapter.errors.InvalidInput` naming ``row N.COLUMN`` (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infadapter.errors import FieldError, InvalidInput

ImportFormat = Literal["perf-analyzer", "model-analyzer"]
FORMATS: tuple[ImportFormat, ...] = ("perf-analyzer", "model-analyzer")

PA_THROUGHPUT = "Inferences/Second"
MA_THROUGHPUT = "Throughput (infer/sec)"
LOAD_COLUMNS = ("Concurrency", "Request Rate")


@dataclass(frozen=True)
class LoadLevel:
    """One measured load level: the throughput reached and the latency at the SLO percentile."""

    load: float  # concurrency or request rate, as the tool drove it (nan when not in the file)
    throughput_rps: float
    latency_ms: float
    row: int


@dataclass(frozen=True)
class Measured:
    """What a file says about one variant on one size: the capacity at the SLO and how it was measured."""

    capacity_rps: float
    latency_ms: float | None  # at the capacity, at the SLO percentile
    saturation_rps: float
    levels: int
    serving: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def capacity_at_slo(levels: Sequence[LoadLevel], slo_ms: float) -> tuple[float, float | None, float]:
    """(capacity, its latency, saturation): the best throughput within the SLO, and the best of all."""
    passing = [lv for lv in levels if lv.latency_ms <= slo_ms]
    best = max(passing, key=lambda lv: lv.throughput_rps, default=None)
    saturation = max((lv.throughput_rps for lv in levels), default=0.0)
    if best is None:
        return 0.0, None, saturation
    return best.throughput_rps, best.latency_ms, saturation


def _rows(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    hint = f"give the CSV {what} wrote"
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except OSError as exc:
        raise InvalidInput([FieldError("FILE", f"cannot read {path}: {exc.strerror or exc}", "check the path")], str(path)) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput([FieldError("FILE", f"{path} is not UTF-8 text (byte {exc.start})", hint)], str(path)) from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v if isinstance(v, str) else "") for k, v in r.items()} for r in reader]
    except csv.Error as exc:
        raise InvalidInput([FieldError("FILE", f"{path} is not a readable CSV: {exc}", hint)], str(path)) from None
    if not header or not rows:
        raise InvalidInput([FieldError("FILE", f"{path} holds no measurement rows", hint)], str(path))
    return header, rows


def _require(header: Sequence[str], needed: Sequence[str], path: Path, hint: str) -> None:
    missing = [c for c in needed if c not in header]
    if missing:
        have = ", ".join(header)[:300]
        raise InvalidInput([FieldError("FILE", f"no column {', '.join(repr(c) for c in missing)} (it has {have})", hint)], str(path))


def _cell(row: Mapping[str, str], column: str, line: int, errors: list[FieldError]) -> float:
    raw = (row.get(column) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        errors.append(FieldError(f"row {line}.{column}", f"expected a number, got {raw!r}" if raw else "empty", "fix or drop the row"))
        return math.nan
    if not math.isfinite(value) or value < 0:
        errors.append(FieldError(f"row {line}.{column}", f"expected a finite number >= 0, got {raw!r}", "fix or drop the row"))
        return math.nan
    return value


def _levels(rows: Sequence[tuple[int, Mapping[str, str]]], throughput: str, latency: str, to_ms: float, load: str | None, path: Path) -> list[LoadLevel]:
    errors: list[FieldError] = []
    levels = []
    for line, row in rows:
        rps = _cell(row, throughput, line, errors)
        lat = _cell(row, latency, line, errors)
        level = _cell(row, load, line, errors) if load else math.nan
        levels.append(LoadLevel(level, rps, lat * to_ms, line))
    if errors:
        raise InvalidInput(errors, str(path))
    return levels


def _closed_loop_note(load: str | None) -> tuple[str, ...]:
    if load != "Concurrency":
        return ()
    return (
        "closed-loop levels (Concurrency): their latencies lack the queueing of open-loop arrivals, so the "
        "capacity may be optimistic (hint: measure with --request-rate-range and --request-distribution poisson)",
    )


def read_perf_analyzer(path: Path, slo_ms: float, percentile: float) -> Measured:
    """The capacity at ``slo_ms`` (``percentile``) of a perf_analyzer ``-f`` CSV (latencies in microseconds)."""
    header, rows = _rows(path, "perf_analyzer -f")
    latency = f"p{percentile:g} latency"
    _require(header, [PA_THROUGHPUT], path, "give the CSV perf_analyzer -f wrote")
    if latency not in header:
        known = [h for h in header if h.startswith("p") and h.endswith(" latency")]
        raise InvalidInput(
            [
                FieldError(
                    "--percentile",
                    f"the CSV has no {latency!r} column (it has {', '.join(known) or 'none'})",
                    "run perf_analyzer with --percentile, or import at one of those percentiles",
                )
            ],
            str(path),
        )
    load = next((c for c in LOAD_COLUMNS if c in header), None)
    levels = _levels(list(enumerate(rows, start=2)), PA_THROUGHPUT, latency, 1e-3, load, path)
    capacity, at_ms, saturation = capacity_at_slo(levels, slo_ms)
    serving = {"tool": "perf_analyzer", "file": str(path), "loadLevels": load or "unknown"}
    return Measured(capacity, at_ms, saturation, len(levels), serving, _closed_loop_note(load))


def read_model_analyzer(path: Path, slo_ms: float, percentile: float, *, model: str | None = None, config: str | None = None) -> Measured:
    """The capacity at ``slo_ms`` of one model in a Model Analyzer inference CSV (latencies in ms).

    ``model``: the ``Model`` to read (needed when the file holds several); ``config``: one ``Model Config
    Path`` (default: the configuration with the highest capacity, recorded as the serving configuration).
    """
    header, rows = _rows(path, "Model Analyzer")
    latency = f"p{percentile:g} Latency (ms)"
    _require(header, [MA_THROUGHPUT], path, "give results/metrics-model-inference.csv of model-analyzer profile")
    if latency not in header:
        known = [h for h in header if h.endswith(" Latency (ms)")]
        raise InvalidInput(
            [
                FieldError(
                    "--percentile",
                    f"the CSV has no {latency!r} column (it has {', '.join(known) or 'none'})",
                    "add perf_latency_p<N> to inference_output_fields, or import at one of those",
                )
            ],
            str(path),
        )
    numbered = list(enumerate(rows, start=2))
    numbered = _one_model(numbered, model, "Model" in header, path)
    notes: list[str] = []
    if "Batch" in header:
        kept = [(n, r) for n, r in numbered if (r.get("Batch") or "1").strip() in ("1", "1.0")]
        if len(kept) < len(numbered):
            notes.append(f"{len(numbered) - len(kept)} rows with client batch > 1 skipped (a request of the service is one inference)")
        numbered = kept
    groups = _by_config(numbered, config, "Model Config Path" in header, path)
    load = next((c for c in LOAD_COLUMNS if c in header), None)
    results = []
    for name, group in groups.items():
        levels = _levels(group, MA_THROUGHPUT, latency, 1.0, load, path)
        results.append((capacity_at_slo(levels, slo_ms), name, group, len(levels)))
    (capacity, at_ms, saturation), name, group, count = max(results, key=lambda r: (r[0][0], r[0][2]))
    first = group[0][1]
    serving = {
        "tool": "model-analyzer",
        "file": str(path),
        "model": (first.get("Model") or "").strip() or None,
        "modelConfig": name or None,
        "instanceGroup": (first.get("Instance Group") or "").strip() or None,
        "maxBatchSize": _whole(first.get("Max Batch Size")),
        "loadLevels": load or "unknown",
    }
    if len(groups) > 1 and config is None:
        notes.append(f"{len(groups)} model configurations measured: {name} has the highest capacity at the SLO (hint: --config NAME)")
    return Measured(capacity, at_ms, saturation, count, {k: v for k, v in serving.items() if v is not None}, (*notes, *_closed_loop_note(load)))


def _whole(text: str | None) -> int | str | None:
    """A whole number as a number (``"16"`` -> 16), other text as it is, empty as None."""
    value = (text or "").strip()
    return int(value) if value.isdigit() else value or None


def _one_model(rows: list[tuple[int, dict[str, str]]], model: str | None, has_column: bool, path: Path) -> list[tuple[int, dict[str, str]]]:
    if not has_column:
        return rows
    names = sorted({(r.get("Model") or "").strip() for _, r in rows})
    if model is None and len(names) == 1:
        return rows
    if model is None or model not in names:
        what = "several models" if model is None else f"no model {model!r}"
        raise InvalidInput([FieldError("--model", f"the CSV holds {what} ({', '.join(names)[:300]})", "pick one with --model NAME")], str(path))
    return [(n, r) for n, r in rows if (r.get("Model") or "").strip() == model]


def _by_config(rows: list[tuple[int, dict[str, str]]], config: str | None, has_column: bool, path: Path) -> dict[str, list[tuple[int, dict[str, str]]]]:
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for n, r in rows:
        groups.setdefault((r.get("Model Config Path") or "").strip() if has_column else "", []).append((n, r))
    if config is not None:
        if config not in groups:
            raise InvalidInput(
                [
                    FieldError(
                        "--config",
                        f"no model configuration {config!r} (the CSV has {', '.join(sorted(groups))[:300]})",
                        "pick one of those, or drop --config for the best",
                    )
                ],
                str(path),
            )
        groups = {config: groups[config]}
    if not groups:
        raise InvalidInput([FieldError("FILE", "no row left to import (all had client batch > 1)", "profile with batch size 1")], str(path))
    return groups


def read_measurements(fmt: ImportFormat, path: Path, slo_ms: float, percentile: float, *, model: str | None = None, config: str | None = None) -> Measured:
    """Dispatch on ``fmt`` (``perf-analyzer`` or ``model-analyzer``)."""
    if fmt == "perf-analyzer":
        return read_perf_analyzer(path, slo_ms, percentile)
    return read_model_analyzer(path, slo_ms, percentile, model=model, config=config)
