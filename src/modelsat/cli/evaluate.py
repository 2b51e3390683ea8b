"""`modelsat benchmark` (every router on every zoo, on real data) and `modelsat evaluate` (one router folder on
any records, profiles and zoo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modelsat.errors import ModelsatError

console = Console()


def _threads(n: Optional[int]) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def benchmark_cmd(
    out: Path = typer.Option(Path("benchmark-results"), "--out", help="Folder for results.json, results.md, "
                             "plots/, splits/ and the fitted routers."),
    quick: bool = typer.Option(False, "--quick", help="Quick presets and at most 600 test items per benchmark "
                               "(seeded): 20-30 minutes on a 2-core CPU, cold cache included."),
    routers: Optional[str] = typer.Option(None, "--routers", help="Comma list of registered routers "
                                          "(default: all; see `modelsat benchmark --list`)."),
    zoos: Optional[str] = typer.Option(None, "--zoos", help="Comma list of built-in zoo names or YAML files "
                                       "(default: all built-in zoos)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data folder (default $MODELSAT_DATA, "
                                            "then ../shared/data)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the item split, the bootstrap and the routers."),
    test_items: Optional[int] = typer.Option(None, "--test-items", min=0, help="At most this many test items per "
                                             "benchmark and zoo (seeded sample); 0 = all of them. Default: 600 "
                                             "with --quick, all otherwise. `--quick --test-items 0` trains the "
                                             "quick presets and scores every test item (e.g. to set RouterDC's "
                                             "zoo beside its published figures)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    aptitude_rule: str = typer.Option("distinguishing", "--aptitude-rule", help="How the aptitude test chooses "
                                      "each subject's items from training items: distinguishing, spread, mixed "
                                      "or random (`modelsat aptitude build --help`)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Training seeds for each router trained by gradient "
                              "(Model-SAT with its learned correction): each is trained this many times; its row "
                              "is the mean with each seed and the spread, and NAME-ensemble routes by their "
                              "averaged probabilities. Costs that router's training time this many times."),
    list_only: bool = typer.Option(False, "--list", help="List the routers and zoos and exit."),
) -> None:
    """Train what must be trained, evaluate every router on every zoo, print the tables, write JSON, Markdown
    and plots."""
    from modelsat.evaluate.benchmark import run_benchmark
    from modelsat.evaluate.report import print_report, write_report
    from modelsat.evaluate.zoos import builtin_zoos, resolve_zoos
    from modelsat.routers import available, benchmark_routers
    if list_only:
        console.print("routers: " + ", ".join(available()))
        console.print("zoos: " + ", ".join(builtin_zoos()))
        return
    _threads(threads)
    names = [r.strip() for r in routers.split(",") if r.strip()] if routers else benchmark_routers()
    unknown = [r for r in names if r not in available()]
    if unknown:
        raise ModelsatError(f"unknown router(s) {', '.join(unknown)}; available: {', '.join(available())}")
    results = run_benchmark(resolve_zoos(zoos), names, out, data=str(data_dir) if data_dir else None, seed=seed,
                            quick=quick, console=console, test_items=test_items, aptitude_rule=aptitude_rule,
                            train_seeds=seeds)
    print_report(results, console)
    files = write_report(results, out)
    console.print(f"wrote {out / 'results.json'}, " + ", ".join(str(f) for f in files[:3])
                  + (f" and {len(files) - 3} more" if len(files) > 3 else ""))


def evaluate_cmd(
    router_dir: Path = typer.Argument(..., help="A router folder written by `save` (config.json + weights)."),
    records_files: list[Path] = typer.Option(..., "--records", help="Records file(s) (.parquet/.csv/.jsonl) "
                                             "with the test items' scores; repeat for several."),
    profiles: list[Path] = typer.Option(..., "--profiles", help="Profile JSON files or folders of them, one per "
                                        "candidate model."),
    zoo: Optional[Path] = typer.Option(None, "--zoo", help="A zoo YAML file."),
    models: Optional[str] = typer.Option(None, "--models", help="Comma list of candidate models (instead of --zoo)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only records whose `split` column equals this "
                                        "(e.g. test); default: all records are test items."),
    splits_file: Optional[Path] = typer.Option(None, "--splits", help="A split CSV (benchmark,item_id,split) from "
                                               "a benchmark run: evaluates its test items, and picks the best "
                                               "single model on its training items."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every figure to this JSON file."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads."),
) -> None:
    """Evaluate a saved router on records it has never seen: routed score, references, Δ with 95 % CIs."""
    from modelsat.evaluate.evaluate import evaluate_router_dir
    from modelsat.evaluate.report import zoo_table
    _threads(threads)
    entry = evaluate_router_dir(router_dir, records_files, profiles, zoo, models, split, splits_file, seed)
    console.print(zoo_table(entry))
    for note in entry.get("notes", []):
        console.print(f"  [dim]note: {note}[/]")
    if json_out:
        from modelsat.aptitude.profile import write_json_atomic
        write_json_atomic(json.loads(json.dumps(entry, default=str)), json_out)
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_cmd)
    app.command("evaluate")(evaluate_cmd)
