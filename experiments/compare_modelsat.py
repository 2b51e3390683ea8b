"""Model-SAT configurations side by side, with the cheap baselines, on the same held-out items of the same run.

Each `--variant NAME=JSON` is the quick preset (or `--preset`) with JSON overrides ({"train": {...},
"model": {...}}); every variant is registered as router `modelsat:NAME` for this run only and evaluated by the
benchmark harness (same splits, same test items, same bootstrap) beside profile-prior, per-category, kNN and the
best single model. Each `--prior-variant NAME=JSON` is the profile prior alone with those constructor parameters
(router `profile-prior:NAME`, e.g. '{"select": "routing"}' or '{"learn_steps": 300}'). Prints the summary tables
and writes the usual results folder.

    python experiments/compare_modelsat.py --out runs/compare \
        --variant lm='{}' --variant paper='{"train": {"objective": "paper"}}' \
        --zoos smaller-scale,smaller-mixed,middle-mixed,larger-mixed,high-performance

With `--seeds 0,1,2` the whole comparison runs once per seed (each seed draws its own item split, test sample
and training seed; results in OUT/seed-N) and ends with one table: each method's Δ vs the best single model per
seed and their mean, for the mean of the MMLU-Pro zoos and for every other zoo, and how many seeds put the Δ
significantly above (+) or below (−) zero. One seed cannot rank routers: the split alone moves them by points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rich.console import Console

from modelsat.evaluate.benchmark import run_benchmark
from modelsat.evaluate.report import print_report, write_report
from modelsat.evaluate.zoos import resolve_zoos
from modelsat.routers.base import register
from modelsat.routers.modelsat.router import ModelSATRouter, resolve_preset

BASELINES = "best-single,random,oracle,profile-prior,per-category,knn"
MMLU_PRO_ZOOS = ("smaller-scale", "smaller-mixed", "middle-mixed", "larger-mixed", "high-performance")


def variant_router(name: str, preset: str, overrides: dict) -> type:
    """A registered subclass of the Model-SAT router whose quick parameters are `preset` + `overrides`."""
    resolve_preset(preset, overrides)   # fail now on a bad key, not after an hour of baselines
    cls = type(f"ModelSAT_{name}", (ModelSATRouter,), {"name": f"modelsat:{name}",
                                                         "quick_params": {"preset": preset, "overrides": overrides}})
    return register(cls)


def prior_variant_router(name: str, params: dict) -> type:
    """A registered subclass of the profile-prior router with constructor `params` (e.g. {"select": "routing"})."""
    from modelsat.routers.profile_prior import ProfilePrior
    ProfilePrior(**params)              # fail now on a bad key or value
    cls = type(f"ProfilePrior_{name}", (ProfilePrior,), {"name": f"profile-prior:{name}", "quick_params": params})
    return register(cls)


def _named_json(ap: argparse.ArgumentParser, flag: str, spec: str) -> tuple[str, dict]:
    name, _, text = spec.partition("=")
    if not name or not text:
        ap.error(f"{flag} wants NAME=JSON, got {spec!r}")
    try:
        return name, json.loads(text)
    except json.JSONDecodeError as exc:
        ap.error(f"{flag} {name}: not JSON ({exc})")


def _sign(d: dict) -> int:
    return 1 if d["low"] > 0 else -1 if d["high"] < 0 else 0


def seed_deltas(results: dict) -> dict[str, dict[str, tuple[float, int | None, int]]]:
    """{method: {column: (Δ in points, +1 / -1 / 0 as its 95 % CI lies above / below / across zero or None where
    there is no CI, how many of the column's zoos lie significantly below)}}.

    Columns are "MMLU-Pro (mean of N)" over the MMLU-Pro zoos present, "<stream> (mean of N)" over a release
    stream's steps (zoos named stream@newest), and every other zoo by name. Besides the methods' Δ vs the best
    single model, rows "A − B" hold the benchmark's head-to-head Δ of each Model-SAT row A against a cheap router
    B, with their paired CI (on the mean over zoos where the family's zoos share their test items)."""
    per: dict[str, dict[str, tuple[float, int]]] = {}
    for entry in results["zoos"] + results.get("streams", []):
        zoo = entry["zoo"]["name"]
        for row in entry["rows"]:
            d = row.get("delta_vs_best_single")
            if row.get("status", "ok") != "ok" or not d or row.get("kind") == "upper bound":
                continue
            per.setdefault(row["method"], {})[zoo] = (100 * d["estimate"], _sign(d))
        for subject, others in (entry.get("head_to_head") or {}).items():
            for other, d in others.items():
                per.setdefault(f"{subject} − {other}", {})[zoo] = (100 * d["estimate"], _sign(d))
    joint: dict[tuple[str, str], tuple[float, int]] = {}     # (duel, group column prefix) -> Δ over the zoos
    for info in results.get("families", {}).values():
        for j in info.get("head_to_head", []):
            prefix = _group(j["zoos"][0])
            for subject, others in j["deltas"].items():
                for other, d in others.items():
                    joint[(f"{subject} − {other}", prefix)] = (100 * d["estimate"], _sign(d))
    out: dict[str, dict[str, tuple[float, int | None, int]]] = {}
    for method, cells in per.items():
        groups: dict[str, list[tuple[float, int]]] = {}
        row: dict[str, tuple[float, int | None, int]] = {}
        for zoo, (delta, sig) in cells.items():
            group = _group(zoo)
            if group is None:
                row[zoo] = (delta, sig, int(sig < 0))
            else:
                groups.setdefault(group, []).append((delta, sig))
        for g, v in groups.items():
            below = sum(s < 0 for _, s in v)
            j = joint.get((method, g))
            mean = (j[0], j[1], below) if j else (float(np.mean([d for d, _ in v])), None, below)
            row = {f"{g} (mean of {len(v)})": mean} | row
        out[method] = row
    return out


def _group(zoo: str) -> str | None:
    """The column a zoo's Δ is averaged into: MMLU-Pro's zoos and each release stream's steps; None = its own."""
    return "MMLU-Pro" if zoo in MMLU_PRO_ZOOS else zoo.split("@")[0] if "@" in zoo else None


def seeds_table(by_seed: dict[int, dict]) -> str:
    """Markdown: rows = methods (then each Model-SAT row head to head against the cheap routers), columns = zoo
    groups; each cell the Δ per seed, then their mean and the count of seeds whose CI is above / below zero; a
    mean over several zoos without a CI of its own counts its zoo-seed cells below zero instead."""
    deltas = {seed: seed_deltas(r) for seed, r in by_seed.items()}
    methods = list(dict.fromkeys(m for d in deltas.values() for m in d))
    methods = [m for m in methods if " − " not in m] + [m for m in methods if " − " in m]
    columns = list(dict.fromkeys(c for d in deltas.values() for m in d.values() for c in m))
    seeds = list(by_seed)
    lines = [f"Δ vs best single (points) per seed {seeds}, then the mean; rows 'A − B': Model-SAT row A head to "
             "head with router B. [n+ / n−] = seeds significantly above / below zero; [k of n below] = zoo cells "
             "(zoo × seed) of a mean significantly below zero", "",
             "| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for m in methods:
        cells = []
        for c in columns:
            vals = [deltas[s].get(m, {}).get(c) for s in seeds]
            if any(v is None for v in vals):
                cells.append("")
                continue
            est = " / ".join(f"{v[0]:+.2f}" for v in vals)
            if any(v[1] is None for v in vals):
                n = int(c.rsplit(" (mean of ", 1)[1].rstrip(")")) * len(vals)
                sig = f" [{sum(v[2] for v in vals)} of {n} below]"
            else:
                sig = f" [{sum(v[1] > 0 for v in vals)}+ / {sum(v[1] < 0 for v in vals)}−]"
            cells.append(f"{est} → **{np.mean([v[0] for v in vals]):+.2f}**{sig}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help='a configuration: NAME=\'{"train": {...}, "model": {...}}\' (repeatable)')
    ap.add_argument("--prior-variant", action="append", default=[], metavar="NAME=JSON",
                    help='the profile prior alone with these parameters, as router profile-prior:NAME, e.g. '
                         'routing=\'{"select": "routing"}\' (repeatable)')
    ap.add_argument("--preset", default="quick", help="the preset the overrides apply to")
    ap.add_argument("--zoos", default="smaller-scale,smaller-mixed,middle-mixed,larger-mixed,high-performance,"
                                      "routerdc-in-domain,routerdc-out-of-domain")
    ap.add_argument("--baselines", default=BASELINES)
    ap.add_argument("--out", type=Path, default=Path("runs/compare-modelsat"))
    ap.add_argument("--seed", type=int, default=0)
    from modelsat.aptitude.core_items import ITEM_RULES
    ap.add_argument("--aptitude-rule", default="distinguishing", choices=ITEM_RULES,
                    help="how the aptitude test chooses each subject's items (every profile-reading router sees it)")
    ap.add_argument("--test-items", type=int, default=None,
                    help="at most this many test items per benchmark and zoo; 0 = all (default: the quick 600)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds: run once per seed and print the table "
                                                   "of Δ per seed and their mean (overrides --seed)")
    ap.add_argument("--retable", action="store_true",
                    help="run nothing: rebuild OUT/seeds.md from the OUT/seed-N/results.json files already there")
    args = ap.parse_args()
    if args.retable:
        files = sorted(args.out.glob("seed-*/results.json"), key=lambda f: int(f.parent.name.split("-", 1)[1]))
        if not files:
            ap.error(f"--retable: no {args.out}/seed-N/results.json")
        table = seeds_table({int(f.parent.name.split("-", 1)[1]): json.loads(f.read_text()) for f in files})
        (args.out / "seeds.md").write_text(table)
        print(table)
        return
    if not args.variant and not args.prior_variant:
        ap.error("give at least one --variant or --prior-variant")
    names = [prior_variant_router(*_named_json(ap, "--prior-variant", spec)).name for spec in args.prior_variant]
    names += [variant_router(n, args.preset, o).name
              for n, o in (_named_json(ap, "--variant", spec) for spec in args.variant)]
    zoos = resolve_zoos(args.zoos)
    console = Console()
    if args.seeds is None:
        results = run_benchmark(zoos, args.baselines.split(",") + names, args.out, seed=args.seed, quick=True,
                                console=console, save_routers=False, test_items=args.test_items,
                                aptitude_rule=args.aptitude_rule)
        print_report(results, console)
        write_report(results, args.out)
        return
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--seeds wants integers separated by commas, got {args.seeds!r}")
    by_seed = {}
    for seed in seeds:
        out = args.out / f"seed-{seed}"
        by_seed[seed] = run_benchmark(zoos, args.baselines.split(",") + names, out, seed=seed, quick=True,
                                      console=console, save_routers=False, test_items=args.test_items,
                                      aptitude_rule=args.aptitude_rule)
        write_report(by_seed[seed], out)
        table = seeds_table(by_seed)     # rewritten after every seed, so a stopped run keeps what it measured
        (args.out / "seeds.md").write_text(table)
        console.print(f"[green]seed {seed} done[/]: {out}")
    print(table)


if __name__ == "__main__":
    main()
