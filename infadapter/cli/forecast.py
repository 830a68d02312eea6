"""``infadapter forecast``: train the paper's LSTM and backtest the forecasters on a trace."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infadapter.cli._app import app
from infadapter.cli.progress import Bar, ProgressOption, progress, wanted
from infadapter.cli.trace import ColumnOption, FormatOption, IntervalOption, TimeUnitOption, trace_options
from infadapter.errors import FieldError, InvalidInput

if TYPE_CHECKING:
    from infadapter.traces import TraceOptions

forecast_app = typer.Typer(name="forecast", help="Train and backtest load forecasters.", no_args_is_help=True)
app.add_typer(forecast_app, name="forecast")

DEFAULT_MODELS = "ewma,lstm,ets,sarimax,ours"
#: the backtest's history window per tick (``backtest(window_s=600)``): the first scored tick is at least this late
BACKTEST_WINDOW_S = 600
_DAY_S = 86400


def _series(trace: Path, train_days: float, horizon_s: int, reading: TraceOptions | None = None) -> tuple[Any, int]:
    from infadapter.cli.trace import read_cli_trace

    errors: list[FieldError] = []
    if not (math.isfinite(train_days) and 0 < train_days <= 10_000):
        errors.append(FieldError("--train-days", f"{train_days:g} must be a number of days in (0, 10000]", "e.g. 14"))
    if horizon_s <= 0:
        errors.append(FieldError("--horizon-s", f"{horizon_s} must be > 0", "e.g. 60"))
    if errors:
        raise InvalidInput(errors, source="arguments")
    if not trace.is_file():
        raise InvalidInput([FieldError("--trace", f"{str(trace)!r} is not a file", "give the path of a per-second trace")], source="arguments")
    series = read_cli_trace(trace, reading or trace_options()).series(path=trace)
    train_s = round(train_days * _DAY_S)
    if train_s + 600 + horizon_s >= series.size:
        raise InvalidInput(
            [FieldError("--train-days", f"{train_days:g} days leave nothing to score in a {series.size / _DAY_S:.2f}-day trace", "use fewer training days")],
            source="arguments",
        )
    return series, train_s


@forecast_app.command("train")
def train(
    trace: Annotated[Path, typer.Option("--trace", help="per-second trace (.tbz2, counts, CSV, timestamps)")],
    out: Annotated[Path, typer.Option("--out", help="where to write the LSTM weights (torch file)")],
    train_days: Annotated[float, typer.Option("--train-days", help="train on the first N days")] = 14.0,
    epochs: Annotated[int, typer.Option("--epochs", help="training epochs (the paper: 30)")] = 30,
    trace_format: FormatOption = "auto",
    trace_column: ColumnOption = None,
    interval: IntervalOption = None,
    time_unit: TimeUnitOption = "auto",
) -> None:
    """Train the paper's LSTM (10 minute-peaks -> next minute's peak) and save its weights."""
    from infadapter.forecast import make_forecaster

    series, train_s = _series(trace, train_days, 60, trace_options(trace_format, trace_column, interval, time_unit))
    if out.is_dir():  # checked before hours of training, not after
        raise InvalidInput([FieldError("--out", f"{str(out)!r} is a directory", "give a file path, e.g. lstm.pt")], source="arguments")
    if epochs <= 0:
        raise InvalidInput([FieldError("--epochs", f"{epochs} must be > 0", "e.g. 30")], source="arguments")
    model: Any = make_forecaster("lstm", epochs=epochs)
    started = time.perf_counter()
    model.fit(series[:train_s])
    fit_s = time.perf_counter() - started
    model.save(out)
    typer.echo(
        json.dumps(
            {"weights": str(out), "fit_s": round(fit_s, 2), "train_s": train_s, "train_mse": round(model.train_loss or 0.0, 3), "scale_rps": model.scale_rps}
        )
    )


@forecast_app.command("evaluate")
def evaluate(
    trace: Annotated[Path, typer.Option("--trace", help="per-second trace (.tbz2, counts, CSV, timestamps)")],
    models: Annotated[str, typer.Option("--models", help="comma list of ewma,last,lstm,ets,sarimax,ours")] = DEFAULT_MODELS,
    train_days: Annotated[float, typer.Option("--train-days", help="train on the first N days, score the rest")] = 14.0,
    horizon_s: Annotated[int, typer.Option("--horizon-s", help="forecast the peak over the next N seconds")] = 60,
    quantile: Annotated[float, typer.Option("--quantile", help="the quantile scored (under_ratio, pinball)")] = 0.95,
    step_s: Annotated[int, typer.Option("--step-s", help="seconds between scored ticks")] = 60,
    lstm_weights: Annotated[Path | None, typer.Option("--lstm-weights", help="use these weights, no training")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    trace_format: FormatOption = "auto",
    trace_column: ColumnOption = None,
    interval: IntervalOption = None,
    time_unit: TimeUnitOption = "auto",
    show_progress: ProgressOption = None,
) -> None:
    """Backtest: fit each model on the first days, then forecast every window of the rest online."""
    from infadapter.forecast import MODELS, Forecaster, make_forecaster
    from infadapter.forecast.backtest import backtest

    names = [m.strip() for m in models.split(",") if m.strip()]
    errors = [FieldError("--models", f"unknown model {m!r}", f"one of {', '.join(MODELS)}") for m in names if m not in MODELS]
    if not names:
        errors.append(FieldError("--models", "no model given", f"e.g. {DEFAULT_MODELS}"))
    if not 0 < quantile < 1:
        errors.append(FieldError("--quantile", f"{quantile:g} is not in (0, 1)", "e.g. 0.95"))
    if step_s <= 0:
        errors.append(FieldError("--step-s", f"{step_s} must be > 0", "e.g. 60"))
    try:
        reading = trace_options(trace_format, trace_column, interval, time_unit)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors, source="arguments")
    series, train_s = _series(trace, train_days, horizon_s, reading)
    built: dict[str, Forecaster] = {}
    for name in names:
        options: dict[str, Any] = {"quantile": quantile} if name == "ours" else {}
        built[name] = make_forecaster(name, **options)
    if lstm_weights is not None and "lstm" in built:
        built["lstm"] = _PreTrained(make_forecaster("lstm", weights_path=lstm_weights))
    ticks = len(range(max(train_s, BACKTEST_WINDOW_S), series.size - horizon_s + 1, step_s))
    with progress(show_progress, len(built) * (ticks + 1), "forecast evaluate") as bar:
        counted: dict[str, Forecaster] = {name: _Counted(model, _Ticks(bar, ticks, list(built), name)) for name, model in built.items()}
        lines = None if as_json or wanted(show_progress) else lambda line: typer.echo(line, err=True)  # the bar shows them otherwise
        report = backtest(series, counted, train_s=train_s, timer=time.perf_counter, horizon_s=horizon_s, quantile=quantile, step_s=step_s, progress=lines)
    if as_json:
        typer.echo(json.dumps(report))
        return
    _table(report)


class _Ticks:
    """Progress of a backtest: one unit per model's fit and per scored tick."""

    def __init__(self, bar: Bar, ticks: int, names: list[str], name: str) -> None:
        self.bar, self.per_model, self.name = bar, ticks + 1, name
        self.base = names.index(name) * self.per_model
        self.done = 0

    def __call__(self, what: str) -> None:
        self.done += 1
        if what == "fit" or self.done % 16 == 0 or self.done == self.per_model:
            self.bar.update(self.base + self.done, f"{self.name}: {what} {self.done - 1}/{self.per_model - 1} ticks")


class _Counted:
    """A forecaster that reports each fit and tick to the progress bar (the backtest itself is not touched)."""

    def __init__(self, model: Any, tick: _Ticks) -> None:
        self._model = model
        self._tick = tick
        self.name = model.name

    def fit(self, history_rps: Any, *, start_s: float = 0.0) -> _Counted:
        self._model.fit(history_rps, start_s=start_s)
        self._tick("fit")
        return self

    def update(self, history_rps: Any, *, now_s: float | None = None) -> None:
        self._model.update(history_rps, now_s=now_s)
        self._tick("tick")

    def predict(self, horizon_s: float = 60.0) -> Any:
        return self._model.predict(horizon_s)


class _PreTrained:
    """An LSTM with loaded weights: ``fit`` only positions the history, no training."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.name = model.name

    def fit(self, history_rps: Any, *, start_s: float = 0.0) -> _PreTrained:
        self._model.update(history_rps, now_s=start_s + len(history_rps))
        return self

    def update(self, history_rps: Any, *, now_s: float | None = None) -> None:
        self._model.update(history_rps, now_s=now_s)

    def predict(self, horizon_s: float = 60.0) -> Any:
        return self._model.predict(horizon_s)


def _table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"forecast backtest: {report['windows']} windows of {report['horizon_s']} s, q={report['quantile']}")
    columns = ("mape", "under_ratio", "over_provision_ratio", "pinball", "fit_s", "predict_ms")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, measures in report["models"].items():
        table.add_row(name, *(f"{measures[c]:.4g}" for c in columns))
    Console().print(table)
