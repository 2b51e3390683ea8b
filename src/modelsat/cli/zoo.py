"""`modelsat zoo init|add|remove|list`: one folder with each model's profile, endpoint and price, which
`modelsat serve --zoo DIR` serves (and `modelsat route --zoo DIR` routes among); nothing is retrained."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from modelsat.errors import ModelsatError

zoo_app = typer.Typer(help="A zoo folder: each model's profile, endpoint and price (one aptitude-test version).",
                      no_args_is_help=True)
console = Console()
ADD_USAGE = "modelsat zoo add DIR PROFILE.json --base-url URL --price IN[,OUT]"


@zoo_app.command("init")
def init_cmd(zoo: Path = typer.Argument(..., help="The zoo folder to make (profiles already in it are indexed)."),
             test: Optional[Path] = typer.Option(None, "--test", help="The aptitude test its profiles are taken on "
                                                 "(default: the shipped test, the one the shipped router reads)."),
             name: Optional[str] = typer.Option(None, "--name", help="The zoo's name (default: the folder's).")) -> None:
    """Make DIR a zoo folder: an index (zoo.yaml) of models, each with profile, endpoint and price."""
    from modelsat.aptitude.core_items import load_test
    from modelsat.aptitude.zoo_dir import init_zoo, read_index
    index = init_zoo(zoo, test=load_test(test) if test else None, name=name)
    data = read_index(zoo)
    console.print(f"[green]made[/] zoo {zoo} ({index.name}) on aptitude test {data['test_version']}"
                  + (f", {len(data['models'])} profile(s) already there indexed" if data["models"] else "")
                  + f"; add a model with: {ADD_USAGE.replace('DIR', str(zoo))}", highlight=False, soft_wrap=True)


@zoo_app.command("add")
def add_cmd(paths: list[Path] = typer.Argument(..., help="DIR PROFILE.json (or, with --zoo DIR, profile files)."),
            base_url: Optional[str] = typer.Option(None, "--base-url", help="The model's OpenAI-compatible base "
                                                   "URL, e.g. http://127.0.0.1:8001/v1."),
            price: Optional[str] = typer.Option(None, "--price", help="USD per million tokens: IN[,OUT] "
                                                "(one figure: both), e.g. 0.15,0.6; 0 for a free model."),
            api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="NAME of the environment "
                                                      "variable holding the model's API key (never the key)."),
            upstream_model: Optional[str] = typer.Option(None, "--upstream-model", help="The model name sent "
                                                         "upstream (default: the profile's model name)."),
            zoo: Optional[Path] = typer.Option(None, "--zoo", help="Older form: copy profile file(s) into this "
                                               "folder, without endpoint or price."),
            test: Optional[Path] = typer.Option(None, "--test", help="With --zoo: the aptitude test, copied in."),
            replace: bool = typer.Option(False, "--replace", help="Change a model already in the zoo.")) -> None:
    """Add a model to a zoo folder: its profile, endpoint and price (a running `serve --zoo` takes it in)."""
    from modelsat.aptitude.zoo_dir import add_model, add_profile, parse_price
    if zoo is not None:           # the older form: `zoo add P.json ... --zoo DIR`
        if base_url or price or api_key_env or upstream_model:
            raise ModelsatError(f"--zoo DIR copies profiles only; to give endpoint and price, type: {ADD_USAGE}")
        from modelsat.aptitude.core_items import load_test
        t = load_test(test) if test else None
        for p in paths:
            dest = add_profile(p, zoo, test=t, replace=replace)
            console.print(f"[green]added[/] {p} -> {dest}", highlight=False, soft_wrap=True)
        return
    if len(paths) != 2:
        raise ModelsatError(f"expected a zoo folder and one profile file: {ADD_USAGE} (got {len(paths)} "
                            f"argument(s))")
    if test is not None:
        raise ModelsatError("--test goes with `modelsat zoo init DIR --test TEST.json` (the zoo keeps its test)")
    folder, profile = paths
    if folder.suffix == ".json" and profile.is_dir():
        raise ModelsatError(f"the zoo folder comes first: {ADD_USAGE}")
    missing = [opt for opt, v in (("--base-url URL", base_url), ("--price IN[,OUT]", price)) if v is None]
    if missing:
        raise ModelsatError(f"{' and '.join(missing)} needed: {ADD_USAGE} (a zoo folder is served, so each model "
                            "has an endpoint and a price; --price 0 for a free one)")
    entry = add_model(folder, profile, base_url, parse_price(price), api_key_env, upstream_model, replace)
    console.print(f"[green]added[/] {entry['name']} to zoo {folder}: {entry['base_url']}, "
                  f"{_price_text(entry.get('price'))}", highlight=False, soft_wrap=True)


@zoo_app.command("remove")
def remove_cmd(zoo: Path = typer.Argument(..., help="The zoo folder."),
               name: str = typer.Argument(..., help="The model's name (as `modelsat zoo list` shows it).")) -> None:
    """Take a model out of a zoo folder (a running `serve --zoo` stops routing to it)."""
    from modelsat.aptitude.zoo_dir import remove_model
    remove_model(zoo, name)
    console.print(f"[green]removed[/] {name} from zoo {zoo}", highlight=False, soft_wrap=True)


def _price_text(price) -> str:
    if not isinstance(price, dict):
        return "-" if price is None else f"${price:g}/Mtok"
    return f"${price['input']:g} in / ${price['output']:g} out per Mtok"


@zoo_app.command("list")
def list_cmd(folder: Optional[Path] = typer.Argument(None, help="The zoo folder."),
             zoo: Optional[Path] = typer.Option(None, "--zoo", help="The zoo folder (older form).")) -> None:
    """The zoo's models: profile summary, endpoint and price."""
    from modelsat.aptitude.zoo_dir import index_entries, is_indexed, read_index, zoo_profiles, zoo_test_version
    if folder is not None and zoo is not None and folder != zoo:
        raise ModelsatError(f"two zoo folders given ({folder} and --zoo {zoo}); list one: modelsat zoo list {folder}")
    z = folder or zoo
    if z is None:
        raise ModelsatError("say which zoo: modelsat zoo list DIR")
    if not is_indexed(z):
        profs = zoo_profiles(z)
        table = Table(title=f"zoo {z} (aptitude test {zoo_test_version(z) or '-'})")
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
        return
    index = read_index(z)
    rows = index_entries(z)
    table = Table(title=f"zoo {index.get('name', z)} ({z}, aptitude test {index.get('test_version')})")
    for col in ("model", "mean acc", "items", "endpoint", "price", "key from"):
        table.add_column(col, justify="right" if col in ("mean acc", "items") else "left")
    for m, prof, problem in rows:
        table.add_row(m["name"], f"{prof.mean_accuracy:.1%}" if prof else "[red]-[/]",
                      str(sum(s.n_items for s in prof.subjects.values())) if prof else "-",
                      str(m.get("base_url") or "[yellow]none[/]") + (f" ({m['upstream_model']})"
                                                                    if m.get("upstream_model") else ""),
                      _price_text(m.get("price")), f"${m['api_key_env']}" if m.get("api_key_env") else "-")
    console.print(table)
    console.print(f"{len(rows)} models")
    bad = [(m["name"], problem) for m, _, problem in rows if problem]
    if bad:
        raise ModelsatError(f"{z}: {len(bad)} model(s) cannot be served: "
                            + "; ".join(f"{n}: {why}" for n, why in bad))


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
