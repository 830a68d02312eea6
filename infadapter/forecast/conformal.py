"""Weighted split-conformal quantiles, and a prior residual distribution that own residuals outweigh.

The calibration set of ``ours`` is its own recent log residuals (weighted by phase and surge state) plus,
while it has few of them, a **prior**: the residual distribution of the training data, given as a
quantile function (values at :data:`PRIOR_LEVELS`). The prior enters as :data:`PRIOR_SAMPLES`
equally spaced pseudo-samples of that quantile function carrying a total weight that fades as own
residuals accumulate, so that (a) a young service's own errors steer its calibration within minutes and
(b) a high level (the adaptive shift after a miss) reads the prior's quantile function between its
points instead of jumping to its largest value, as a 41-sample set would at any level above 40/42.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: the levels the prior's values are given at: 0.005, 0.025, 0.05 .. 0.975, 0.995
PRIOR_LEVELS: tuple[float, ...] = (0.005, *(round(0.025 * k, 3) for k in range(1, 40)), 0.995)
#: how many pseudo-samples stand for the prior (its quantile function at their mid-levels)
PRIOR_SAMPLES = 200


def conformal_quantile(residuals: FloatArray, q: float, weights: FloatArray | None = None, test_weight: float = 1.0) -> float:
    """Weighted split-conformal quantile: the smallest residual whose cumulative weight reaches
    ``q * (total + test_weight)`` (unweighted: the ``ceil((n+1) q)``-th smallest), clamped to the sample."""
    return quantile_of_sorted(*sort_calibration(residuals, weights), q, test_weight)


def sort_calibration(residuals: FloatArray, weights: FloatArray | None) -> tuple[FloatArray, FloatArray]:
    """(residuals in ascending order, their cumulative weights): sorted once per tick."""
    order = np.argsort(residuals, kind="stable")
    cumulative = np.cumsum(weights[order] if weights is not None else np.ones(order.size))
    return residuals[order], cumulative


def quantile_of_sorted(ordered: FloatArray, cumulative: FloatArray, q: float, test_weight: float) -> float:
    rank = int(np.searchsorted(cumulative, q * (cumulative[-1] + test_weight) - 1e-9))
    return float(ordered[min(rank, ordered.size - 1)])


def prior_samples(prior: FloatArray, levels: FloatArray | None = None) -> FloatArray:
    """:data:`PRIOR_SAMPLES` equally weighted samples of the quantile function given by ``prior``
    (values at ``levels``, :data:`PRIOR_LEVELS` by default; held flat beyond the outermost levels)."""
    at = np.asarray(PRIOR_LEVELS if levels is None else levels, dtype=np.float64)
    if at.size != prior.size:  # a fitted prior: evenly spaced levels of its own
        at = np.linspace(0.005, 0.995, prior.size)
    middle = (np.arange(PRIOR_SAMPLES) + 0.5) / PRIOR_SAMPLES
    samples: FloatArray = np.interp(middle, at, np.sort(prior))
    return samples


def recentred(prior: FloatArray, values: FloatArray, shrink: float = 3.0) -> FloatArray:
    """``prior`` moved towards the median of the own residuals ``values`` by ``n / (n + shrink)``.

    The median of a few residuals is already a robust estimate of where this service's errors sit (a
    smooth load's peaks are its mean, a Poisson load's peaks stand well above it: the training trace's
    typical ratio is right for neither), while their tail is not: the location is learnt in minutes, the
    shape of the tail only as the prior's weight fades.
    """
    if values.size == 0:
        return prior
    shift = (float(np.median(values)) - float(np.median(prior))) * values.size / (values.size + shrink)
    moved: FloatArray = prior + shift
    return moved


def with_prior(
    values: FloatArray, weights: FloatArray | None, prior: FloatArray, prior_weight: float, test_weight: float
) -> tuple[FloatArray, FloatArray | None, float]:
    """The calibration set ``values`` (own residuals) joined with ``prior`` pseudo-samples of total weight
    ``prior_weight`` in units of an average own residual; (values, weights, test weight)."""
    if prior_weight <= 0 or prior.size == 0:
        return values, weights, test_weight
    own = weights if weights is not None else np.ones(values.size)
    unit = float(own.mean()) if own.size else 1.0  # the prior's weight in units of an average own sample
    each = prior_weight * unit / prior.size
    joined = np.concatenate((own, np.full(prior.size, each)))
    # the prior is a distribution, not a sample: the test point's conformal weight (the finite-sample
    # correction) is that of the own residuals' share, or a young service would read the prior's far tail
    share = values.size / (values.size + prior_weight)
    return np.concatenate((values, prior)), joined, test_weight * share
