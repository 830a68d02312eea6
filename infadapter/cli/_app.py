"""The typer application object and the error-to-exit-code edge."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from infadapter.errors import InfAdapterError

app = typer.Typer(
    name="infadapter",
    help="Pick model variants, their CPU/GPU and traffic shares to keep inference inside its latency SLO.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from infadapter import __version__

        typer.echo(f"infadapter {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
) -> None:
    """InfAdapter: variants, sizes and traffic shares for inference under a latency SLO."""

#: exit code for invalid input (spec, profile, arguments), as click uses for usage errors
EXIT_INVALID = 2


def fail(message: str, code: int = EXIT_INVALID) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def main() -> None:
    """Console-script entry point: map our exceptions to exit codes, never a traceback."""
    try:
        app()
    except InfAdapterError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
