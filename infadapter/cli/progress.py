"""Progress on stderr for the long commands (``simulate``, ``forecast evaluate``, ``profile``).

Shown when stderr is a terminal (a rich bar) or when ``--progress`` asks for it (on a file or a pipe: a
plain line at most every :data:`LINE_EVERY_S` seconds, so logs stay readable); ``--no-progress`` hides it.
stdout is never touched: ``--json`` output stays one JSON object.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Protocol

import typer

ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="a progress bar on stderr (default: when stderr is a terminal)", show_default=False),
]

#: seconds between two plain progress lines when stderr is not a terminal
LINE_EVERY_S = 5.0


class Bar(Protocol):
    """What a long step reports: how much of ``total`` is done, and what it is doing."""

    def update(self, completed: float, description: str | None = None) -> None: ...


class _Silent:
    def update(self, completed: float, description: str | None = None) -> None:
        return None


class _LineBar:
    """Plain lines on stderr, rate-limited (the last state is always printed at the end)."""

    def __init__(self, total: float, description: str) -> None:
        self.total = max(total, 1e-9)
        self.description = description
        self.completed = 0.0
        self.started = time.monotonic()
        self.printed = -LINE_EVERY_S

    def update(self, completed: float, description: str | None = None) -> None:
        self.completed = completed
        self.description = description or self.description
        if time.monotonic() - self.printed >= LINE_EVERY_S:
            self.emit()

    def emit(self) -> None:
        self.printed = time.monotonic()
        ratio = min(1.0, self.completed / self.total)
        print(f"progress: {ratio:4.0%} {self.description} ({self.printed - self.started:.0f} s)", file=sys.stderr, flush=True)


def wanted(flag: bool | None) -> bool:
    """``--progress``/``--no-progress`` as given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


@contextmanager
def progress(flag: bool | None, total: float, description: str) -> Iterator[Bar]:
    """A :class:`Bar` for ``total`` units of work: rich on a terminal, lines on a file, nothing when not wanted."""
    if not wanted(flag):
        yield _Silent()
        return
    if not sys.stderr.isatty():
        lines = _LineBar(total, description)
        try:
            yield lines
        finally:
            lines.emit()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as shown:
        task = shown.add_task(escape(description), total=total)

        class _Rich:
            def update(self, completed: float, description: str | None = None) -> None:
                shown.update(task, completed=completed, description=escape(description) if description else None)

        yield _Rich()
