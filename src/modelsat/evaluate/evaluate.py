"""`modelsat evaluate`: one saved router on records, profiles and a zoo it may never have seen."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from modelsat import records as R
from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError
from modelsat.evaluate import harness as H
from modelsat.evaluate.splits import apply_splits, read_splits
from modelsat.evaluate.zoos import adhoc_zoo, load_zoo
from modelsat.routers.base import Router


def read_profiles(paths: Sequence[Path]) -> dict[str, Profile]:
    """Profiles from JSON files and folders of them, by model name."""
    out: dict[str, Profile] = {}
    for p in paths:
        files = sorted(Path(p).glob("*.json")) if Path(p).is_dir() else [Path(p)]
        if not files:
            raise ModelsatError(f"{p}: no profile JSON files")
        for f in files:
            prof = Profile.load(f)
            out[prof.model] = prof
    return out


def evaluate_router_dir(router_dir: Path, records_files: Sequence[Path], profile_paths: Sequence[Path],
                        zoo_file: Path | None = None, models: str | None = None, split: str | None = None,
                        splits_file: Path | None = None, seed: int = 0) -> dict:
    """The zoo's table entry (references, the router's row with Δ and CI) for a saved router."""
    if (zoo_file is None) == (models is None):
        raise ModelsatError("give exactly one of --zoo FILE or --models a,b,c")
    zoo = load_zoo(zoo_file) if zoo_file else adhoc_zoo([m.strip() for m in models.split(",") if m.strip()])
    recs = R.concat([R.read(f) for f in records_files])
    if splits_file:
        recs = apply_splits(recs, read_splits(splits_file))
        recs = recs[recs["eval_split"].notna()]
    elif split:
        if "split" not in recs.columns:
            raise ModelsatError(f"--split {split}: the records have no `split` column")
        recs = recs[recs["split"] == split].assign(eval_split="test")
    else:
        recs = recs.assign(eval_split="test")
    if len(recs) == 0:
        raise ModelsatError("no records left to evaluate after the split filter")
    profiles = read_profiles(profile_paths)
    missing = [m for m in zoo.model_names if m not in profiles]
    if missing:
        raise ModelsatError(f"no profile for zoo model(s) {', '.join(missing)}; profiles given for "
                            f"{', '.join(sorted(profiles))}")
    router = Router.load(router_dir)
    trained_on = getattr(router, "models_", None) or []
    family = H.Family(name="evaluate", records=recs, splits=pd.DataFrame(), train_models=list(trained_on),
                      profiles=profiles, profile_method="given", zoos=[zoo])
    zd = H.build_zoo_data(family, zoo, seed=seed)
    entry = {"zoo": zoo.to_dict(), "family": "evaluate", "router_dir": str(router_dir),
             "n_test_items": len(zd.prompts),
             "n_test_items_per_benchmark": {b: int((zd.groups == b).sum()) for b in sorted(set(zd.groups))},
             "best_single_model": zd.best_single, "notes": zd.notes, "rows": H.reference_rows(zd, seed),
             "single_models": H.single_model_rows(zd), "published": {}}
    row, s = H.router_row(router.name, router, zd, profiles, family, seed)
    entry["rows"].append(row)
    calibrator = getattr(router, "calibrator_", None)
    if s is not None and H.has_costs(zd) and (calibrator is not None or router.scores_are_probabilities):
        # the router's own calibrated P (kept in its folder) under the policies, charged the records' costs
        from modelsat.evaluate.cost import COST_BOOTSTRAP, cost_section
        p = calibrator.predict(s) if calibrator is not None else np.clip(s, 0.0, 1.0)
        pair = ((zd.models.index(zoo.strong), zd.models.index(zoo.weak)) if zoo.strong and zoo.weak else None)
        entry["cost"] = cost_section({router.name: p}, H.priced_items(zd), seed, COST_BOOTSTRAP, pair)
    return entry
