"""The `modelsat` command: a thin typer layer; each command group lives in its own module here.

A module `modelsat.cli.<name>` joins the command by defining `register(app: typer.Typer) -> None`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

from modelsat.errors import ModelsatError

app = typer.Typer(
    name="modelsat",
    help="Route each instruction to the model of a zoo most likely to answer it well (Model-SAT).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _register_all() -> None:
    import modelsat.cli as pkg
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"modelsat.cli.{mod.name}")
        if hasattr(module, "register"):
            module.register(app)


_register_all()


def main() -> None:
    """Entry point: runs the app; a ModelsatError becomes a one-paragraph message and exit status 2."""
    try:
        app(standalone_mode=False)
    except ModelsatError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors come here with standalone_mode=False
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
