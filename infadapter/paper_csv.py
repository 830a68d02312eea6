"""The paper's capacity CSV (``capacity_result_Feb_21.csv``) as the project's profile mapping.

One row per variant ``ARCH`` x ``CPU`` x ``SLA``; the rows of one SLA are taken and ``ARCH`` ``n`` becomes
variant ``resnet{n}``. Every bad cell is reported as ``row N.COLUMN`` (rows numbered as a spreadsheet shows
them: the header is row 1). A row is all-or-nothing: a profile is built only when every row at the chosen
SLO is valid. The mapping goes through the same validation as a Profile YAML.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from infadapter.errors import FieldError, InvalidProfile
from infadapter.profile_fields import number_field, short_repr
from infadapter.yamlfile import read_text

Row = dict[str, str | None]

#: the columns a paper CSV must have (HARDWARE, REPLICA, p99_latency and saturation_tp are optional)
NEEDED = frozenset({"ARCH", "CPU", "SLA", "capacity"})


def csv_rows(path: Path) -> list[Row]:
    """The rows of ``path`` as mappings by header; InvalidProfile when it cannot be read as CSV."""
    try:
        text = read_text(path).removeprefix("\ufeff")  # spreadsheets save a BOM
        return [dict(r) for r in csv.DictReader(io.StringIO(text, newline=""))]
    except OSError as exc:
        raise InvalidProfile([FieldError("", f"cannot read {path}: {exc.strerror or exc}", "check the path")], str(path)) from None
    except UnicodeDecodeError as exc:
        raise InvalidProfile([FieldError("", f"{path} is not UTF-8 text (byte {exc.start})", "give the paper's CSV or a Profile YAML")], str(path)) from None
    except csv.Error as exc:
        raise InvalidProfile([FieldError("", f"{path} is not a readable CSV: {exc}", "give the paper's capacity_result CSV")], str(path)) from None


def _check_columns(rows: list[Row], path: Path) -> None:
    if not rows or not {k for k in rows[0] if k is not None} >= NEEDED:
        have = ", ".join(str(k) for k in rows[0] if k is not None)[:200] if rows else "no rows"
        error = FieldError("", f"CSV lacks columns {sorted(NEEDED)} (has {have})", "use the paper's capacity_result CSV or a Profile YAML")
        raise InvalidProfile([error], str(path))


def _slas(rows: list[Row], path: Path) -> list[float | None]:
    """Every row's SLA (all valid, or InvalidProfile naming each bad one)."""
    errors: list[FieldError] = []
    slas = [number_field(r.get("SLA"), f"row {i + 2}.SLA", errors, positive=True) for i, r in enumerate(rows)]
    if errors:
        raise InvalidProfile(errors, str(path))
    return slas


def _chosen_slo(known: list[float], slo_ms: float | None, path: Path) -> float:
    """``slo_ms`` when the CSV has it (750 ms, the paper's, or the smallest when not given)."""
    if slo_ms is None:
        return 750.0 if 750.0 in known else known[0]
    if float(slo_ms) not in known:
        have = ", ".join(f"{s:g}" for s in known)[:200]
        hint = "pick one of those SLOs with --slo-ms or in spec.slo.latencyMs"
        raise InvalidProfile([FieldError("sloMs", f"the CSV has no capacities at SLO {slo_ms:g} ms (it has {have})", hint)], str(path))
    return float(slo_ms)


def _point(r: Row, where: str, errors: list[FieldError]) -> tuple[str, dict[str, Any]] | None:
    """(ARCH, the profile point of one row), or None with the row's errors appended."""
    before = len(errors)
    arch = (r.get("ARCH") or "").strip()
    if not arch:
        errors.append(FieldError(f"{where}.ARCH", "empty", "write the ResNet depth, e.g. 50"))
    hardware = (r.get("HARDWARE") or "cpu").strip().lower()
    if hardware not in ("cpu", "gpu"):
        errors.append(FieldError(f"{where}.HARDWARE", f"expected cpu or gpu, got {short_repr(hardware)}", "write cpu or gpu"))
    replicas = number_field(r.get("REPLICA") or "1", f"{where}.REPLICA", errors, positive=True)
    if replicas is not None and replicas != int(replicas):
        errors.append(FieldError(f"{where}.REPLICA", f"expected a whole number, got {replicas:g}", "write 1, 2, …"))
    cpu = number_field(r.get("CPU"), f"{where}.CPU", errors, positive=True)
    capacity = number_field(r.get("capacity"), f"{where}.capacity", errors)
    p99 = number_field(r["p99_latency"], f"{where}.p99_latency", errors) if r.get("p99_latency") else None
    saturation = number_field(r["saturation_tp"], f"{where}.saturation_tp", errors) if r.get("saturation_tp") else None
    if len(errors) > before or replicas is None or cpu is None or capacity is None:
        return None
    # the paper measured whole deployments: a profile point is one replica's share
    point: dict[str, Any] = {"cpu": cpu, "capacityRps": capacity / replicas, "gpus": 1 if hardware == "gpu" else 0}
    if p99 is not None:
        point["p99Ms"] = p99
    if saturation is not None:
        point["saturationRps"] = saturation / replicas
    return arch, point


def paper_profile(path: Path, slo_ms: float | None, name_format: str) -> dict[str, Any]:
    """The rows of the paper's CSV at ``slo_ms`` as a Profile mapping; InvalidProfile names every bad cell."""
    rows = csv_rows(path)
    _check_columns(rows, path)
    slas = _slas(rows, path)
    slo = _chosen_slo(sorted({s for s in slas if s is not None}), slo_ms, path)
    errors: list[FieldError] = []
    variants: dict[str, list[dict[str, Any]]] = {}
    for i, (r, sla) in enumerate(zip(rows, slas, strict=True)):
        if sla != slo:
            continue
        found = _point(r, f"row {i + 2}", errors)
        if found is None:
            continue
        arch, point = found
        name = name_format.format(arch=arch)
        if any(p["cpu"] == point["cpu"] and p["gpus"] == point["gpus"] for p in variants.get(name, [])):
            hardware = "gpu" if point["gpus"] else "cpu"
            errors.append(
                FieldError(f"row {i + 2}", f"a second row for {name} at CPU={point['cpu']:g} ({hardware}), SLA={slo:g}", "keep one measurement per size")
            )
            continue
        variants.setdefault(name, []).append(point)
    if errors:
        raise InvalidProfile(errors, str(path))
    return {"kind": "Profile", "sloMs": slo, "percentile": 99.0, "source": str(path), "variants": variants}
