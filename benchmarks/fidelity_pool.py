"""Several fidelity batches taken together: the runs of every ``benchmarks/fidelity.py`` output given, pooled.

One batch of three runs measured the violations with a standard error of up to 2.1 points on this machine
(``measured_standard_error``), so a ±0.5-point comparison is often not decided by one batch: ``batch_by_batch``
sets the targets met batch by batch beside the number a simulator exact about each batch's mean would meet. Each batch runs its
own scenario (the profile, hence the trace's scale, is measured anew), and each run is compared with its own
simulation; pooled, every run counts once. Prints one JSON object::

    {"batches": [...], "batch_by_batch": {...}, "runs": N, "simulated": {...}, "measured": {...}, "errors": {...},
     "measured_standard_error": {...}, "targets": {...}, "simulated_as_decided": {...}, "errors_as_decided": {...}, ...}

    .venv/bin/python benchmarks/fidelity_pool.py OUT.json [OUT.json ...]   # outputs of fidelity.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from fidelity_host import slow_host_of
from fidelity_output import TARGETS, beside, clean, errors_of, exact_chance, mean_of, standard_error, targets_met


def pooled(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The runs of every output pooled: means over all runs, their errors and the measured mean's standard error."""
    runs = [run for out in outputs.values() for run in out["runs"]]
    simulated, measured = mean_of([r["simulated"] for r in runs]), mean_of([r["measured"] for r in runs])
    errors = errors_of(simulated, measured)
    return {
        "batches": [{"file": name, "runs": len(out["runs"]), "errors": out["errors"], "targets": targets_met(out["errors"])} for name, out in outputs.items()],
        "batch_by_batch": batch_by_batch(outputs),
        "runs": len(runs),
        "simulated": simulated,
        "measured": measured,
        "errors": errors,
        "measured_standard_error": standard_error([r["measured"] for r in runs]),
        "targets": targets_met(errors),
        "measured_slow_host": slow_host_of(runs),
        **beside(runs, measured),  # the simulations beside the headline that every pooled run has, with their errors
    }


def batch_by_batch(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each target met batch by batch, beside how many batches a simulator predicting each batch's mean of many runs
    exactly would meet on average (the sum of :func:`fidelity_output.exact_chance` over the batches); and the
    violations' root-mean-square error over the batches beside the floor that same simulator would show there,
    the root mean square of the batches' own standard errors."""
    rows = [(out["errors"], out.get("measured_standard_error") or {}) for out in outputs.values()]
    met, chances = [targets_met(e) for e, _ in rows], [exact_chance(se) for _, se in rows]
    floor = [se.get("violations_points") for _, se in rows]
    known = [x for x in floor if x is not None and not math.isnan(x)]
    return {
        "batches": len(rows),
        "met": {name: sum(m[name] for m in met) for _, name, _ in TARGETS},
        "met_by_an_exact_simulator": {name: round(sum(c[name] for c in chances if not math.isnan(c[name])), 1) for _, name, _ in TARGETS},
        "violations_rms_points": _rms([e["violations_points"] for e, _ in rows]),
        "violations_floor_rms_points": _rms(known) if len(known) == len(rows) else math.nan,
    }


def _rms(values: list[float]) -> float:
    return round(math.sqrt(sum(x * x for x in values) / len(values)), 3)


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: fidelity_pool.py OUT.json [OUT.json ...] (outputs of benchmarks/fidelity.py)", file=sys.stderr)
        raise SystemExit(2)
    outputs: dict[str, dict[str, Any]] = {}
    for arg in sys.argv[1:]:
        try:
            out = json.loads(Path(arg).read_text(encoding="utf-8"))
            if not isinstance(out, dict) or "errors" not in out or not isinstance(out.get("runs"), list) or not out["runs"]:
                raise ValueError("no runs")
            if any(not isinstance(r, dict) or "simulated" not in r or "measured" not in r for r in out["runs"]):
                raise ValueError("no runs with both a simulated and a measured figure")
        except (OSError, ValueError) as exc:
            print(f"error: {arg}: not an output of benchmarks/fidelity.py ({exc})", file=sys.stderr)
            raise SystemExit(2) from None
        outputs[arg] = out
    print(json.dumps(clean(pooled(outputs)), allow_nan=False))


if __name__ == "__main__":
    main()
