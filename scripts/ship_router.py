"""Makes a trained Model-SAT router the one that ships: copies it into the package and memoises each default-zoo
candidate's centring offset (and level) in its config.json, so `modelsat route` pays no per-candidate forwards.

    modelsat train --config configs/cpu-default.yaml --out runs/ship
    python scripts/ship_router.py runs/ship/router

The copy replaces src/modelsat/shipped/modelsat-cpu-default/ (or `--dest`). It prints the folder's size against
the 20 MB bound of the shipped router and how long the memoised work took (what a new candidate costs once).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from modelsat.aptitude.profile import write_json_atomic
from modelsat.cli.route import load_zoo
from modelsat.errors import ModelsatError
from modelsat.routers.modelsat.router import ModelSATRouter, shipped_router_dir

MAX_BYTES = 20_000_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("router", type=Path, help="a router folder written by `modelsat train` (OUT/router)")
    ap.add_argument("--dest", type=Path, default=None, help="where it goes (default: the package's shipped folder)")
    args = ap.parse_args()
    dest = args.dest or shipped_router_dir()
    try:
        router = ModelSATRouter.load(args.router)  # refuses a folder that is not a Model-SAT router, before copying
    except ModelsatError as exc:
        sys.exit(f"ship_router: {exc}")
    zoo, cands = load_zoo(None)
    t0 = time.perf_counter()
    router.prepare(cands)
    seconds = time.perf_counter() - t0
    if dest.resolve() != args.router.resolve():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(args.router, tmp, ignore=shutil.ignore_patterns(".*"))
        shutil.rmtree(dest, ignore_errors=True)
        tmp.replace(dest)
    config = json.loads((dest / "config.json").read_text())
    config["memoised"] = router.memoised_state()
    write_json_atomic(config, dest / "config.json")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {size / 1e6:.2f} MB (bound {MAX_BYTES / 1e6:.0f} MB); memoised {len(cands)} candidates of "
          f"zoo {zoo} in {seconds:.1f} s ({len(router.center_prompts_)} centring instructions)")
    if size > MAX_BYTES:
        sys.exit("ship_router: the shipped router is over its size bound")


if __name__ == "__main__":
    main()
