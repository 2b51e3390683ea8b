"""How much item-level skill is there to learn: the within-item AUC that half the models' results on an item give
for the other half.

A logistic model, logit P(model j answers item i) = a_j + b_i + u_i · v_j with u, v of rank r, is fitted on the
training items of a seed's split (every model of the source). On each test item, b_i and u_i are then estimated from
the results of a random half of the models on THAT item, and the other half are ranked by their predicted log-odds:
`metrics.within_item_auc` over that half (each model's mean taken off, 0.5 = no item-level skill), the mean over
`--halvings` random halvings. It reads test labels of other models, so it is no router: it measures what half the
models' results on an item reveal about how the other half will do on it, beyond each model's strength and each
item's difficulty, in a structure of rank r. Rank 0 (strength and difficulty alone, a Rasch model) gives 0.5 by
construction. It is a reference, not a strict bound: the item's traits are estimated from a dozen 0/1 results (on
planted rank-1 data, tests/test_item_level_ceiling.py, it gives ~0.60 where the true log-odds give ~0.70), and a
router that reads the item's text could in principle know more. Compare with the AUCs that
`scripts/decompose_modelsat.py` prints for each stage of a router and for the baselines on the same seed.

    python scripts/item_level_ceiling.py [--source mmlu_pro] [--seed 5] [--ranks 0,1,2,4] [--halvings 10]

Session 25, MMLU-Pro seed 5 (23 models; the 7,259 training and 2,061 test items every model answered; ~1 min): rank 0 0.500, rank 1 0.556,
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


def ceiling(train: np.ndarray, test: np.ndarray, rank: int, halvings: int = 10) -> list[float]:
    """The held-out half's within-item AUC on `test`, one value per random halving of the models."""
    from modelsat.evaluate.metrics import within_item_auc
    a, v = fit_models(train, rank)
    m, out = train.shape[1], []
    for rep in range(halvings):
        order = np.random.default_rng(100 + rep).permutation(m)
        seen, rest = order[: m // 2], order[m // 2:]
        out.append(within_item_auc(predict_rest(test, a, v, seen, rest), test[:, rest])[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--source", default="mmlu_pro")
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
    from modelsat.evaluate.splits import apply_splits, assign_splits
    from modelsat.paths import data_dir
    records = sources.load(args.source, data=data_dir(args.data_dir))
    records = apply_splits(records, assign_splits(records, seed=args.seed))
    table = records.pivot_table(index=["eval_split", "item_id"], columns="model", values="score")
    train = (table.loc["train"].dropna().to_numpy() >= 0.5).astype(float)
    test = (table.loc["test"].dropna().to_numpy() >= 0.5).astype(float)
    print(f"{args.source}, split seed {args.seed}: {train.shape[1]} models, {len(train)} training and {len(test)} test "
          "items (each with every model's result)")
    print("| rank | within-item AUC of the held-out half (mean) | over the halvings |")
    print("|---:|---:|---:|")
    for r in ranks:
        aucs = ceiling(train, test, r, args.halvings)
        print(f"| {r} | {np.mean(aucs):.3f} | {min(aucs):.3f}–{max(aucs):.3f} |", flush=True)


if __name__ == "__main__":
    main()
