"""`modelsat data ...`: list, export and validate records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from modelsat import records, sources
from modelsat.errors import ModelsatError
from modelsat.paths import data_dir

data_app = typer.Typer(help="Inspect, export and validate per-item results (records).", no_args_is_help=True)
console = Console()
status_console = Console(stderr=True)

DATA_DIR_HELP = "The data folder (default: $MODELSAT_DATA, then ../shared/data beside the project)."


def _load_with_status(name: str, path: Optional[Path] = None, data: Optional[Path] = None,
                      cache: bool = True) -> pd.DataFrame:
    """Records of one source, loaded under a spinner that names it."""
    with status_console.status(f"loading [bold]{name}[/] ..."):
        started = time.perf_counter()
        df = sources.load(name, path=path, data=data, cache=cache)
    status_console.print(f"loaded {name}: {len(df):,} rows in {time.perf_counter() - started:.1f} s",
                         style="dim", highlight=False)
    return df


def source_summary(name: str, df: pd.DataFrame) -> dict:
    """Source, number of benchmarks, models, items (distinct benchmark + item_id) and records of one source."""
    models = df["model"].dropna()
    return {"source": name, "benchmarks": df["benchmark"].nunique(), "models": models.nunique(),
            "items": len(df[["benchmark", "item_id"]].drop_duplicates()),
            "records": int(df["score"].notna().sum())}


def score_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark, split and model: items, mean score (%) and mean cost (USD) of a source's records."""
    results = df[df["model"].notna() & df["score"].notna()]
    if results.empty:
        return pd.DataFrame(columns=["benchmark", "split", "model", "items", "score_pct", "cost"])
    keys = ["benchmark", "split", "model"] if "split" in results.columns else ["benchmark", "model"]
    grouped = results.groupby(keys, dropna=False, sort=True)
    table = grouped.agg(items=("item_id", "size"), score_pct=("score", "mean"), cost=("cost", "mean"))
    table["score_pct"] *= 100
    table = table.reset_index()
    if "split" not in table.columns:
        table.insert(1, "split", None)
    return table


def _sources_table(summaries: list[dict]) -> Table:
    table = Table(title="Sources")
    for column in ("source", "benchmarks", "models", "items", "records"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for s in summaries:
        table.add_row(s["source"], f"{s['benchmarks']:,}", f"{s['models']:,}", f"{s['items']:,}",
                      f"{s['records']:,}")
    return table


def _scores_table(name: str, scores: pd.DataFrame) -> Table:
    table = Table(title=f"{name}: mean score per benchmark and model")
    for column in ("benchmark", "split", "model"):
        table.add_column(column, overflow="fold")
    for column in ("items", "score %", "cost USD/item"):
        table.add_column(column, justify="right")
    for r in scores.itertuples(index=False):
        cost = "" if pd.isna(r.cost) else f"{r.cost:.6f}"
        table.add_row(r.benchmark, "" if pd.isna(r.split) else str(r.split), str(r.model), f"{r.items:,}",
                      f"{r.score_pct:.2f}", cost)
    return table


@data_app.command("list")
def list_cmd(
    data_dir_option: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    scores: bool = typer.Option(False, "--scores", help="Add each model's mean score per benchmark and split."),
    only: Optional[List[str]] = typer.Option(None, "--source", "-s", help="List only this source (repeatable)."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse the Parquet cache of loaded sources."),
) -> None:
    """Show every source of the data folder: benchmarks, models, items (and with --scores, mean scores)."""
    folder = data_dir(data_dir_option)
    names = _selected_sources(only)
    present = [n for n in names if (folder / n).is_dir()]
    absent = [n for n in names if n not in present]
    if not present:
        raise ModelsatError(f"{folder}: none of the source folders {', '.join(names)} is there")
    summaries, per_source = [], {}
    for name in present:
        df = _load_with_status(name, data=folder, cache=cache)
        summaries.append(source_summary(name, df))
        if scores:
            per_source[name] = score_summary(df)
    console.print(_sources_table(summaries))
    for name, table in per_source.items():
        if len(table):
            console.print(_scores_table(name, table))
    if absent:
        console.print(f"not in {folder}: {', '.join(absent)}", style="yellow")


def _selected_sources(only: Optional[List[str]]) -> list[str]:
    if not only:
        return list(sources.SOURCES)
    unknown = [n for n in only if n not in sources.SOURCES]
    if unknown:
        raise ModelsatError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(sources.SOURCES)}")
    return list(only)


@data_app.command("export")
def export_cmd(
    source: str = typer.Argument(..., help=f"One of: {', '.join(sources.SOURCES)}."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file; .parquet, .csv or .jsonl (optionally .gz)."),
    path: Optional[Path] = typer.Option(None, "--path", help="Read the source from this folder (your own copy)."),
    data_dir_option: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse the Parquet cache of loaded sources."),
) -> None:
    """Write one source's records to a file (format by suffix); the write is atomic."""
    records.format_of(out)   # a bad suffix fails before the load, not after it
    df = _load_with_status(source, path=path, data=data_dir_option, cache=cache)
    if source in sources.QUESTION_ONLY:
        written = records.write_table(df, out)     # questions without model results: no score to check
    else:
        written = records.write(df, out)
    console.print(f"[green]wrote[/] {written}: {len(df):,} rows, {df['model'].nunique()} models, "
                  f"{df['benchmark'].nunique()} benchmarks", highlight=False)


@data_app.command("validate")
def validate_cmd(file: Path = typer.Argument(..., help="A records file (.parquet, .csv or .jsonl).")) -> None:
    """Check a records file against the contract; errors name the file, the row and the field."""
    df = records.read(file)
    console.print(f"[green]ok[/] {file}: {len(df)} records, {df['model'].nunique()} models, "
                  f"{df['benchmark'].nunique()} benchmarks")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
