"""The serving-instance model: an M/D/c FIFO queue calibrated to reproduce the capacity profile.

An instance of variant ``m`` on ``n`` cores is ``c = round(n)`` parallel workers (TF-Serving with
``num_batch_threads = n``, ``intra_op = 1``: one request per thread) serving FIFO with a fixed service
time ``D``. ``D`` is calibrated so that with Poisson arrivals at the profiled capacity ``th_m(n)`` the
SLO percentile of the latency (queueing + service) equals the SLO: at the capacity the SLO just holds,
above it does not. A queue cap drops requests that would wait longer than ``queue_factor × th_m(n)``
requests' worth of work (TF-Serving's ``max_enqueued_batches = 1.25·th``, as the paper set it).
An instance with GPUs is calibrated the same way to the profile's capacity *with those GPUs* (its
``c = round(n)`` host cores feeding it): each instance is simulated at its own measured capacity.

Simulation is exact and vectorised. With equal service times FIFO starts are sorted and the ``k``-th
request takes the worker freed by request ``k - c``: ``start_k = max(a_k, start_{k-c} + D)``, which splits
into ``c`` interleaved single-server Lindley recursions solved with ``np.maximum.accumulate``. Only a
stretch that overflows the queue cap (drops change who is served) falls back to a plain loop.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from infadapter.cache import cache_root
from infadapter.profiles import CEILING_MARGIN, Profile, ProfilePoint
from infadapter.sim.spread import SPREAD_SAMPLES, SPREAD_SEED, Spread, fit_server

FloatArray = npt.NDArray[np.float64]

QUEUE_FACTOR = 1.25
CALIBRATION_SAMPLES = 100_000
CALIBRATION_SEED = 20230508


@dataclass(frozen=True)
class ServiceTime:
    """One instance size: ``servers`` workers of ``service_s`` each; drops beyond ``queue_cap_s`` of waiting."""

    servers: int
    service_s: float
    capacity_rps: float
    queue_cap_s: float
    spread: Spread | None = None  # a delay per request beyond the queue (:mod:`infadapter.sim.spread`)

    @property
    def saturation_rps(self) -> float:
        return self.servers / self.service_s

    def at_speed(self, speed: float) -> ServiceTime:
        """The same workers and queue given ``speed`` of their CPU: each request takes ``1 / speed`` as long
        (``speed`` above 1: the host runs faster than its average, which the profile measured)."""
        if speed == 1.0:
            return self
        spread = None if self.spread is None else self.spread.slower(speed)
        return ServiceTime(self.servers, self.service_s / speed, self.capacity_rps * speed, self.queue_cap_s, spread)


def fifo_starts(arrivals_s: FloatArray, servers: int, service_s: float, free_at_s: FloatArray) -> FloatArray:
    """Start times of FIFO service for sorted ``arrivals_s`` (no drops); ``free_at_s``: sorted worker free times."""
    n = arrivals_s.size
    if n == 0:
        return np.empty(0)
    rows = -(-n // servers)
    padded = np.full(rows * servers, np.inf)
    padded[:n] = arrivals_s
    table = padded.reshape(rows, servers)
    shift = (np.arange(rows, dtype=np.float64) * service_s)[:, None]
    best = np.maximum(np.maximum.accumulate(table - shift, axis=0), free_at_s[None, :])
    starts: FloatArray = (best + shift).reshape(-1)[:n]
    return starts


def serve(
    arrivals_s: FloatArray, size: ServiceTime, free_at_s: FloatArray | None = None, rng: np.random.Generator | None = None
) -> tuple[FloatArray, FloatArray]:
    """(latency_s per request, NaN = dropped; the workers' free times afterwards, sorted): :func:`queue` and,
    for a size with a :class:`Spread`, its delay, drawn from ``rng`` (a fixed seed if none)."""
    latency, free = queue(arrivals_s, size, free_at_s)
    return latency + spread_delays(size, arrivals_s.size, rng), free


def spread_delays(size: ServiceTime, n: int, rng: np.random.Generator | None) -> FloatArray:
    """The delays beyond the queue of ``n`` requests served at ``size`` (zeros without a spread)."""
    if size.spread is None:
        return np.zeros(n)
    return size.spread.draw(rng if rng is not None else np.random.default_rng(SPREAD_SEED), n)


def queue(arrivals_s: FloatArray, size: ServiceTime, free_at_s: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
    """(wait + service per request, NaN = dropped; the workers' free times afterwards, sorted).

    ``free_at_s`` may hold another number of workers than ``size`` (a resize): workers it adds are free from the
    first arrival (a caller that knows when the resize happened resizes them first, :func:`resize_free`).

    Stretches without a drop are solved in one vectorised step (:func:`fifo_starts`); from a request that
    would wait longer than the queue cap on, :func:`_overloaded` admits one request at a time and skips
    each run of dropped ones with a binary search, until a request is served at once. An overloaded
    instance therefore costs per *served* request, not per arrival.
    """
    c, d = size.servers, size.service_s
    if not math.isfinite(d):
        return np.full(arrivals_s.size, np.nan), np.zeros(c)
    free = np.zeros(c) if free_at_s is None else resize_free(free_at_s, c, float(arrivals_s[0]) if arrivals_s.size else 0.0)
    n = arrivals_s.size
    latency = np.empty(n)
    ring = free  # the workers' free times in the order the next requests take them (request i: ring[i % c])
    pos, chunk = 0, MIN_CHUNK  # doubling: a first drop early in a long piece costs little, no drop costs 2x at most
    while pos < n:
        block = arrivals_s[pos : pos + chunk]
        starts = fifo_starts(block, c, d, ring)
        over = np.flatnonzero(starts - block > size.queue_cap_s)
        served = block.size if over.size == 0 else int(over[0])
        latency[pos : pos + served] = starts[:served] + d - block[:served]
        ring = np.concatenate((ring, starts[:served] + d))[-c:]
        pos += served
        if over.size:
            pos, ring = _overloaded(arrivals_s, latency, pos, ring, size)
            chunk = MIN_CHUNK
        else:
            chunk = min(2 * chunk, n)  # a stretch without drops: the next one may be longer
    return latency, np.sort(ring)


#: requests solved at once at first and after an overload ends (doubling while no request is dropped)
MIN_CHUNK = 1024


def _overloaded(arrivals_s: FloatArray, latency: FloatArray, pos: int, ring_at: FloatArray, size: ServiceTime) -> tuple[int, FloatArray]:
    """Serve from ``pos`` while requests queue: admit one at a time, drop each run of requests that would
    wait more than the cap in one step; return at the first request served without waiting (or the end).

    The next admitted request takes worker ``ring[head]``; a request at ``t`` is dropped when
    ``ring[head] - t > cap``, which only grows false as ``t`` grows, so a binary search finds the run's end.
    """
    c, d, cap = size.servers, size.service_s, size.queue_cap_s
    ring = ring_at.tolist()
    head, n = 0, arrivals_s.size
    while pos < n:
        free = ring[head]
        t = float(arrivals_s[pos])
        if free - t > cap:
            end = pos + int(arrivals_s[pos:].searchsorted(free - cap, side="left"))
            while end < n and free - float(arrivals_s[end]) > cap:  # the search's rounding, made exact
                end += 1
            while end > pos + 1 and not free - float(arrivals_s[end - 1]) > cap:
                end -= 1
            latency[pos:end] = math.nan
            pos = end
            if pos == n:
                break
            t = float(arrivals_s[pos])
        start = t if t > free else free
        ring[head] = start + d
        head = (head + 1) % c
        latency[pos] = start + d - t
        pos += 1
        if start == t:
            break
    return pos, np.asarray(ring[head:] + ring[:head])


def resize_free(free_at_s: FloatArray, servers: int, now_s: float) -> FloatArray:
    """Worker free times after a resize to ``servers`` workers from ``now_s``: added ones are free then, removed
    ones are those that would be free first."""
    free = np.sort(np.asarray(free_at_s, dtype=np.float64))
    if free.size >= servers:
        return free[free.size - servers :]
    return np.sort(np.concatenate((np.full(servers - free.size, now_s), free)))


def queue_sojourns(rate_rps: float, servers: int, service_s: float, samples: int = SPREAD_SAMPLES, seed: int = SPREAD_SEED) -> FloatArray:
    """Wait + service of Poisson arrivals at ``rate_rps`` on ``servers`` FIFO workers (the first tenth, the
    queue's warm-up, left out)."""
    return _settled_sojourns(np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate_rps, samples)), servers, service_s)


def _settled_sojourns(arrivals_s: FloatArray, servers: int, service_s: float) -> FloatArray:
    """Wait + service of ``arrivals_s`` on idle FIFO workers, without the first tenth (the queue's warm-up)."""
    starts = fifo_starts(arrivals_s, servers, service_s, np.zeros(servers))
    sojourn: FloatArray = (starts + service_s - arrivals_s)[arrivals_s.size // 10 :]
    return sojourn


def latency_quantile(capacity_rps: float, servers: int, service_s: float, percentile: float, arrivals_s: FloatArray) -> float:
    return float(np.percentile(_settled_sojourns(arrivals_s / capacity_rps, servers, service_s), percentile))


def calibrate_service_s(
    capacity_rps: float, servers: int, slo_s: float, percentile: float = 99.0, *, samples: int = CALIBRATION_SAMPLES, seed: int = CALIBRATION_SEED
) -> float:
    """The service time at which Poisson arrivals at ``capacity_rps`` meet the SLO percentile exactly.

    The percentile is monotone in the service time (common random numbers), so a bracketing root
    finder on ``log(p / slo)`` (Illinois regula falsi) converges in about ten evaluations.
    """
    unit = np.cumsum(np.random.default_rng(seed).exponential(1.0, samples))  # a rate-1 Poisson process

    def gap(service_s: float) -> float:
        return math.log(latency_quantile(capacity_rps, servers, service_s, percentile, unit) / slo_s)

    low, high = 1e-3 * slo_s, min(slo_s, servers / capacity_rps * (1.0 - 1e-6))
    f_low, f_high = gap(low), gap(high)
    if f_low >= 0:
        return low
    if f_high <= 0:
        return high
    side = 0
    for _ in range(60):
        mid = (low * f_high - high * f_low) / (f_high - f_low)
        f_mid = gap(mid)
        if abs(f_mid) < 1e-4 or high - low < 1e-7 * high:
            return mid
        if f_mid > 0:
            high, f_high = mid, f_mid
            if side == 1:
                f_low /= 2.0
            side = 1
        else:
            low, f_low = mid, f_mid
            if side == -1:
                f_high /= 2.0
            side = -1
    return low


class ServiceModel:
    """Per (variant, cores, GPUs): the calibrated :class:`ServiceTime` (cached).

    A size measured with its median, tail and saturation (a point of ``infadapter profile``) gets the
    three-figure model of :mod:`infadapter.sim.spread`; any other, the one-figure M/D/c fit. ``seed``: the
    spread's draws (one stream per instance, so a policy's latencies do not depend on which ran before it).
    """

    def __init__(
        self, profile: Profile, slo_ms: float | None = None, percentile: float | None = None, queue_factor: float = QUEUE_FACTOR, seed: int = 0
    ) -> None:
        self.profile = profile
        self.slo_s = (slo_ms if slo_ms is not None else profile.slo_ms) / 1000.0
        self.percentile = float(percentile if percentile is not None else profile.percentile)
        self.queue_factor = float(queue_factor)
        self.seed = seed
        self._sizes: dict[tuple[str, float, int], ServiceTime] = {}

    def size(self, variant: str, cores: float, gpus: int = 0) -> ServiceTime:
        key = (variant, round(cores, 6), gpus)
        found = self._sizes.get(key)
        if found is None:
            found = _calibrated(self.profile.capacity_rps(variant, cores, 1, gpus), max(1, round(cores)), self.slo_s, self.percentile, self.queue_factor)
            point = self.profile.point_at(variant, cores, gpus)
            if point is not None:
                found = _with_spread(found, point, self.percentile)
            self._sizes[key] = found
        return found

    def rng_for(self, instance: int) -> np.random.Generator:
        """The spread's draws for one instance."""
        return np.random.default_rng((self.seed, instance))


def is_ceiling(point: ProfilePoint) -> bool:
    """Whether ``point``'s saturation is the server's throughput ceiling, not a lower bound: a step offered
    more than it answered (``maxOfferedRps``, which ``infadapter profile`` records), or, where the offered
    load is not known, it lies past the capacity. The second rule alone took a ceiling within 2 % of the
    capacity for a lower bound: ResNet-50 at 1.5 cores answered 93.5 rps of the 183 offered, and the
    simulated server, fitted to the tail instead, served 108.8 through a burst's backlog."""
    saturation = point.saturation_rps or 0.0
    if point.max_offered_rps is not None:  # (a saturation below the capacity contradicts it: not a ceiling)
        return point.max_offered_rps > saturation * (1.0 + CEILING_MARGIN) and saturation >= point.capacity_rps
    return saturation > point.capacity_rps * (1.0 + CEILING_MARGIN)


def _with_spread(base: ServiceTime, point: ProfilePoint, percentile: float) -> ServiceTime:
    """``base`` with the service time of ``point``'s saturation and the spread of its median and tail
    (``base`` itself when the point lacks one of the three or leaves no room for a spread)."""
    p50, tail, saturation = point.p50_ms, point.p99_ms, point.saturation_rps
    if p50 is None or tail is None or not saturation or point.capacity_rps <= 0 or not math.isfinite(base.service_s):
        return base
    ceiling = is_ceiling(point)
    if ceiling:
        # measured in overload, the saturation is the throughput the server really has: the simulated
        # one must not exceed it (a faster queue hid a burst's backlog: 68 rps simulated against 47.7 measured)
        service_s = base.servers / saturation
    else:
        # saturation not measured in overload (a lower bound): the one-figure fit to the measured tail
        # is the longest service time that tail allows
        service_s = min(base.servers / saturation, _calibrated(point.capacity_rps, base.servers, tail / 1000.0, percentile, QUEUE_FACTOR).service_s)
    key = f"spread|{int(ceiling)}|{point.capacity_rps}|{base.servers}|{service_s:.9g}|{p50}|{tail}|{percentile}|{SPREAD_SAMPLES}|{SPREAD_SEED}"
    parts = ("service", "mu", "sigma")
    cached = [_disk_get(f"{key}|{part}") for part in parts]
    known = [k for k in cached if k is not None]
    if len(known) < len(parts):
        sojourns = functools.partial(queue_sojourns, point.capacity_rps, base.servers)
        fitted = fit_server(sojourns, service_s, p50 / 1000.0, tail / 1000.0, percentile, shorten=not ceiling)
        known = [service_s if ceiling else math.nan, math.nan, math.nan] if fitted is None else [fitted[0], fitted[1].mu, fitted[1].sigma]
        for part, value in zip(parts, known, strict=True):
            _disk_put(f"{key}|{part}", value)
    service_s, mu, sigma = known
    if math.isnan(service_s):
        return base
    spread = None if math.isnan(mu) else Spread(mu, sigma)  # none: the ceiling's queue alone reaches the median
    return ServiceTime(base.servers, service_s, base.capacity_rps, base.queue_cap_s * service_s / base.service_s, spread)


_CALIBRATED: dict[tuple[float, int, float, float, float], ServiceTime] = {}
_DISK: dict[str, dict[str, float]] = {}


def _cache_file() -> Path:
    return cache_root() / "sim-calibration.json"


def _disk_get(key: str) -> float | None:
    """Calibrations are deterministic (fixed seed) and cost ~50 ms each: keep them across runs."""
    path = str(_cache_file())
    if path not in _DISK:
        try:
            _DISK[path] = {str(k): float(v) for k, v in json.loads(Path(path).read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, AttributeError):
            _DISK[path] = {}
    return _DISK[path].get(key)


def _disk_put(key: str, value: float) -> None:
    path = _cache_file()
    known = _DISK.setdefault(str(path), {})
    known[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs time


def _calibrated(capacity_rps: float, servers: int, slo_s: float, percentile: float, queue_factor: float) -> ServiceTime:
    key = (round(capacity_rps, 6), servers, slo_s, percentile, queue_factor)
    found = _CALIBRATED.get(key)
    if found is None:
        if capacity_rps <= 0:
            found = ServiceTime(servers, math.inf, 0.0, 0.0)
        else:
            disk_key = f"{key[0]}|{servers}|{slo_s}|{percentile}|{CALIBRATION_SAMPLES}|{CALIBRATION_SEED}"
            service_s = _disk_get(disk_key)
            if service_s is None:
                service_s = calibrate_service_s(capacity_rps, servers, slo_s, percentile)
                _disk_put(disk_key, service_s)
            found = ServiceTime(servers, service_s, capacity_rps, queue_factor * capacity_rps * service_s / servers)
        _CALIBRATED[key] = found
    return found
