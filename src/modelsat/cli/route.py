"""`modelsat route "instruction"`: the chosen model of a zoo and every candidate's score.

With no option it answers right after install, from package data only: the shipped router
(`modelsat/shipped/modelsat-cpu-default/`, when a trained Model-SAT router ships) or else the profile prior with its shipped
subject map, among the shipped default zoo (`modelsat/shipped/default_zoo/`).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

import typer
from rich.console import Console
from rich.table import Table

from modelsat.aptitude.profile import Profile, check_price
from modelsat.cli.logs import LogLevel, log_level_option, set_log_level
from modelsat.errors import ModelsatError

console = Console()


def shipped_path(name: str) -> Path:
    """A folder inside the package's shipped data (modelsat/shipped/<name>)."""
    return Path(str(resources.files("modelsat") / "shipped" / name))


def load_router(spec: str | None):
    """The router named by `spec`: a router folder, a registered router name, or (None) the shipped default."""
    from modelsat.routers import Router, available, get
    if spec is None:
        try:   # the Model-SAT engineer's shipped folder (modelsat/shipped/modelsat-cpu-default)
            from modelsat.routers.modelsat.router import shipped_router_dir
            shipped = shipped_router_dir()
        except ImportError:
            shipped = shipped_path("router")
        if (shipped / "config.json").exists():
            return Router.load(shipped), f"shipped router ({shipped.name})"
        return get("profile-prior")(), "profile-prior (shipped subject map)"
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelsatError(f"--router {spec}: the folder has no config.json, so it is not a router folder "
                                "(write one with `modelsat train` or Router.save)")
        return Router.load(path), str(path)
    if spec in available():
        router = get(spec)()
        if spec != "profile-prior":
            raise ModelsatError(f"--router {spec}: this router must be trained before it can route; pass the "
                                "folder it was saved to, or use --router profile-prior (needs no training)")
        return router, f"{spec} (shipped subject map)"
    raise ModelsatError(f"--router {spec}: no such folder, and not a router that needs no training "
                        f"(profile-prior); registered routers: {', '.join(available())}")


def _zoo_entries(path: Path) -> tuple[str, list[dict], Path]:
    """(zoo name, entries {name, profile?, price?}, folder the profile paths are relative to) of a zoo YAML."""
    from modelsat.paths import read_yaml
    data = read_yaml(path, "zoo YAML")
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ModelsatError(f"{path}: a zoo YAML needs a `models` list (of names, or of {{name, profile}})")
    entries = []
    for i, m in enumerate(data["models"]):
        if isinstance(m, str):
            entries.append({"name": m})
        elif isinstance(m, dict) and (m.get("name") or m.get("model")):
            entries.append({**m, "name": m.get("name") or m.get("model")})
            check_price(m.get("price"), f"{path}: models[{i}] ({entries[-1]['name']}) price")
        else:
            raise ModelsatError(f"{path}: models[{i}] is neither a name nor a mapping with `name`")
    return str(data.get("name", path.stem)), entries, path.parent


def load_zoo(spec: str | None) -> tuple[str, list[Profile]]:
    """(zoo name, candidate profiles) from a zoo YAML, a folder of profile JSONs (with or without zoo.yaml),
    or (None) the shipped default zoo."""
    from modelsat.aptitude.from_records import profile_file_name
    path = Path(spec) if spec is not None else shipped_path("default_zoo")
    where = f"--zoo {spec}" if spec is not None else f"the shipped default zoo ({path})"
    if not path.exists():
        raise ModelsatError(f"{where}: no such file or folder")
    if path.is_dir() and (path / "zoo.yaml").exists():
        path = path / "zoo.yaml"
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        name, entries, base = _zoo_entries(path)
        profiles = []
        for e in entries:
            prof_path = base / e["profile"] if e.get("profile") else base / profile_file_name(e["name"])
            if prof_path.exists():
                prof = Profile.load(prof_path)
                if e.get("price") is not None and "price_per_mtok" not in prof.notes:
                    prof.notes["price_per_mtok"] = e["price"]
                profiles.append(prof)
        if not profiles:
            raise ModelsatError(f"{where}: none of its {len(entries)} models has a profile file (looked for "
                                f"`profile:` paths or <model>.json beside {path.name}); profile them first with "
                                "`modelsat profile`")
        return name, profiles
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        profiles = [Profile.load(f) for f in files]
        if not profiles:
            raise ModelsatError(f"{where}: the folder holds no profile JSON files; profile the models first "
                                "with `modelsat profile`")
        return path.name, profiles
    if path.suffix == ".json":
        return path.stem, [Profile.load(path)]
    raise ModelsatError(f"{where}: expected a zoo YAML, a profile JSON or a folder of profiles")


def score_meaning(router) -> dict:
    """What the router's number for a candidate is, in words: {"kind", "header", "text"}.

    A calibrated router (`Router.calibrate`, design.md "Probabilities and policies") shows its probability of a
    good answer; otherwise only a number that already is a probability is shown as one, and a log-odds score
    keeps its own scale and says so."""
    if getattr(router, "calibrator_", None) is not None:
        return {"kind": "probability", "header": "P(good answer)",
                "text": "probability that the model answers well, calibrated on held-out items"}
    if router.name == "profile-prior" or getattr(router, "prior_only", False):
        return {"kind": "accuracy", "header": "expected accuracy",
                "text": "the model's aptitude-test accuracy at the instruction's subjects (shrunk toward its "
                        "mean); an estimate from its profile, not a calibrated probability"}
    if getattr(router, "scores_are_probabilities", False):
        return {"kind": "accuracy", "header": "P(good answer), uncalibrated",
                "text": f"the {router.name} router's own estimate of the probability of a good answer, not "
                        "calibrated on held-out items"}
    if router.name in ("modelsat", "modelsat-prior"):
        return {"kind": "log-odds", "header": "score (log-odds)",
                "text": "Model-SAT score: the profile prior's log-odds plus the learned correction; higher is "
                        "better; not a probability (the router is not calibrated)"}
    return {"kind": "score", "header": "score", "text": f"{router.name} router score; higher is better; not a "
                                                        "probability (the router is not calibrated)"}


def route_one(instruction: str, router, candidates: Sequence[Profile], cost_weight: float = 0.0) -> dict:
    """The routing decision for one instruction: chosen model, every candidate's number, and the time of a warm
    call (`seconds`) apart from the first call's (`first_call_seconds`: lazy loading of the router's models)."""
    import numpy as np

    from modelsat.routers.base import relative_costs
    if not instruction or not instruction.strip():
        raise ModelsatError("the instruction is empty; pass the text to route, e.g. "
                            "modelsat route \"Solve x^2 - 5x + 6 = 0\"")
    meaning = score_meaning(router)
    numbers = router.predict_proba if meaning["kind"] == "probability" else router.score
    from modelsat.embeddings import transient
    with transient():   # the instruction is embedded in memory only, never written to the cache
        start = time.perf_counter()
        router.prepare(list(candidates))     # per-candidate work once (memoised in a shipped router)
        np.asarray(numbers([instruction], list(candidates)))     # first call: loads what the router loads lazily
        first = time.perf_counter() - start
        start = time.perf_counter()
        scores = np.asarray(numbers([instruction], list(candidates)), dtype=float)[0]
        adjusted = scores - cost_weight * relative_costs(candidates)
        chosen = int(np.argmax(adjusted))
        elapsed = time.perf_counter() - start
        out = {"instruction": instruction, "chosen": candidates[chosen].model, "score_meaning": meaning,
               "scores": {c.model: float(s) for c, s in zip(candidates, scores)},
               "candidates": [{"model": c.model, "score": float(s), "profile_mean_accuracy": c.mean_accuracy,
                               "price_per_mtok": c.price}
                              for c, s in sorted(zip(candidates, scores), key=lambda cs: -cs[1])],
               "cost_weight": cost_weight, "seconds": elapsed, "first_call_seconds": first}
        if cost_weight:
            out["adjusted_scores"] = {c.model: float(s) for c, s in zip(candidates, adjusted)}
        sm = getattr(router, "subject_map_", None)
        if sm is not None:
            w = sm.weights([instruction])[0]
            out["subjects"] = {sm.subjects[i]: float(w[i]) for i in np.argsort(-w)[:3]}
    return out


def check_shipped_versions(candidates: Sequence[Profile], zoo_name: str) -> None:
    """The shipped router reads profiles taken on the shipped aptitude test; any other is refused."""
    from modelsat.aptitude.shipped import check_profile_version, shipped_test
    version = shipped_test().version
    for c in candidates:
        check_profile_version(c, version, where=f"zoo {zoo_name}")


def _number(value: float, kind: str) -> str:
    return f"{value:.0%}" if kind in ("probability", "accuracy") else f"{value:+.2f}"


def print_result(result: dict, candidates: Sequence[Profile]) -> None:
    """The chosen model first, then every candidate with its number, what the number is, and the times."""
    meaning = result["score_meaning"]
    console.print(f"[bold green]{result['chosen']}[/]", highlight=False)
    console.print(f"chosen by the {result['router']} among {len(candidates)} models of zoo {result['zoo']}",
                  style="dim", highlight=False, soft_wrap=True)
    key = "adjusted_scores" if result["cost_weight"] else "scores"
    priced = any(c.price is not None for c in candidates)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("")
    table.add_column("model", no_wrap=True)
    table.add_column(meaning["header"], justify="right")
    table.add_column("profile mean", justify="right")
    if priced:
        table.add_column("USD/Mtok", justify="right")
    for c in sorted(candidates, key=lambda c: -result[key][c.model]):
        row = ["→" if c.model == result["chosen"] else "", c.model,
               _number(result["scores"][c.model], meaning["kind"]), f"{c.mean_accuracy:.0%}"]
        if priced:
            row.append("" if c.price is None else f"{c.price:g}")
        table.add_row(*row)
    console.print(table)
    console.print(f"{meaning['header']}: {meaning['text']}" + (
        f"; ranked after subtracting {result['cost_weight']:g} x relative price" if result["cost_weight"] else ""),
        style="dim", highlight=False, soft_wrap=True)
    if "subjects" in result:
        console.print("subjects: " + ", ".join(f"{s} {w:.2f}" for s, w in result["subjects"].items()), style="dim",
                      highlight=False, soft_wrap=True)
    console.print(f"routing took {result['seconds'] * 1000:.0f} ms (warm); start-up {result['startup_seconds']:.1f} s "
                  "(loading the router and its models, once per process: a server pays it at start)",
                  highlight=False, soft_wrap=True)


def route_cmd(
    instruction: str = typer.Argument(..., help="The instruction to route."),
    router: Optional[str] = typer.Option(None, "--router", help="A router folder, or `profile-prior`. "
                                         "Default: the shipped router, else the profile prior."),
    zoo: Optional[str] = typer.Option(None, "--zoo", help="A zoo YAML, a folder of profile JSONs, or one "
                                      "profile JSON. Default: the shipped default zoo."),
    cost_weight: float = typer.Option(0.0, "--cost-weight", help="Subtract this x relative price from scores."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (for scripts)."),
    log_level: LogLevel = log_level_option(),
) -> None:
    """Name the model of the zoo most likely to answer INSTRUCTION well, then every candidate with its number."""
    started = time.perf_counter()
    set_log_level(log_level)
    if not instruction.strip():   # before loading anything
        route_one(instruction, None, [])
    zoo_name, candidates = load_zoo(zoo)     # cheap mistakes first, before a router's seconds of loading
    r, router_label = load_router(router)
    if router is None and router_label.startswith("shipped router"):
        check_shipped_versions(candidates, zoo_name)
    result = route_one(instruction, r, candidates, cost_weight)
    result["startup_seconds"] = time.perf_counter() - started - result["seconds"]
    result.update({"router": router_label, "zoo": zoo_name})
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_result(result, candidates)


def register(app: typer.Typer) -> None:
    app.command("route")(route_cmd)
