"""`modelsat aptitude ...`: build the aptitude test, show its statistics, check profiles against records."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from modelsat.errors import ModelsatError

aptitude_app = typer.Typer(help="Build and inspect the aptitude test (50 MMLU subjects x 20 core items).",
                           no_args_is_help=True)
console = Console()


def load_records(records: Optional[Path], source: Optional[str], data_dir: Optional[Path]):
    """The records table of --records FILE or --source NAME (exactly one)."""
    if (records is None) == (source is None):
        raise ModelsatError("give exactly one of --records FILE or --source NAME (e.g. --source mmlu_pro)")
    if records is not None:
        from modelsat import records as rec
        return rec.read(records), str(records)
    from modelsat import sources
    with console.status(f"loading source {source} ..."):
        return sources.load(source, data=data_dir), f"source:{source}"


def print_stats(test) -> None:
    from modelsat.aptitude.core_items import distinguishability
    d = distinguishability(test)
    table = Table(title=f"aptitude test {test.version}: share of the {len(test.pool)}-model pool answering "
                        "each core item correctly")
    for col in ("subject", "items", "mean", "min", "max"):
        table.add_column(col, justify="left" if col == "subject" else "right")
    for r in d.itertuples(index=False):
        table.add_row(r.subject, str(r.items), f"{r.mean_share:.1%}", f"{r.min_share:.1%}", f"{r.max_share:.1%}")
    console.print(table)
    console.print(f"{len(d)} subjects, {int(d['items'].sum())} items; share over all items: mean "
                  f"{d['mean_share'].mean():.1%}, min {d['min_share'].min():.1%}, max {d['max_share'].max():.1%} "
                  f"(items at 0% or 100%: {int(((d['min_share'] <= 0) | (d['max_share'] >= 1)).sum())} subjects)")


@aptitude_app.command("build")
def build_cmd(
    out: Path = typer.Option(..., "--out", help="Aptitude-test JSON to write."),
    records: Optional[Path] = typer.Option(None, "--records", help="A records file."),
    source: Optional[str] = typer.Option(None, "--source", help="A data source, e.g. mmlu_pro."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The data folder."),
    exclude_items: Optional[Path] = typer.Option(None, "--exclude-items",
                                                 help="Items never to choose (text/CSV/JSON of benchmark,item_id or ids)."),
    models: Optional[str] = typer.Option(None, "--models", help="Selection pool, comma-separated (default: all)."),
    subjects: int = typer.Option(50, "--subjects", help="Number of MMLU subjects."),
    per_subject: int = typer.Option(20, "--per-subject", help="Core items per subject."),
    seed: int = typer.Option(0, "--seed", help="Breaks ties between equally distinguishing items."),
    rule: str = typer.Option("distinguishing", "--rule", help="How each subject's items are chosen: "
                             "'distinguishing' (closest to half the pool right), 'spread' (evenly spaced over the "
                             "pool's share, easy to hard), 'mixed' (half of each) or 'random' (a seeded draw)."),
) -> None:
    """Choose the core items (by distinguishability unless --rule says otherwise) and write the versioned
    aptitude-test file."""
    from modelsat.aptitude.core_items import build_test, read_exclude_file
    df, label = load_records(records, source, data_dir)
    exclude = read_exclude_file(exclude_items) if exclude_items else set()
    pool = [m.strip() for m in models.split(",") if m.strip()] if models else None
    test = build_test(df, exclude=exclude, pool=pool, n_subjects=subjects, per_subject=per_subject, seed=seed,
                      source={"records": label}, rule=rule)
    test.source["benchmarks"] = sorted({it.benchmark for _, it in test.items()})
    test.save(out)
    print_stats(test)
    console.print(f"[green]wrote[/] {out}: version {test.version}, pool of {len(test.pool)} models, "
                  f"{test.selection['excluded_items']} items excluded")


@aptitude_app.command("stats")
def stats_cmd(test: Path = typer.Argument(..., help="An aptitude-test JSON.")) -> None:
    """Print the distinguishability statistics of an aptitude test."""
    from modelsat.aptitude.core_items import load_test
    print_stats(load_test(test))


@aptitude_app.command("show")
def show_cmd(test: Optional[Path] = typer.Argument(None, help="An aptitude-test JSON (default: the shipped test).")
             ) -> None:
    """Summarise an aptitude test: version hash, source and licence, subjects with their keywords, items."""
    from modelsat.aptitude.core_items import load_test
    from modelsat.aptitude.shipped import shipped_test_path
    path = test or shipped_test_path()
    t = load_test(path)
    n_items = len(t.items())
    console.print(f"aptitude test [bold]{t.version}[/] ({'shipped: ' if test is None else ''}{path})", highlight=False,
                  soft_wrap=True)
    console.print(f"{len(t.subjects)} subjects, {n_items} items ({n_items // max(len(t.subjects), 1)} a subject), "
                  f"chosen on a pool of {len(t.pool)} models", highlight=False)
    src = t.source
    if src.get("dataset"):
        console.print(f"source: {src['dataset']}, {src.get('url', '')} @ {str(src.get('commit', ''))[:12]}",
                      highlight=False, soft_wrap=True)
    if src.get("license"):
        console.print(f"licence: {src['license']}", highlight=False, soft_wrap=True)
    table = Table(title=None, box=None, pad_edge=False)
    table.add_column("subject", no_wrap=True)
    table.add_column("items", justify="right", min_width=5)
    table.add_column("keywords", no_wrap=True, overflow="ellipsis", max_width=max(20, console.width - 46))
    for s in t.subjects:
        table.add_row(s.name, str(len(s.items)), ", ".join(s.keywords))
    console.print(table)
    console.print(f"profile a model on it: modelsat profile --endpoint URL --model NAME --out NAME.json"
                  + ("" if test is None else f" --test {path}"), highlight=False, soft_wrap=True)


@aptitude_app.command("correlate")
def correlate_cmd(
    test: Path = typer.Option(..., "--test", help="The aptitude-test JSON."),
    records: Optional[Path] = typer.Option(None, "--records", help="A records file."),
    source: Optional[str] = typer.Option(None, "--source", help="A data source, e.g. mmlu_pro."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    leave_one_out: bool = typer.Option(False, "--leave-one-out",
                                       help="Treat each model as new: rebuild the test without it in the pool."),
) -> None:
    """Spearman correlation between each model's profile mean accuracy and its accuracy on items outside the test."""
    from modelsat.aptitude.core_items import load_test
    from modelsat.aptitude import validation
    t = load_test(test)
    df, _ = load_records(records, source, data_dir)
    if leave_one_out:
        sel = t.selection
        table, rho, p = validation.leave_one_out(df, n_subjects=sel.get("n_subjects", 50),
                                                 per_subject=sel.get("per_subject", 20), seed=sel.get("seed", 0))
    else:
        table, rho, p = validation.profile_vs_outside(df, t)
    out = Table(title=f"profile mean accuracy vs accuracy outside the test"
                      + (" (leave-one-out pools)" if leave_one_out else f" ({t.version})"))
    for col in ("model", "profile mean", "outside items", "outside accuracy"):
        out.add_column(col, justify="left" if col == "model" else "right")
    for r in table.itertuples(index=False):
        out.add_row(r.model, f"{r.profile_mean:.1%}", str(r.outside_items), f"{r.outside_accuracy:.1%}")
    console.print(out)
    console.print(f"Spearman rho = {rho:.3f} (p = {p:.2g}) over {len(table)} models")


def register(app: typer.Typer) -> None:
    app.add_typer(aptitude_app, name="aptitude")
