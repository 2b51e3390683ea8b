"""How much item-level skill is there to learn: the within-item AUC that half the models' results on an item give
for the other half.

A logistic model, logit P(model j answers item i) = a_j + b_i + u_i · v_j with u, v of rank r, is fitted on the
training items of a seed's split (every model of the source). On each test item, b_i and u_i are then estimated from
the results of a random half of the models on THAT item, and the other half are ranked by their predicted log-odds:
`metrics.within_item_auc` over that half (each model's mean taken off, 0.5 = no item-level skill), the mean over
`--halvings` random halvings. It reads test labels of other models, so it is no router: it measures what half the
models' results on an item reveal about how the other half will do on it, beyond each model's strength and each
item's difficulty, in a structure of rank r. Rank 0 (strength and difficulty alone, a Rasch model) gives 0.5 by
construction. Where the test items span several benchmarks (RouterDC) a last column takes the means off within
each benchmark, as decompose's second AUC does. It is a reference, not a strict bound: the item's traits are estimated from a dozen 0/1 results (on
planted rank-1 data, tests/test_item_level_ceiling.py, it gives ~0.60 where the true log-odds give ~0.70), and a
router that reads the item's text could in principle know more. Compare with the AUCs that
`experiments/decompose_modelsat.py` prints for each stage of a router and for the baselines on the same seed.

    python experiments/item_level_ceiling.py [--source mmlu_pro | --zoo routerdc-in-domain] [--seed 5] [--ranks 0,1,2,4]

Measured on 2026-12-06 (commit 2b04a3b), MMLU-Pro seed 5 (23 models; the 7,259 training and 2,061 test items every model answered; ~1 min): rank 0 0.500, rank 1 0.556,
rank 2 0.584, rank 4 0.587.
"""

from __future__ import annotations

import argparse

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_models(y: np.ndarray, rank: int, steps: int = 600, lr: float = 0.5, l2: float = 1e-3,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a (m,), v (m, rank)): the models' strengths and latent vectors, by gradient descent on the mean log loss of
    the (items, models) 0/1 matrix `y` (items' b and u are fitted alongside and dropped)."""
    rng = np.random.default_rng(seed)
    n, m = y.shape
    a, b = np.zeros(m), np.zeros(n)
    u, v = 0.1 * rng.normal(size=(n, rank)), 0.1 * rng.normal(size=(m, rank))
    for _ in range(steps):
        g = _sigmoid(a + b[:, None] + u @ v.T) - y
        a -= lr * g.mean(axis=0)
        b -= lr * g.mean(axis=1)
        if rank:
            gu, gv = g @ v / m + l2 * u, g.T @ u / n + l2 * v
            u -= 5 * lr * gu
            v -= 5 * lr * gv
    return a, v


def predict_rest(y: np.ndarray, a: np.ndarray, v: np.ndarray, seen: np.ndarray, rest: np.ndarray,
                 steps: int = 300, lr: float = 0.5, l2: float = 0.5) -> np.ndarray:
    """(n, len(rest)) log-odds of the `rest` models on each item of `y`, from each item's b and u estimated on the
    results of the `seen` models alone (u shrunk toward 0 by `l2`)."""
    n, rank = len(y), v.shape[1]
    b, u = np.zeros(n), np.zeros((n, rank))
    for _ in range(steps):
        g = _sigmoid(a[seen] + b[:, None] + u @ v[seen].T) - y[:, seen]
        b -= lr * g.mean(axis=1)
        if rank:
            u -= lr * (g @ v[seen] + l2 * u) / len(seen)
    return a[rest] + b[:, None] + u @ v[rest].T


def ceiling(train: np.ndarray, test: np.ndarray, rank: int, halvings: int = 10,
            groups: np.ndarray | None = None) -> list[float]:
    """The held-out half's within-item AUC on `test`, one value per random halving of the models (with `groups`,
    each test item's benchmark, the models' means are taken off within each benchmark)."""
    from modelsat.evaluate.metrics import within_item_auc
    a, v = fit_models(train, rank)
    m, out = train.shape[1], []
    for rep in range(halvings):
        order = np.random.default_rng(100 + rep).permutation(m)
        seen, rest = order[: m // 2], order[m // 2:]
        out.append(within_item_auc(predict_rest(test, a, v, seen, rest), test[:, rest], groups)[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--source", default="mmlu_pro", help="the records source (every model of it), unless --zoo")
    ap.add_argument("--zoo", default=None, help="a zoo instead (its source, models and test benchmarks), e.g. "
                                                "routerdc-in-domain: a source whose models answered different items")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=5, help="the benchmark split's seed")
    ap.add_argument("--ranks", default="0,1,2,4", help="comma-separated ranks of the latent structure")
    ap.add_argument("--halvings", type=int, default=10, help="random halvings of the models a rank is averaged over")
    args = ap.parse_args()
    try:
        ranks = [int(r) for r in args.ranks.split(",") if r.strip()]
    except ValueError:
        ap.error(f"--ranks: not comma-separated integers: {args.ranks!r}")
    if not ranks or min(ranks) < 0 or args.halvings < 1:
        ap.error("--ranks: one or more integers >= 0; --halvings >= 1")
    from modelsat import sources
    from modelsat.errors import ModelsatError
    from modelsat.evaluate.splits import apply_splits, assign_splits
    from modelsat.evaluate.zoos import resolve_zoos
    from modelsat.paths import data_dir
    zoo, source = None, args.source
    if args.zoo:
        try:
            (zoo,) = resolve_zoos(args.zoo)
        except (ModelsatError, ValueError) as exc:
            ap.error(f"--zoo: {exc}")
        source = zoo.source or zoo.family
    records = sources.load(source, data=data_dir(args.data_dir))
    if zoo is not None and not zoo.all_models:
        records = records[records["model"].isin(zoo.model_names)]
    records = apply_splits(records, assign_splits(records, seed=args.seed))
    table = records.pivot_table(index=["eval_split", "benchmark", "item_id"], columns="model", values="score")
    test_table = table.loc["test"].dropna()
    if zoo is not None:
        test_table = test_table[[zoo.selects_benchmark(b) for b in test_table.index.get_level_values("benchmark")]]
    train = (table.loc["train"].dropna().to_numpy() >= 0.5).astype(float)
    if not len(train) or not len(test_table) or train.shape[1] < 4:
        ap.error(f"{args.zoo or source}: needs training and test items that every model answered, and 4+ models")
    test = (test_table.to_numpy() >= 0.5).astype(float)
    groups = test_table.index.get_level_values("benchmark").to_numpy()
    several = len(set(groups)) > 1
    print(f"{args.zoo or source}, split seed {args.seed}: {train.shape[1]} models, {len(train)} training and {len(test)} test "
          f"items (each with every model's result), {len(set(groups))} test benchmark(s)")
    print("| rank | within-item AUC of the held-out half (mean) | over the halvings |"
          + (" within each benchmark (mean) |" if several else ""))
    print("|---:|---:|---:|" + ("---:|" if several else ""))
    for r in ranks:
        aucs = ceiling(train, test, r, args.halvings)
        within = f" {np.mean(ceiling(train, test, r, args.halvings, groups)):.3f} |" if several else ""
        print(f"| {r} | {np.mean(aucs):.3f} | {min(aucs):.3f}–{max(aucs):.3f} |{within}", flush=True)


if __name__ == "__main__":
    main()
