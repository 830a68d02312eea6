"""The paper's LSTM: trains on a small synthetic series, and saved weights reload to identical predictions."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infadapter.errors import InfAdapterError, InvalidInput
from infadapter.forecast import make_forecaster

from .synthetic import seasonal_series

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed (pip install torch==2.13.0)")


@pytest.fixture(scope="module")
def trained() -> tuple[Any, np.ndarray]:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    series = seasonal_series(12 * 3600, period_s=2 * 3600, base_rps=80, amplitude_rps=50, seed=6)
    model: Any = make_forecaster("lstm", epochs=40)
    model.fit(series[: 10 * 3600])
    return model, series


@needs_torch
@pytest.mark.slow
def test_lstm_learns_a_seasonal_series_better_than_its_mean(trained: tuple[Any, np.ndarray]) -> None:
    model, series = trained
    errors, baseline = [], []
    for t in range(10 * 3600, series.size - 60, 60):
        model.update(series[t - 600 : t], now_s=float(t))
        real = series[t : t + 60].max()
        errors.append(abs(model.predict(60).point_rps - real) / real)
        baseline.append(abs(series[: 10 * 3600].reshape(-1, 60).max(axis=1).mean() - real) / real)
    assert np.mean(errors) < 0.12
    assert np.mean(errors) < 0.5 * np.mean(baseline)


@needs_torch
@pytest.mark.slow
def test_saved_weights_reload_to_identical_predictions(trained: tuple[Any, np.ndarray], tmp_path: Path) -> None:
    model, series = trained
    path = tmp_path / "lstm.pt"
    model.save(path)
    reloaded: Any = make_forecaster("lstm", weights_path=path)
    for t in range(10 * 3600, 11 * 3600, 300):
        model.update(series[t - 600 : t], now_s=float(t))
        reloaded.update(series[t - 600 : t], now_s=float(t))
        assert reloaded.predict(60).point_rps == model.predict(60).point_rps
    import torch

    window = series[10 * 3600 - 600 : 10 * 3600].reshape(10, 60).max(axis=1)
    x = torch.tensor(window / model.scale_rps, dtype=torch.float32).reshape(1, -1, 1)
    with torch.no_grad():  # the numpy inference is the torch network
        assert model.forward(window) == pytest.approx(float(model._net(x)[0]) * model.scale_rps, rel=1e-5)


@needs_torch
def test_the_warm_up_is_the_paper_ewma_until_ten_minutes_exist() -> None:
    model: Any = make_forecaster("lstm")
    model.update(np.full(180, 40.0), now_s=180.0)
    assert model.predict(60).point_rps == pytest.approx(40.0)


@needs_torch
def test_a_file_that_is_not_lstm_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not torch")
    with pytest.raises(InvalidInput, match="forecast train"):
        make_forecaster("lstm", weights_path=path)


def test_missing_torch_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(InfAdapterError, match=r"pip install torch==2\.13\.0"):
        make_forecaster("lstm")
