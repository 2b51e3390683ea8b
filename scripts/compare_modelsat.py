"""Model-SAT configurations side by side, with the cheap baselines, on the same held-out items of the same run.

Each `--variant NAME=JSON` is the quick preset (or `--preset`) with JSON overrides ({"train": {...},
"model": {...}}); every variant is registered as router `modelsat:NAME` for this run only and evaluated by the
benchmark harness (same splits, same test items, same bootstrap) beside profile-prior, per-category, kNN and the
best single model. Prints the summary tables and writes the usual results folder.

    python scripts/compare_modelsat.py --out runs/compare \
        --variant k='{}' --variant all='{"train": {"model_group": "all"}}' \
        --zoos smaller-scale,smaller-mixed,middle-mixed,larger-mixed,high-performance
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from modelsat.evaluate.benchmark import run_benchmark
from modelsat.evaluate.report import print_report, write_report
from modelsat.evaluate.zoos import resolve_zoos
from modelsat.routers.base import register
from modelsat.routers.modelsat.router import ModelSATRouter, resolve_preset

BASELINES = "best-single,random,oracle,profile-prior,per-category,knn"


def variant_router(name: str, preset: str, overrides: dict) -> type:
    """A registered subclass of the Model-SAT router whose quick parameters are `preset` + `overrides`."""
    resolve_preset(preset, overrides)   # fail now on a bad key, not after an hour of baselines
    cls = type(f"ModelSAT_{name}", (ModelSATRouter,), {"name": f"modelsat:{name}",
                                                         "quick_params": {"preset": preset, "overrides": overrides}})
    return register(cls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=JSON",
                    help='a configuration: NAME=\'{"train": {...}, "model": {...}}\' (repeatable)')
    ap.add_argument("--preset", default="quick", help="the preset the overrides apply to")
    ap.add_argument("--zoos", default="smaller-scale,smaller-mixed,middle-mixed,larger-mixed,high-performance,"
                                      "routerdc-in-domain,routerdc-out-of-domain")
    ap.add_argument("--baselines", default=BASELINES)
    ap.add_argument("--out", type=Path, default=Path("runs/compare-modelsat"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = []
    for spec in args.variant:
        name, _, text = spec.partition("=")
        if not name or not text:
            ap.error(f"--variant wants NAME=JSON, got {spec!r}")
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as exc:
            ap.error(f"--variant {name}: not JSON ({exc})")
        names.append(variant_router(name, args.preset, overrides).name)
    zoos = resolve_zoos(args.zoos)
    console = Console()
    results = run_benchmark(zoos, args.baselines.split(",") + names, args.out, seed=args.seed, quick=True,
                            console=console, save_routers=False)
    print_report(results, console)
    write_report(results, args.out)


if __name__ == "__main__":
    main()
