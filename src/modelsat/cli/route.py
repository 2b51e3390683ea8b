"""`modelsat route "instruction"`: the chosen model of a zoo under a policy, and every candidate's P(good answer)
and expected cost.

With no option it answers right after install, from package data only: the shipped router
(`modelsat/shipped/modelsat-cpu-default/`, when a trained Model-SAT router ships) or else the profile prior with its shipped
subject map, among the shipped default zoo (`modelsat/shipped/default_zoo/`).
"""

from __future__ import annotations

import json
import math
import time
from enum import Enum
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


def candidate_costs(text: str, candidates: Sequence[Profile]) -> tuple[int, list[float], list[bool]]:
    """(prompt tokens of `text`, each candidate's expected USD for it, whether its price is known): prices from
    the profile's `price_per_mtok` (a zoo YAML's `price` fills it), DEFAULT_OUTPUT_TOKENS out; 0 where unknown."""
    from modelsat.policies import expected_cost, prompt_tokens, split_price
    tokens = prompt_tokens(text)
    prices = [split_price(c.notes.get("price_per_mtok")) for c in candidates]
    costs = [float(expected_cost(tokens, *p)) if p is not None else 0.0 for p in prices]
    return tokens, costs, [p is not None for p in prices]


def route_one(instruction: str, router, candidates: Sequence[Profile], policy: str = "max-quality",
              knobs: dict | None = None) -> dict:
    """The routing decision for one instruction under `policy` (`modelsat.policies`) with its `knobs` ({"lambda",
    "delta", "tau", "budget"}): the chosen model, every candidate's P(good answer) and expected cost in USD, best
    (in the policy's order) first, and the time of a warm call (`seconds`) and of the policy (`policy_seconds`)
    apart from the first call's (`first_call_seconds`: lazy loading of the router's models)."""
    import numpy as np

    from modelsat.policies import (DEFAULT_OUTPUT_TOKENS, check_knobs, choice_record, choose, gives_probabilities,
                                   rank)
    if not instruction or not instruction.strip():
        raise ModelsatError("the instruction is empty; pass the text to route, e.g. "
                            "modelsat route \"Solve x^2 - 5x + 6 = 0\"")
    knobs = check_knobs(policy, knobs or {})
    probabilities = gives_probabilities(router)
    if policy != "max-quality" and not probabilities:
        raise ModelsatError(f"--policy {policy} weighs P(good answer) against cost, but the {router.name} router "
                            "gives scores, not probabilities: calibrate it (Router.calibrate on validation items, "
                            "then save it) or use --policy max-quality")
    meaning = score_meaning(router)
    numbers = router.predict_proba if probabilities else router.score
    from modelsat.embeddings import transient
    with transient():   # the instruction is embedded in memory only, never written to the cache
        start = time.perf_counter()
        router.prepare(list(candidates))     # per-candidate work once (memoised in a shipped router)
        np.asarray(numbers([instruction], list(candidates)))     # first call: loads what the router loads lazily
        first = time.perf_counter() - start
        start = time.perf_counter()
        scores = np.asarray(numbers([instruction], list(candidates)), dtype=float)[0]
        elapsed = time.perf_counter() - start
        sm = getattr(router, "subject_map_", None)
        subjects = None
        if sm is not None:
            w = sm.weights([instruction])[0]
            subjects = {sm.subjects[i]: float(w[i]) for i in np.argsort(-w)[:3]}
    start = time.perf_counter()
    tokens, costs, known = candidate_costs(instruction, candidates)
    names = [c.model for c in candidates]
    if probabilities:
        choices = choose(scores[None, :], costs, policy, lam=knobs.get("lambda"), delta=knobs.get("delta"),
                         tau=knobs.get("tau"), budget_usd=knobs.get("budget"), models=names)
        ranked = "tradeoff" if policy == "budget" else policy
        order = rank(scores, costs, ranked, lam=choices.params.get("lambda"), delta=knobs.get("delta"),
                     tau=knobs.get("tau"))
        decision = choice_record(choices, 0, known, order)
    else:      # max-quality on raw scores: no probability to show
        order = np.lexsort((costs, -scores))
        decision = {"policy": policy, "params": {}, "chosen": names[order[0]], "p": None,
                    "expected_cost_usd": costs[order[0]] if known[order[0]] else None,
                    "candidates": [{"model": names[j], "p": None, "expected_cost_usd": costs[j] if known[j] else None}
                                   for j in order]}
    policy_seconds = time.perf_counter() - start
    for row, j in zip(decision["candidates"], order):
        c = candidates[j]
        row.update({"score": float(scores[j]), "profile_mean_accuracy": c.mean_accuracy,
                    "price_per_mtok": c.notes.get("price_per_mtok")})
    out = {"instruction": instruction, **decision, "score_meaning": meaning,
           "scores": {c.model: float(s) for c, s in zip(candidates, scores)},
           "prompt_tokens": tokens, "expected_output_tokens": DEFAULT_OUTPUT_TOKENS,
           "seconds": elapsed, "policy_seconds": policy_seconds, "first_call_seconds": first}
    if subjects is not None:
        out["subjects"] = subjects
    return out


def check_shipped_versions(candidates: Sequence[Profile], zoo_name: str) -> None:
    """The shipped router reads profiles taken on the shipped aptitude test; any other is refused."""
    from modelsat.aptitude.shipped import check_profile_version, shipped_test
    version = shipped_test().version
    for c in candidates:
        check_profile_version(c, version, where=f"zoo {zoo_name}")


def _number(value: float, kind: str) -> str:
    return f"{value:.0%}" if kind in ("probability", "accuracy") else f"{value:+.2f}"


def usd(value: float | None) -> str:
    """A USD amount with two significant digits past the zeros ($0.00042), or "price unknown" for None."""
    if value is None:
        return "price unknown"
    if value == 0:
        return "$0"
    return f"${value:.{max(2, 1 - math.floor(math.log10(value)))}f}"


def policy_text(result: dict) -> str:
    """What the policy did, in words, with its knobs."""
    params, policy = result["params"], result["policy"]
    if policy == "tradeoff":
        lam = params["lambda"]
        worth = f"; one point of P (0.01) is worth up to {usd(0.01 / lam)} a request" if lam > 0 else ""
        return f"policy tradeoff (lambda {lam:g} per USD): the highest P - {lam:g} x expected cost{worth}"
    if policy == "threshold":
        rules = []
        if "delta" in params:
            rules.append(f"whose P is within {params['delta']:g} of the best")
        if "tau" in params:
            rules.append(f"whose P is at least {params['tau']:g}")
        return "policy threshold: the cheapest model " + " or ".join(rules)
    if policy == "budget":
        met = "" if params["met"] else "; no model is that cheap, so the cheapest was chosen"
        return (f"policy budget ({usd(params['budget'])} per request): tradeoff at lambda {params['lambda']:.4g}, "
                f"fitted on this one instruction (its expected cost at most the budget){met}; `modelsat serve` "
                "fits lambda on many prompts instead, for a mean cost per request")
    return "policy max-quality: the model most likely to answer well"


def print_result(result: dict, candidates: Sequence[Profile]) -> None:
    """The chosen model first, then every candidate (in the policy's order) with P(good answer), its expected
    cost, what the numbers are, the policy and the times."""
    meaning = result["score_meaning"]
    console.print(f"[bold green]{result['chosen']}[/]", highlight=False)
    console.print(f"chosen by the {result['router']} among {len(candidates)} models of zoo {result['zoo']}, "
                  f"policy {result['policy']}", style="dim", highlight=False, soft_wrap=True)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("")
    table.add_column("model", no_wrap=True)
    table.add_column(meaning["header"], justify="right")
    table.add_column("expected cost", justify="right")
    table.add_column("profile mean", justify="right")
    for row in result["candidates"]:
        table.add_row("→" if row["model"] == result["chosen"] else "", row["model"],
                      _number(row["score"], meaning["kind"]), usd(row["expected_cost_usd"]),
                      f"{row['profile_mean_accuracy']:.0%}")
    console.print(table)
    notes = [f"{meaning['header']}: {meaning['text']}",
             f"expected cost: the instruction's {result['prompt_tokens']} tokens in (about 4 characters a token) and "
             f"{result['expected_output_tokens']} tokens out (a default answer length) at each model's "
             "price_per_mtok; price unknown where its profile or zoo gives none (the policy counts it as free)",
             policy_text(result)]
    if result["policy"] != "max-quality" and all(r["expected_cost_usd"] is None for r in result["candidates"]):
        notes.append("no model of this zoo has a price, so every policy chooses as max-quality; give prices with "
                     "`price:` in a zoo YAML or `modelsat zoo add --price`")
    if "subjects" in result:
        notes.append("subjects: " + ", ".join(f"{s} {w:.2f}" for s, w in result["subjects"].items()))
    for note in notes:
        console.print(note, style="dim", highlight=False, soft_wrap=True)
    console.print(f"routing took {result['seconds'] * 1000:.0f} ms (warm) and the policy "
                  f"{result['policy_seconds'] * 1000:.2f} ms; start-up {result['startup_seconds']:.1f} s "
                  "(loading the router and its models, once per process: a server pays it at start)",
                  highlight=False, soft_wrap=True)


class PolicyName(str, Enum):
    max_quality = "max-quality"
    tradeoff = "tradeoff"
    threshold = "threshold"
    budget = "budget"


def route_cmd(
    instruction: str = typer.Argument(..., help="The instruction to route."),
    router: Optional[str] = typer.Option(None, "--router", help="A router folder, or `profile-prior`. "
                                         "Default: the shipped router, else the profile prior."),
    zoo: Optional[str] = typer.Option(None, "--zoo", help="A zoo YAML, a folder of profile JSONs, or one "
                                      "profile JSON. Default: the shipped default zoo."),
    policy: PolicyName = typer.Option(PolicyName.max_quality, "--policy", help="How P(good answer) is weighed "
                                      "against expected cost: max-quality (the highest P), tradeoff (--lambda), "
                                      "threshold (--delta and/or --tau), budget (--budget)."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="tradeoff: probability per USD; the highest "
                                        "P - lambda x expected cost wins (a point of P, 0.01, is worth $0.01/lambda: "
                                        "lambda 10 pays up to $0.001 for it)."),
    delta: Optional[float] = typer.Option(None, "--delta", help="threshold: the cheapest model whose P is within "
                                          "delta of the best (e.g. 0.03)."),
    tau: Optional[float] = typer.Option(None, "--tau", help="threshold: or whose P is at least tau (0 to 1)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="budget: USD per request (0.0005 = $0.50 per "
                                           "1,000 requests); lambda is fitted on this instruction."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (for scripts)."),
    log_level: LogLevel = log_level_option(),
) -> None:
    """Name the model of the zoo to send INSTRUCTION to, then every candidate with its probability of a good
    answer and its expected cost in USD."""
    from modelsat.policies import KnobError, check_knobs
    started = time.perf_counter()
    set_log_level(log_level)
    knobs = {"lambda": lam, "delta": delta, "tau": tau, "budget": budget}
    try:       # usage mistakes before anything loads
        knobs = check_knobs(policy.value, knobs)
    except KnobError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'--{exc.knob}'") from None
    if not instruction.strip():
        route_one(instruction, None, [])
    zoo_name, candidates = load_zoo(zoo)     # cheap mistakes first, before a router's seconds of loading
    r, router_label = load_router(router)
    if router is None and router_label.startswith("shipped router"):
        check_shipped_versions(candidates, zoo_name)
    result = route_one(instruction, r, candidates, policy.value, knobs)
    result["startup_seconds"] = time.perf_counter() - started - result["seconds"] - result["policy_seconds"]
    result.update({"router": router_label, "zoo": zoo_name})
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_result(result, candidates)


def register(app: typer.Typer) -> None:
    app.command("route")(route_cmd)
