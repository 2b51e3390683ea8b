"""`modelsat data ...`: list, export and validate records."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modelsat import records

data_app = typer.Typer(help="Inspect, export and validate per-item results (records).", no_args_is_help=True)
console = Console()


@data_app.command("validate")
def validate_cmd(file: Path = typer.Argument(..., help="A records file (.parquet, .csv or .jsonl).")) -> None:
    """Check a records file against the contract; errors name the file, the row and the field."""
    df = records.read(file)
    console.print(f"[green]ok[/] {file}: {len(df)} records, {df['model'].nunique()} models, "
                  f"{df['benchmark'].nunique()} benchmarks")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
