"""Measures the profile prior as a router on the five MMLU-Pro zoos; prints a table and writes JSON.

    python experiments/measure_profile_prior.py [--data-dir DIR] [--out results/profile_prior.json]

Same items and splits as scripts/build_default_zoo.py (the harness's assign_splits, seed 0, 70/10/20):
- profiles from TRAINING items only, two kinds: the aptitude test (50 subjects x 20 core items chosen on
  training items; the paper's profile) and a stand-in that uses every training item of each ori_mmlu subject;
- kappa fitted on VALIDATION items; the subject map is a shipped one (`--features`; temperature fitted on
  training items);
- routed accuracy on TEST items (all 14 categories) vs best single (chosen on training), per-category best
  (chosen on training) and the oracle; paired bootstrap 95 % CIs of each difference to the best single model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # build_default_zoo.py stays a user script
from build_default_zoo import build_profiles, load_data, mmlu_pro_zoos  # noqa: E402


def main(argv=None) -> None:
    import torch
    torch.set_num_threads(1)
    from modelsat.evaluate import metrics
    from modelsat.routers.profile_prior import ProfilePrior, prior_scores, profile_from_records
    from modelsat.routers.subject_map import shipped

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="results/profile_prior.json")
    from modelsat.routers.subject_map import FEATURES
    ap.add_argument("--features", default="minilm", choices=FEATURES,
                    help="the shipped subject map: centroid on MiniLM (default) or linear on static features")
    args = ap.parse_args(argv)

    rec, _ = load_data(args.data_dir)
    ZOOS = mmlu_pro_zoos()
    models = sorted({m for zoo in ZOOS.values() for m in zoo})
    # the aptitude test is chosen on every model's training answers, as scripts/build_default_zoo.py does
    apt_test, apt_profiles = build_profiles(rec, models, label="mmlu_pro training split")
    rec = rec[rec["model"].isin(models)]
    train, val, test = (rec[rec["split"] == s] for s in ("train", "val", "test"))
    mmlu_subjects = sorted(train.loc[train["source"].fillna("").str.startswith("ori_mmlu-"), "subject"].unique())
    standin = {m: profile_from_records(train, m, mmlu_subjects, test_version="train-items-stand-in")
               for m in models}
    sm = shipped(args.features)
    test_items = test.drop_duplicates("item_id")[["item_id", "prompt", "category", "source"]].reset_index(drop=True)
    w_test = sm.weights(test_items["prompt"].tolist())

    out = {"subject_map": sm.provenance, "aptitude_test": apt_test.version, "zoos": {}}
    for kind, profiles in (("aptitude-test profile", apt_profiles), ("all-train-items stand-in", standin)):
        router = ProfilePrior(fit_temperature=False)
        router.subject_map_ = sm
        router.fit(val, list(profiles.values()))
        print(f"\n== {kind}: kappa = {router.kappa_} (fitted on validation items)")
        print(f"{'zoo':18s} {'n':>5s} {'best1':>6s} {'percat':>6s} {'prior':>6s} {'oracle':>6s}  "
              f"{'prior-best1 [95% CI]':>24s}  {'percat-best1 [95% CI]':>24s}  {'prior-percat [95% CI]':>24s}")
        for zoo, zmodels in ZOOS.items():
            S_test = test.pivot_table(index="item_id", columns="model", values="score").reindex(
                index=test_items["item_id"], columns=zmodels)
            ok = S_test.notna().all(axis=1).to_numpy()
            S = S_test.to_numpy()[ok]
            cats = test_items["category"].to_numpy()[ok]
            S_train = train.pivot_table(index="item_id", columns="model", values="score")[zmodels].dropna()
            train_cats = train.drop_duplicates("item_id").set_index("item_id").loc[S_train.index, "category"]
            best = metrics.best_single_index(S_train.to_numpy())
            percat_picks, _ = metrics.per_group_best_picks(S_train.to_numpy(), train_cats.to_numpy(), cats, best)
            P = prior_scores(test_items["prompt"][ok].tolist(), [profiles[m] for m in zmodels], sm,
                             kappa=router.kappa_, weights=w_test[ok])
            picks = P.argmax(1)
            routed = metrics.routed_scores(S, picks)
            single = metrics.single_scores(S, best)
            percat = metrics.routed_scores(S, percat_picks)
            oracle = metrics.oracle_scores(S)
            d_prior = metrics.paired_bootstrap(routed, single)
            d_cat = metrics.paired_bootstrap(percat, single)
            d_pc = metrics.paired_bootstrap(routed, percat)
            share = {m: float((picks == j).mean()) for j, m in enumerate(zmodels)}
            # the profiles cover MMLU subjects only: split the difference by the item's origin
            mmlu_origin = test_items["source"].fillna("").str.startswith("ori_mmlu-").to_numpy()[ok]
            by_origin = {name: metrics.paired_bootstrap(routed[mask], single[mask]).to_dict()
                         for name, mask in (("ori_mmlu", mmlu_origin), ("other", ~mmlu_origin))}
            row = {"n_test_items": int(ok.sum()), "best_single_model": zmodels[best],
                   "best_single": float(single.mean()), "per_category_best": float(percat.mean()),
                   "profile_prior": float(routed.mean()), "oracle": float(oracle.mean()),
                   "prior_minus_best_single": d_prior.to_dict(), "per_category_minus_best_single": d_cat.to_dict(),
                   "prior_minus_per_category": d_pc.to_dict(),
                   "gap_closed": metrics.gap_closed(float(routed.mean()), float(single.mean()),
                                                    float(oracle.mean())),
                   "pick_share": share, "prior_minus_best_single_by_origin": by_origin}
            out["zoos"].setdefault(kind, {})[zoo] = row

            def ci(i):
                return f"{100 * i.estimate:+5.1f} [{100 * i.low:+5.1f}, {100 * i.high:+5.1f}]"
            print(f"{zoo:18s} {ok.sum():5d} {100 * single.mean():6.1f} {100 * percat.mean():6.1f} "
                  f"{100 * routed.mean():6.1f} {100 * oracle.mean():6.1f}  {ci(d_prior):>24s}  {ci(d_cat):>24s}  "
                  f"{ci(d_pc):>24s}")
            print(f"{'':18s} picks: " + ", ".join(f"{m} {100 * s:.0f}%" for m, s in share.items() if s > 0))
            print(f"{'':18s} prior-best1 on ori_mmlu items {ci(metrics.Interval(**by_origin['ori_mmlu']))}, "
                  f"on other items {ci(metrics.Interval(**by_origin['other']))}")
        out.setdefault("kappa", {})[kind] = router.kappa_
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
