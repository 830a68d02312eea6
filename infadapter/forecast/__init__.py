"""Load forecasting (pure): history of per-second arrivals in, peak over the next window out.

``make_forecaster(name, **options)`` builds one of :data:`MODELS`; every model follows the
:class:`Forecaster` protocol (``fit`` / ``update`` / ``predict``). ``detect_burst`` tells the
planner to re-plan between ticks. ``backtest`` scores models on a trace. See ``docs/forecast.md``.
"""

from __future__ import annotations

from typing import Any

from infadapter.errors import FieldError, InvalidInput
from infadapter.forecast.base import BufferedForecaster, Forecaster, ForecastResult, HistoryBuffer
from infadapter.forecast.burst import BurstSignal, detect_burst

#: the model names ``make_forecaster`` knows
MODELS = ("ewma", "last", "lstm", "ets", "sarimax", "ours")

__all__ = [
    "MODELS",
    "BufferedForecaster",
    "BurstSignal",
    "ForecastResult",
    "Forecaster",
    "HistoryBuffer",
    "detect_burst",
    "make_forecaster",
]


def make_forecaster(name: str, **options: Any) -> Forecaster:
    """A new forecaster by name; ``options`` are the model's keyword arguments.

    Raises :class:`InvalidInput` for an unknown name or option; ``lstm`` raises
    :class:`~infadapter.errors.InfAdapterError` when torch is missing.
    """
    model: type[BufferedForecaster]
    if name == "ewma":
        from infadapter.forecast.simple import Ewma as model
    elif name == "last":
        from infadapter.forecast.simple import Last as model
    elif name == "lstm":
        from infadapter.forecast.lstm import Lstm as model
    elif name == "ets":
        from infadapter.forecast.stats import Ets as model
    elif name == "sarimax":
        from infadapter.forecast.stats import Sarimax as model
    elif name == "ours":
        from infadapter.forecast.ours import OursForecaster as model
    else:
        raise InvalidInput([FieldError("forecast.model", f"unknown forecaster {name!r}", f"one of: {', '.join(MODELS)}")], source="forecast options")
    try:
        forecaster: Forecaster = model(**options)
    except TypeError as exc:
        raise InvalidInput(
            [FieldError(f"forecast.{name}", f"bad option: {exc}", "see docs/forecast.md for each model's options")], source="forecast options"
        ) from None
    return forecaster
