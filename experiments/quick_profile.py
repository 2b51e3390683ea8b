"""What does a short profile cost the shipped router? `modelsat profile --limit N` asks the first N items of the
shipped aptitude test (interleaved over its 50 subjects); this measures the routing lost against the whole test.

    python experiments/quick_profile.py                   # about 2 minutes on 2 cores (embedding cache warm)
    python experiments/quick_profile.py --limits 50,100,200,1000 --draws 5

Users' models are simulated by MMLU-Pro's 23 models, each known to the router ONLY by a profile read from its
own results on the shipped test's items (renamed m00..m22, so the router's per-model records never apply). For
each N, every model's profile rests on the first N items of the test (`aptitude.runner.plan`, as `--limit N`
asks them), and, with `--draws`, on N items drawn at random within subjects (the spread a different short
test would give). The shipped default router scores MMLU-Pro's test items of split seed 0 (never training
items of the router or of the aptitude test). Zoos: every 3-model zoo of the 23 (1,771 zoos) and the five
MMLU-Pro zoos of the benchmark. Printed per N: the mean over zoos of routed accuracy minus the best single
model (by test accuracy, a reference no router can know), minus the model whose profile is best (what a user
without a router would pick), and routed(N) minus routed(whole test), with a paired bootstrap CI over items for
the five named zoos.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd

from modelsat import sources
from modelsat.aptitude.from_records import profile_from_records
from modelsat.aptitude.runner import plan
from modelsat.aptitude.shipped import shipped_test
from modelsat.evaluate.splits import apply_splits, assign_splits
from modelsat.evaluate.zoos import resolve_zoos
from modelsat.routers.modelsat.router import shipped_router

NAMED = ["smaller-scale", "smaller-mixed", "middle-mixed", "larger-mixed", "high-performance"]


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def profiles_on(records: pd.DataFrame, models: list[str], test, keys: set) -> list:
    """Profiles of `models` on the test items in `keys` ((benchmark, item_id) pairs) only, renamed m00..."""
    keep = pd.Series(list(zip(records["benchmark"], records["item_id"])), index=records.index).isin(keys)
    recs = records[keep]
    out = []
    for i, m in enumerate(models):
        p = profile_from_records(recs, m, test, label="quick-profile experiment")
        p.model = f"m{i:02d}"
        out.append(p)
    return out


def first_keys(test, n: int) -> set:
    return {(t.item.benchmark, t.item.item_id) for t in plan(test, limit=n)}


def random_keys(test, n: int, rng: np.random.Generator) -> set:
    """n items drawn within subjects: the same number per subject as the first n would take."""
    per_subject: dict[str, int] = {}
    for t in plan(test, limit=n):
        per_subject[t.subject] = per_subject.get(t.subject, 0) + 1
    keys = set()
    for s in test.subjects:
        k = per_subject.get(s.name, 0)
        for j in rng.choice(len(s.items), size=k, replace=False):
            keys.add((s.items[j].benchmark, s.items[j].item_id))
    return keys


def zoo_figures(scores: np.ndarray, outcome: np.ndarray, prof_mean: np.ndarray, zoo: list[int]) -> dict:
    """(routed, best single, best-by-profile) accuracy on the items every zoo model answered."""
    sub = outcome[:, zoo]
    ok = ~np.isnan(sub).any(axis=1)
    sub, sc = sub[ok], scores[ok][:, zoo]
    picks = sc.argmax(axis=1)
    routed = sub[np.arange(len(sub)), picks]
    return {"routed": routed, "best": np.nanmax(sub.mean(axis=0)),
            "by_profile": sub[:, int(np.argmax(prof_mean[zoo]))].mean()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limits", default="50,100,150,200,1000", help="comma-separated N (1000 = the whole test)")
    ap.add_argument("--draws", type=int, default=3, help="random within-subject draws per N (0: first N only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boot", type=int, default=1000)
    args = ap.parse_args()
    limits = [int(x) for x in args.limits.split(",")]
    rng = np.random.default_rng(args.seed)

    say("loading MMLU-Pro and the shipped test")
    records = sources.load("mmlu_pro").drop(columns=["response"])
    records = apply_splits(records, assign_splits(records, seed=0))
    test = shipped_test()
    models = sorted(records["model"].unique())
    test_recs = records[records["eval_split"] == "test"]
    outcome_df = test_recs.pivot_table(index="item_id", columns="model", values="score", aggfunc="first")[models]
    prompts = test_recs.drop_duplicates("item_id").set_index("item_id")["prompt"].reindex(outcome_df.index)
    outcome = outcome_df.to_numpy(dtype=float)
    say(f"{len(models)} models, {len(outcome_df)} test items")
    router = shipped_router()
    zoos_all = [list(z) for z in itertools.combinations(range(len(models)), 3)]
    named = {z.name: [models.index(m) for m in z.model_names] for z in resolve_zoos(",".join(NAMED))}

    whole = first_keys(test, 10 ** 6)
    base_profiles = profiles_on(records, models, test, whole)
    base_scores = np.asarray(router.predict_proba(list(prompts), base_profiles))
    base_mean = np.array([p.mean_accuracy for p in base_profiles])
    base_routed = {k: zoo_figures(base_scores, outcome, base_mean, z)["routed"] for k, z in named.items()}

    rows = []
    for n in limits:
        variants = [("first", first_keys(test, n))]
        if n < len(whole):
            variants += [(f"draw{d}", random_keys(test, n, rng)) for d in range(args.draws)]
        for label, keys in variants:
            profs = profiles_on(records, models, test, keys)
            scores = np.asarray(router.predict_proba(list(prompts), profs))
            pmean = np.array([p.mean_accuracy for p in profs])
            d_best, d_prof = [], []
            for z in zoos_all:
                f = zoo_figures(scores, outcome, pmean, z)
                d_best.append(100 * (f["routed"].mean() - f["best"]))
                d_prof.append(100 * (f["routed"].mean() - f["by_profile"]))
            row = {"N": len(keys), "items": label, "routed-best (1771 zoos)": np.mean(d_best),
                   "zoos below best by >1pt": int(np.sum(np.array(d_best) < -1)),
                   "routed-by_profile": np.mean(d_prof)}
            diffs = []
            for k, z in named.items():
                f = zoo_figures(scores, outcome, pmean, z)
                d = f["routed"] - base_routed[k]
                idx = rng.integers(0, len(d), size=(args.boot, len(d)))
                lo, hi = np.percentile(100 * d[idx].mean(axis=1), [2.5, 97.5])
                row[k] = f"{100 * d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]"
                diffs.append(100 * d.mean())
            row["mean vs whole test"] = np.mean(diffs)
            rows.append(row)
            say(f"N={len(keys)} {label}: routed-best {np.mean(d_best):+.2f}, vs whole test {np.mean(diffs):+.2f}")
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:+.2f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
