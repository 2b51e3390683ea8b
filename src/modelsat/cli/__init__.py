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


def fail(message: str, status: int = 2) -> None:
    """Prints `error: MESSAGE` on stderr (no traceback) and exits with `status`."""
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(status)


def main() -> None:
    """Entry point. Usage mistakes are typer's own business: in standalone mode it prints the usage line and the
    mistake and exits 2, whichever click it bundles (typer >= 0.26 carries its own, so catching `click`'s
    exceptions here would never match). A ModelsatError, or a file the user named that cannot be opened,
    becomes one `error:` line and exit status 2; anything else is a bug and keeps its traceback."""
    from modelsat.cli.logs import quiet_by_default
    quiet_by_default()
    try:
        app(prog_name="modelsat")
    except ModelsatError as exc:
        fail(str(exc))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
