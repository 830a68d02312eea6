"""The host's speed while something runs: the CPU time one small inference takes, sampled in a process of its own.

This host's speed drifts over minutes (``docs/simulator.md``: a run at 0.96-1.01x its profile's), so a
profile measured a quarter of an hour before a run may describe faster or slower servers than the run had.
:class:`SpeedProbe` runs this file as a child process beside the profile and beside the runs: every
``--interval`` seconds it times one inference of a small model (the servers' own kind of work, ONNX Runtime
on one thread) by its thread's CPU time, which time spent waiting for a core does not count, so the servers'
own load beside it is not read as a slow host. It also reads the hypervisor's steal time. ``fidelity.py`` divides the profile's mean
CPU time per inference by a run's to get the run's *host speed* relative to the profile's.

Run as a script, it samples for ``--seconds`` and prints one JSON object on stdout: the samples, the mean CPU
milliseconds per inference, their coefficient of variation and the mean steal share (the model: ResNet-18
from the cache unless given; ``infadapter models build`` makes it). ``SpeedProbe`` runs it with ``--stream``:
one JSON array a sample, ``[unix time, CPU seconds, steal share of all cores since the last sample]``,
until stopped::

    .venv/bin/python benchmarks/speedprobe.py [--model MODEL.onnx] [--seconds 30] [--interval 0.5] [--stream]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.serving.models import default_models_dir  # noqa: E402

#: an inference of ResNet-18 at 112 px takes ~7 ms here: two a second take ~1.5 % of one core
INTERVAL_S = 0.5


def steal_ticks() -> tuple[int, int]:
    """(steal, all) jiffies of every core so far, from ``/proc/stat``'s first line."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    return fields[7], sum(fields)


def _samples(model: Path, interval_s: float) -> Iterator[tuple[float, float, float]]:
    """(Unix time, CPU seconds of one inference, steal share since the last sample), every ``interval_s``."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the inference runs on the calling thread: its CPU time is the work's
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in declared.shape]
    feed = {declared.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(3):  # warm: the first runs allocate
        session.run(None, feed)
    steal0, all0 = steal_ticks()
    while True:
        began = time.thread_time()
        session.run(None, feed)
        spent = time.thread_time() - began
        steal1, all1 = steal_ticks()
        share = (steal1 - steal0) / (all1 - all0) if all1 > all0 else 0.0
        steal0, all0 = steal1, all1
        yield round(time.time(), 3), round(spent, 7), round(share, 4)
        time.sleep(interval_s)


class SpeedProbe:
    """The probe as a child process, its samples collected by a thread; ``with SpeedProbe(model) as p: ...``."""

    def __init__(self, model: Path, interval_s: float = INTERVAL_S) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (unix time, CPU s per inference, steal share)
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--model", str(model), "--interval", str(interval_s), "--stream"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="speed-probe", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            t, cpu_s, steal = json.loads(line)
            self.samples.append((float(t), float(cpu_s), float(steal)))

    def window(self, start: float, end: float) -> dict[str, float]:
        """Over the samples taken from ``start`` to ``end`` (Unix times): how many, the mean CPU seconds per
        inference and the mean steal share; empty when none fell in it."""
        inside = [s for s in list(self.samples) if start <= s[0] <= end]
        if not inside:
            return {}
        return {
            "samples": len(inside),
            "cpu_ms": round(1000.0 * statistics.fmean(s[1] for s in inside), 4),
            "steal": round(statistics.fmean(s[2] for s in inside), 4),
        }

    def by_second(self, start: float, seconds: int, reference_cpu_ms: float) -> list[float]:
        """The host's speed relative to ``reference_cpu_ms`` (the profile's mean) in each of ``seconds`` seconds from
        ``start`` (a Unix time): :func:`speed_by_second` of the samples taken."""
        return speed_by_second(list(self.samples), start, seconds, reference_cpu_ms)

    def samples_within(self, start: float, seconds: float) -> list[list[float]]:
        """The samples taken from ``start`` (a Unix time) for ``seconds``, as ``[seconds since start, CPU ms]``."""
        return [[round(t - start, 3), round(1000.0 * cpu_s, 4)] for t, cpu_s, _ in list(self.samples) if 0.0 <= t - start <= seconds]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=5)

    def __enter__(self) -> SpeedProbe:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def probe_model(models: dict[str, Path]) -> Path:
    """The smallest of the service's model files: the quickest inference to time."""
    if not models:
        raise ValueError("speedprobe: no model file to time")
    return min(models.values(), key=lambda path: path.stat().st_size)


#: seconds of samples either side of a second that its speed is read from: one inference's CPU time swings by a
#: few percent from one sample to the next, a host's slow stretch lasts seconds
HALF_WINDOW_S = 2.0


def speed_by_second(samples: list[tuple[float, float, float]], start: float, seconds: int, reference_cpu_ms: float) -> list[float]:
    """Per second ``k`` of ``seconds`` from ``start``: ``reference_cpu_ms`` (a mean, as :meth:`SpeedProbe.window`
    gives) over the mean CPU time of the samples taken within :data:`HALF_WINDOW_S` of its middle (above 1: the
    host ran faster than the reference); the nearest known second's where none was taken, 1 everywhere when none
    was. A mean, not a median: the slow inferences are the host's too (on batch B, 2026-12-05, medians read the
    runs 1.5-2.6 % faster than their means, and the simulation on them was that much too fast)."""
    times = [s[0] for s in samples]
    cpu_ms = [1000.0 * s[1] for s in samples]
    out: list[float | None] = []
    for k in range(seconds):
        middle = start + k + 0.5
        inside = [c for t, c in zip(times, cpu_ms, strict=True) if abs(t - middle) <= HALF_WINDOW_S and c > 0]
        out.append(round(reference_cpu_ms / statistics.fmean(inside), 4) if inside and reference_cpu_ms > 0 else None)
    known = [k for k, v in enumerate(out) if v is not None]
    if not known:
        return [1.0] * seconds
    return [float(out[min(known, key=lambda j: abs(j - k))] or 1.0) for k in range(seconds)]  # (a known second is its own nearest)


def relative_speed(profile: dict[str, float], run: dict[str, float]) -> float:
    """The run's host speed relative to the profile's (above 1: the host ran faster), 1 when either is unknown."""
    if not profile.get("cpu_ms") or not run.get("cpu_ms"):
        return 1.0
    ratio = profile["cpu_ms"] / run["cpu_ms"]
    return round(ratio, 4) if math.isfinite(ratio) and ratio > 0 else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_models_dir() / "resnet18.onnx", help="an ONNX model with one float32 input")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to sample (without --stream)")
    parser.add_argument("--interval", type=float, default=INTERVAL_S, help="seconds between two inferences")
    parser.add_argument("--stream", action="store_true", help="print every sample as it is taken, until stopped")
    args = parser.parse_args()
    if not args.model.is_file():
        parser.error(f"--model: {args.model} is not a file (infadapter models build makes the demo's)")
    if not 0.01 <= args.interval <= 60:
        parser.error("--interval must be 0.01..60 seconds")
    if not args.interval <= args.seconds <= 3600:
        parser.error("--seconds must be from --interval to 3600")
    samples = _samples(args.model, args.interval)
    if args.stream:
        try:
            for sample in samples:
                print(json.dumps(list(sample)), flush=True)
        except (KeyboardInterrupt, BrokenPipeError):
            os._exit(0)  # stopped: the parent has what it read
    first = next(samples)  # after the model's warm-up
    taken = [first, *itertools.takewhile(lambda sample: sample[0] <= first[0] + args.seconds, samples)]
    cpu = [s[1] for s in taken]
    mean = statistics.fmean(cpu)
    summary = {"model": str(args.model), "samples": len(taken), "cpu_ms": round(1000.0 * mean, 4), "cv": round(statistics.pstdev(cpu) / mean, 4)}
    summary["steal"] = round(statistics.fmean(s[2] for s in taken), 4)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
