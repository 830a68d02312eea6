"""The paper's LSTM forecaster, re-implemented in torch (CPU).

Input: the peaks of the 10 previous minutes; output: the next minute's peak. Architecture as in
the authors' Keras code: ``LSTM(25, activation="relu", kernel_regularizer=L1(1e-5)) -> Dense(1)``
(sigmoid gates, ReLU for the candidate and the output, unit forget bias), Adam, MSE, 30 epochs,
batch 64, seed 7. Values are divided by a scale fixed at training (the training peak) so the
weights are portable; the scale is saved with them. Training samples are every minute of the fit
history whose 11 minutes are all observed (masked gaps are skipped, as the paper dropped zeros).
Until 10 minute peaks exist online, the paper's EWMA warm-up answers. Online inference runs the
same weights in numpy (a 25-unit cell over 10 steps: ~0.1 ms, no torch threads per tick).

torch is optional (``pip install torch==2.13.0``, or the ``torch`` extra) and imported lazily.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from typing import Any, Self

import numpy as np

from infadapter.errors import FieldError, InfAdapterError, InvalidInput
from infadapter.forecast.base import FloatArray, ForecastResult, margin_quantile
from infadapter.forecast.blocks import block_peaks
from infadapter.forecast.simple import MinutePeakModel, ewma_last

_FORMAT = "infadapter-lstm/1"


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def import_torch() -> Any:
    """torch, or an :class:`InfAdapterError` that says how to install it."""
    try:
        import torch
    except ImportError:
        raise InfAdapterError(
            "the lstm forecaster needs PyTorch, which is not installed: "
            "run `pip install torch==2.13.0` (CPU build) or install the extra `pip install 'infadapter[torch]'`"
        ) from None
    return torch


def _build(torch: Any, hidden: int) -> Any:
    nn = torch.nn

    class ReluLSTM(nn.Module):  # type: ignore[misc,name-defined]
        """Keras-style LSTM with ReLU activations (torch's nn.LSTM is tanh-only)."""

        def __init__(self) -> None:
            super().__init__()
            self.hidden = hidden
            self.kernel = nn.Linear(1, 4 * hidden)
            self.recurrent = nn.Linear(hidden, 4 * hidden, bias=False)
            self.dense = nn.Linear(hidden, 1)
            nn.init.xavier_uniform_(self.kernel.weight)
            nn.init.orthogonal_(self.recurrent.weight)
            with torch.no_grad():
                self.kernel.bias.zero_()
                self.kernel.bias[hidden : 2 * hidden] = 1.0  # unit forget bias, as Keras

        def forward(self, x: Any) -> Any:
            batch = x.shape[0]
            h = x.new_zeros(batch, self.hidden)
            c = x.new_zeros(batch, self.hidden)
            for t in range(x.shape[1]):
                gates = self.kernel(x[:, t, :]) + self.recurrent(h)
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.relu(g)
                h = torch.sigmoid(o) * torch.relu(c)
            return self.dense(h).squeeze(-1)

    return ReluLSTM()


class Lstm(MinutePeakModel):
    """10 minute-peaks in, next minute's peak out (the paper's model)."""

    name = "lstm"

    def __init__(
        self,
        *,
        weights_path: str | os.PathLike[str] | None = None,
        window_min: int = 10,
        hidden: int = 25,
        epochs: int = 30,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        l1_penalty: float = 1e-5,
        seed: int = 7,
        threads: int = 1,
        margin_ratio: float = 0.0,
    ) -> None:
        super().__init__(window_s=window_min * 60, block_s=60, margin_ratio=margin_ratio)
        self.window_min = int(window_min)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.l1_penalty = float(l1_penalty)
        self.seed = int(seed)
        self.threads = int(threads)
        self.scale_rps = 1.0
        self.train_loss: float | None = None
        self._torch = import_torch()
        self._net: Any = None
        self._cache: tuple[float | None, float] | None = None
        self._numpy: dict[str, Any] | None = None
        if weights_path is not None:
            self.load(weights_path)

    # training ---------------------------------------------------------------------------
    def samples(self, series: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(inputs [n, window], targets [n]) from every fully observed run of window+1 minutes."""
        peaks = block_peaks(series, 60)
        if peaks.size <= self.window_min:
            return np.empty((0, self.window_min)), np.empty(0)
        windows = np.lib.stride_tricks.sliding_window_view(peaks, self.window_min + 1)
        windows = windows[~np.isnan(windows).any(axis=1)]
        return windows[:, :-1].copy(), windows[:, -1].copy()

    def _train(self, series: FloatArray, start_s: float) -> None:
        torch = self._torch
        inputs, targets = self.samples(series)
        if targets.size < self.batch_size:
            raise InvalidInput(
                [FieldError("history_rps", f"only {targets.size} training samples, need >= {self.batch_size}", "train on a longer trace")],
                source="forecast input",
            )
        torch.manual_seed(self.seed)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            self.scale_rps = float(max(targets.max(), 1.0))
            self._net = _build(torch, self.hidden)
            x = torch.tensor(inputs / self.scale_rps, dtype=torch.float32).unsqueeze(-1)
            y = torch.tensor(targets / self.scale_rps, dtype=torch.float32)
            optimiser = torch.optim.Adam(self._net.parameters(), lr=self.learning_rate)
            generator = torch.Generator().manual_seed(self.seed)
            self._net.train()
            loss_sum = 0.0
            for _epoch in range(self.epochs):
                order = torch.randperm(y.shape[0], generator=generator)
                loss_sum = 0.0
                for begin in range(0, y.shape[0], self.batch_size):
                    batch = order[begin : begin + self.batch_size]
                    optimiser.zero_grad()
                    loss = torch.mean((self._net(x[batch]) - y[batch]) ** 2)
                    loss_sum += float(loss.detach()) * batch.shape[0]
                    loss = loss + self.l1_penalty * self._net.kernel.weight.abs().sum()
                    loss.backward()
                    optimiser.step()
            self.train_loss = loss_sum / y.shape[0] * self.scale_rps**2
            self._net.eval()
            self._numpy = None
        finally:
            torch.set_num_threads(previous_threads)
        self._cache = None

    # persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        if self._net is None:
            raise InfAdapterError("the lstm forecaster has no weights to save: fit it first")
        target = os.fspath(path)
        partial = f"{target}.partial"
        blob = {"format": _FORMAT, "state": self._net.state_dict(), "scale_rps": self.scale_rps, "window_min": self.window_min, "hidden": self.hidden}
        try:  # write beside, then rename: a failed save never leaves a half-written weights file
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            self._torch.save(blob, partial)
            os.replace(partial, target)
        except (OSError, RuntimeError) as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise InvalidInput([FieldError(target, f"cannot write lstm weights ({exc})", "give a writable file path")], source="weights") from None

    def load(self, path: str | os.PathLike[str]) -> Self:
        torch = self._torch
        try:
            blob = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise InvalidInput(
                [FieldError(os.fspath(path), f"cannot load lstm weights ({exc})", "create them with `infadapter forecast train`")], source="weights"
            ) from None
        if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
            raise InvalidInput(
                [FieldError(os.fspath(path), "not an infadapter lstm weights file", "create it with `infadapter forecast train`")], source="weights"
            )
        self.window_min = int(blob["window_min"])
        self.window_s = self.window_min * 60
        self.hidden = int(blob["hidden"])
        self.scale_rps = float(blob["scale_rps"])
        self._net = _build(torch, self.hidden)
        self._net.load_state_dict(blob["state"])
        self._net.eval()
        self._cache = None
        self._numpy = None
        return self

    # online -----------------------------------------------------------------------------
    def _ingested(self, added_s: int) -> None:
        self._cache = None

    def forward(self, peaks: FloatArray) -> float:
        """The network on one window of minute peaks, in numpy (float32, like torch; no threads)."""
        if self._numpy is None:
            self._numpy = {k: v.detach().numpy().astype(np.float32) for k, v in self._net.state_dict().items()}
        w = self._numpy
        hidden = self.hidden
        h = np.zeros(hidden, dtype=np.float32)
        c = np.zeros(hidden, dtype=np.float32)
        for value in (peaks / self.scale_rps).astype(np.float32):
            gates = w["kernel.weight"][:, 0] * value + w["kernel.bias"] + w["recurrent.weight"] @ h
            i, f, g, o = (gates[k * hidden : (k + 1) * hidden] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.maximum(g, 0)
            h = _sigmoid(o) * np.maximum(c, 0)
        return float(w["dense.weight"][0] @ h + w["dense.bias"][0]) * self.scale_rps

    def _point(self, peaks: FloatArray) -> float:
        if self._net is None or peaks.size < self.window_min:
            return ewma_last(peaks, 10.0)  # the paper's warm-up until 10 minute peaks exist
        key = self._buffer.end_s
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        value = max(0.0, self.forward(peaks[-self.window_min :]))
        self._cache = (key, value)
        return value

    def _predict(self, horizon_s: float) -> ForecastResult:
        peaks = self.recent_peaks()
        point = self._point(peaks) if peaks.size else 0.0
        return ForecastResult(point, horizon_s, self.name, margin_quantile(point, self.margin_ratio))
