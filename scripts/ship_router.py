"""Makes a trained Model-SAT router the one that ships: copies it into the package and memoises each default-zoo
candidate's centring offset (and level) in its config.json, so `modelsat route` pays no per-candidate forwards.

    modelsat train --config configs/prior.yaml --out runs/prior          # the default: the prior alone
    python scripts/ship_router.py runs/prior/router --calibrate
    modelsat train --config configs/cpu-default.yaml --out runs/ship     # with the learned correction
    python scripts/ship_router.py runs/ship/router

The copy replaces the package's shipped folder of its kind (src/modelsat/shipped/modelsat-prior/ for a router with
no learned correction, modelsat-cpu-default/ otherwise; or `--dest`). It prints the folder's size against the
20 MB bound of the shipped router and how long the memoised work took (what a new candidate costs once).

`--calibrate` fits the router's calibrator (`Router.calibrate`, auto: Platt or isotonic) on the validation items of
the split it was trained on (MMLU-Pro, `--split-seed`, the default of `modelsat train`) for its training models,
and prints ECE (15 bins) and Brier score on that split's test items before and after: the shipped router then
gives a calibrated probability of a good answer (`modelsat route`, the proxy's x-modelsat-p).
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
from modelsat.routers.modelsat.router import SHIPPED_LM_NAME, SHIPPED_NAME, ModelSATRouter, shipped_router_dir

MAX_BYTES = 20_000_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("router", type=Path, help="a router folder written by `modelsat train` (OUT/router)")
    ap.add_argument("--dest", type=Path, default=None, help="where it goes (default: the package's shipped folder)")
    ap.add_argument("--calibrate", action="store_true", help="fit its calibrator on the training split's "
                    "validation items and print ECE / Brier on its test items")
    ap.add_argument("--split-seed", type=int, default=0, help="the split the router was trained on (default 0)")
    args = ap.parse_args()
    try:
        router = ModelSATRouter.load(args.router)  # refuses a folder that is not a Model-SAT router, before copying
    except ModelsatError as exc:
        sys.exit(f"ship_router: {exc}")
    dest = args.dest or shipped_router_dir(SHIPPED_NAME if router.prior_only else SHIPPED_LM_NAME)
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
    if args.calibrate:
        calibrate(router, dest, args.split_seed)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"{dest}: {size / 1e6:.2f} MB (bound {MAX_BYTES / 1e6:.0f} MB); memoised {len(cands)} candidates of "
          f"zoo {zoo} in {seconds:.1f} s ({len(router.center_prompts_)} centring instructions)")
    if size > MAX_BYTES:
        sys.exit("ship_router: the shipped router is over its size bound")


def calibrate(router: ModelSATRouter, dest: Path, split_seed: int) -> None:
    """Fits the router's calibrator on the MMLU-Pro validation items of `split_seed` (its training models),
    writes it into `dest` and prints ECE / Brier on that split's test items before and after."""
    import numpy as np
    from modelsat import sources
    from modelsat.calibration import brier_score, expected_calibration_error
    from modelsat.evaluate.splits import apply_splits, assign_splits
    records = sources.load("mmlu_pro")
    records = apply_splits(records, assign_splits(records, seed=split_seed))
    profiles = list(router.records_profiles_)
    val = records[records["eval_split"] == "validation"].drop(columns="eval_split")
    test = records[records["eval_split"] == "test"].drop(columns="eval_split")
    scores, outcomes, _ = router._calibration_pairs(test, profiles)
    before = np.clip(scores, 0, 1) if router.scores_are_probabilities else 1 / (1 + np.exp(-scores))
    t0 = time.perf_counter()
    router.calibrate(val, profiles)
    after = router.calibrator_.predict(scores)
    router.save_calibration(dest)
    print(f"calibrated on {val['item_id'].nunique()} validation items x {len(profiles)} models in "
          f"{time.perf_counter() - t0:.0f} s ({router.calibrator_.to_dict().get('method')}); on "
          f"{test['item_id'].nunique()} test items: ECE {expected_calibration_error(before, outcomes):.4f} -> "
          f"{expected_calibration_error(after, outcomes):.4f}, Brier {brier_score(before, outcomes):.4f} -> "
          f"{brier_score(after, outcomes):.4f}")


if __name__ == "__main__":
    main()
