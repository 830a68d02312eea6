"""The typer application object and the error-to-exit-code edge."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape

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
    _print_error(message)
    return typer.Exit(code)


def _print_error(message: str) -> None:
    # User text (file names, variant names, YAML snippets) may hold "[...]": never read it as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


#: set (to anything but "" or "0") to get the traceback of an internal error
DEBUG_ENV = "INFADAPTER_DEBUG"
#: exit code of an internal error (a bug), as for any documented runtime failure
EXIT_INTERNAL = 1


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: map our exceptions to exit codes, never a raw traceback.

    ``InfAdapterError`` -> its message and ``exit_code`` (2 for invalid input). Anything else is a bug:
    one "internal error" line and exit 1; ``INFADAPTER_DEBUG=1`` prints the traceback too.
    """
    try:
        app(args=list(argv) if argv is not None else None, prog_name="infadapter")
    except InfAdapterError as exc:
        _print_error(str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            traceback.print_exc()
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        _print_error(
            f"internal error ({type(exc).__name__}{': ' + text if text else ''}); this is a bug, please report it "
            f"with the output of the same command run with {DEBUG_ENV}=1"
        )
        sys.exit(EXIT_INTERNAL)
