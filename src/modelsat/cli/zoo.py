"""`modelsat zoo ...`: put profiled models into a zoo folder and list them; nothing is retrained."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

zoo_app = typer.Typer(help="A zoo folder of model profiles (one aptitude-test version).", no_args_is_help=True)
console = Console()


@zoo_app.command("add")
def add_cmd(profile: list[Path] = typer.Argument(..., help="Profile JSON file(s)."),
            zoo: Path = typer.Option(..., "--zoo", help="The zoo folder."),
            test: Optional[Path] = typer.Option(None, "--test", help="The aptitude test; copied into the zoo."),
            replace: bool = typer.Option(False, "--replace", help="Overwrite a model already in the zoo.")) -> None:
    """Copy profiles into a zoo (validated; a profile of another test version is refused)."""
    from modelsat.aptitude.core_items import load_test
    from modelsat.aptitude.zoo_dir import add_profile
    t = load_test(test) if test else None
    for p in profile:
        dest = add_profile(p, zoo, test=t, replace=replace)
        console.print(f"[green]added[/] {p} -> {dest}")


@zoo_app.command("list")
def list_cmd(zoo: Path = typer.Option(..., "--zoo", help="The zoo folder.")) -> None:
    """The zoo's models with their profile summary."""
    from modelsat.aptitude.zoo_dir import zoo_profiles, zoo_test_version
    profs = zoo_profiles(zoo)
    table = Table(title=f"zoo {zoo} (aptitude test {zoo_test_version(zoo) or '-'})")
    for col in ("model", "mean acc", "subjects", "items", "fallback", "source", "notes"):
        table.add_column(col, justify="right" if col in ("mean acc", "subjects", "items", "fallback") else "left")
    for p in profs:
        fb = sum(1 for s in p.subjects.values() if s.basis == "fallback")
        notes = ", ".join(f"{k}={v}" for k, v in sorted(p.notes.items()))
        table.add_row(p.model, f"{p.mean_accuracy:.1%}", str(len(p.subjects)),
                      str(sum(s.n_items for s in p.subjects.values())), str(fb),
                      str(p.provenance.get("method", "")), notes[:60])
    console.print(table)
    console.print(f"{len(profs)} models")


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
