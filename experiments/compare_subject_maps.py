"""The two shipped subject maps as the profile prior's input, side by side, on development items.

    python experiments/compare_subject_maps.py [--data-dir DIR]

Development items: MMLU-Pro TRAINING items (harness split, seed 0, 70/10/20) that are not core items of the
aptitude test, so no profile read them, and no test item is touched. Profiles: the aptitude test built on
training items (as scripts/build_default_zoo.py does); kappa fitted on validation items. For each of the five
MMLU-Pro zoos prints the profile prior's routed accuracy minus the best single model on the same items, with a
paired bootstrap 95 % CI, for the centroid map on MiniLM embeddings and the linear map on static features.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # build_default_zoo.py stays a user script
from build_default_zoo import build_profiles, load_data, mmlu_pro_zoos  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    from modelsat.evaluate import metrics
    from modelsat.routers.profile_prior import ProfilePrior, prior_scores
    from modelsat.routers.subject_map import FEATURES

    rec, _ = load_data(args.data_dir)
    zoos = mmlu_pro_zoos()
    models = sorted({m for zoo in zoos.values() for m in zoo})
    test, profiles = build_profiles(rec, models, label="mmlu_pro training split")
    core = {item.item_id for _, item in test.items()}
    rec = rec[rec["model"].isin(models)]
    val = rec[rec["split"] == "val"]
    dev = rec[(rec["split"] == "train") & ~rec["item_id"].isin(core)]
    items = dev.drop_duplicates("item_id")[["item_id", "prompt"]].reset_index(drop=True)
    table = dev.pivot_table(index="item_id", columns="model", values="score").reindex(index=items["item_id"])
    print(f"{len(items)} development items (training split minus the {len(core)} aptitude-test items)")
    print(f"{'map':8s} {'kappa':>6s}  " + "  ".join(f"{z:>24s}" for z in zoos) + "  mean Δ")
    for features in FEATURES:
        router = ProfilePrior(fit_temperature=False, features=features).fit(val, list(profiles.values()))
        sm = router._map()
        w = sm.weights(items["prompt"].tolist())
        cells, deltas = [], []
        for zmodels in zoos.values():
            s = table[zmodels]
            ok = s.notna().all(axis=1).to_numpy()
            scores = s.to_numpy()[ok]
            p = prior_scores(items["prompt"][ok].tolist(), [profiles[m] for m in zmodels], sm,
                             kappa=router.kappa_, weights=w[ok])
            d = metrics.paired_bootstrap(metrics.routed_scores(scores, p.argmax(1)),
                                         metrics.single_scores(scores, metrics.best_single_index(scores)))
            cells.append(f"{100 * d.estimate:+.2f} [{100 * d.low:+.2f}, {100 * d.high:+.2f}]")
            deltas.append(100 * d.estimate)
        print(f"{features:8s} {router.kappa_:6.1f}  " + "  ".join(f"{c:>24s}" for c in cells)
              + f"  {np.mean(deltas):+.2f}")


if __name__ == "__main__":
    sys.exit(main())
