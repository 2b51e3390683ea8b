"""Routing metrics on a test score matrix, pure numpy: every figure the benchmark reports.

Conventions: `scores` is an (n_items, n_models) array of per-item scores in [0, 1] (no NaN: the harness keeps
only items every zoo model answered); `picks` is an (n_items,) array of chosen column indices; `groups` is an
(n_items,) array of benchmark names. "Mean" is the macro mean over groups (the paper's and RouterDC's "Mean"
column: each benchmark counts once, however many items it has).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# ---- per-item outcomes ------------------------------------------------------------------------------------------
def routed_scores(scores: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """The score each item gets when routed to its picked model."""
    scores = np.asarray(scores, dtype=float)
    picks = np.asarray(picks, dtype=int)
    return scores[np.arange(len(picks)), picks]


def oracle_scores(scores: np.ndarray) -> np.ndarray:
    """Per item, the best score any model of the zoo gets (the upper bound of routing)."""
    return np.asarray(scores, dtype=float).max(axis=1)


def random_scores(scores: np.ndarray) -> np.ndarray:
    """Per item, the expected score of a uniformly random choice (the mean over models; no sampling noise)."""
    return np.asarray(scores, dtype=float).mean(axis=1)


def single_scores(scores: np.ndarray, column: int) -> np.ndarray:
    """Per item, the score of always using one model."""
    return np.asarray(scores, dtype=float)[:, column]


# ---- choosing references on training items -------------------------------------------------------------------------
def best_single_index(train_scores: np.ndarray, train_groups: np.ndarray | None = None) -> int:
    """Column of the model with the highest (macro-over-groups) mean on the training items; ties -> first."""
    train_scores = np.asarray(train_scores, dtype=float)
    if train_groups is None:
        return int(np.argmax(np.nanmean(train_scores, axis=0)))
    per_group = np.stack([np.nanmean(train_scores[train_groups == g], axis=0) for g in np.unique(train_groups)])
    return int(np.argmax(np.nanmean(per_group, axis=0)))


def per_group_best_picks(train_scores: np.ndarray, train_groups: np.ndarray, test_groups: np.ndarray,
                         fallback: int) -> tuple[np.ndarray, list[str]]:
    """Per test item, the model best on the training items of its group (benchmark or category).

    A test group with no training items gets `fallback` (the best single model); their names are returned.
    """
    train_scores = np.asarray(train_scores, dtype=float)
    picks = np.full(len(test_groups), fallback, dtype=int)
    missing: list[str] = []
    for g in np.unique(test_groups):
        mask = train_groups == g
        if mask.any():
            picks[test_groups == g] = int(np.argmax(np.nanmean(train_scores[mask], axis=0)))
        else:
            missing.append(str(g))
    return picks, missing


# ---- aggregates ---------------------------------------------------------------------------------------------
def group_means(values: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean of `values` within each group, in sorted group order."""
    values = np.asarray(values, dtype=float)
    return {str(g): float(values[groups == g].mean()) for g in np.unique(groups)}


def macro_mean(values: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Mean over groups of the within-group means (plain mean when `groups` is None)."""
    values = np.asarray(values, dtype=float)
    if groups is None:
        return float(values.mean())
    return float(np.mean(list(group_means(values, groups).values())))


def gap_closed(routed: float, best_single: float, oracle: float) -> float:
    """Share of the best-single -> oracle gap that routing closes (negative when routing loses; NaN if no gap)."""
    gap = oracle - best_single
    return float((routed - best_single) / gap) if gap > 0 else float("nan")


def within_item_auc(scores: np.ndarray, truth: np.ndarray, groups: np.ndarray | None = None) -> tuple[float, int]:
    """(mean AUC, items counted): on each item, how well the router's scores rank the models that answered it
    (truth >= 0.5) above those that did not, after each model's mean score over the items is taken off.

    The means are taken in log-odds: scores that all lie in [0, 1] are read as probabilities and turned into
    log-odds first (clipped to [1e-4, 1 - 1e-4]). There a router that knows only each model's overall strength and each
    item's difficulty, additively (a Rasch model), ties every model on every item and gets 0.5; taken off in
    probabilities the same router would not (a strong model's probability falls more on a hard item). With
    `groups` (each item's benchmark) the means are taken within each group, so knowing which model is best at each
    benchmark (all per-benchmark best knows) also gets 0.5. Items every model answered, or none did, have no AUC
    and are left out. Ties count a half (the Mann-Whitney U statistic); centred scores equal to within 1e-9 are ties."""
    s = np.array(scores, dtype=np.float64)
    y = np.nan_to_num(np.asarray(truth, dtype=np.float64), nan=0.0) >= 0.5
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and truth {y.shape} differ in shape")
    if s.size and s.min() >= 0 and s.max() <= 1:
        p = np.clip(s, 1e-4, 1 - 1e-4)
        s = np.log(p / (1 - p))
    if groups is None:
        s -= s.mean(axis=0, keepdims=True)
    else:
        groups = np.asarray(groups)
        for g in np.unique(groups):
            k = groups == g
            s[k] -= s[k].mean(axis=0, keepdims=True)
    s = np.round(s, 9)                                      # float noise in a sum is no ranking
    pos = y.sum(axis=1)
    keep = (pos > 0) & (pos < y.shape[1])
    if not keep.any():
        return float("nan"), 0
    from scipy.stats import rankdata
    ranks = rankdata(s[keep], axis=1)                       # ties get their mean rank
    n_pos, n_neg = pos[keep], y.shape[1] - pos[keep]
    u = (ranks * y[keep]).sum(axis=1) - n_pos * (n_pos + 1) / 2
    return float(np.mean(u / (n_pos * n_neg))), int(keep.sum())


# ---- paired bootstrap --------------------------------------------------------------------------------------------
@dataclass
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def _stratified_indices(rng: np.random.Generator, strata: list[np.ndarray]) -> list[np.ndarray]:
    return [s[rng.integers(0, len(s), size=len(s))] for s in strata]


def paired_bootstrap(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None, n_resamples: int = 2000,
                     seed: int = 0, confidence: float = 0.95) -> Interval:
    """Percentile CI of macro_mean(a) − macro_mean(b), resampling items (within each group) with replacement.

    Paired: the same resampled items score both a and b, so item difficulty cancels out.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs equal shapes, got {a.shape} and {b.shape}")
    groups = np.zeros(len(a), dtype=int) if groups is None else np.asarray(groups)
    diff = a - b
    strata = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for r in range(n_resamples):
        idx = _stratified_indices(rng, strata)
        stats[r] = np.mean([diff[i].mean() for i in idx])
    alpha = (1 - confidence) / 2
    estimate = float(np.mean([diff[s].mean() for s in strata]))
    return Interval(estimate, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))


def bootstrap_weights(groups: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_items) weights: row r dotted with per-item values gives their macro mean over groups on
    resample r, drawn as `paired_bootstrap` draws its resamples (items with replacement within each group, the
    same generator and order, so the same seed gives the same resamples). For statistics that are not a
    difference of two means (a hull's area, a cost to reach), recomputed on every resample."""
    groups = np.asarray(groups)
    strata = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    out = np.zeros((n_resamples, len(groups)))
    for r in range(n_resamples):
        for s, idx in zip(strata, _stratified_indices(rng, strata)):
            out[r] += np.bincount(idx, minlength=len(groups)) / (len(s) * len(strata))
    return out


def percentile_interval(estimate: float, resampled: np.ndarray, confidence: float = 0.95) -> Interval:
    """The percentile interval of `resampled` statistics around `estimate` (the statistic on the items)."""
    alpha = (1 - confidence) / 2
    resampled = np.asarray(resampled, dtype=float)
    return Interval(float(estimate), float(np.quantile(resampled, alpha)), float(np.quantile(resampled, 1 - alpha)))


def seeded_paired_bootstrap(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None,
                            n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> Interval:
    """Percentile CI of macro_mean(a) − macro_mean(b) where `a` and `b` hold one row per training seed
    ((seeds, items) or (seeds, items, zoos); a method with no seeds passes one row). Each resample draws the
    items (within each group, the same items for both sides, as `paired_bootstrap` does) and, independently
    for each side, its seeds with replacement, so the interval holds the spread between seeds as well as
    between items. The estimate is the difference of the means over every seed."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"seeded bootstrap needs equal item shapes, got {a.shape[1:]} and {b.shape[1:]}")
    n = a.shape[1]
    groups = np.zeros(n, dtype=int) if groups is None else np.asarray(groups)
    strata = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for r in range(n_resamples):
        idx = _stratified_indices(rng, strata)
        sa = a[rng.integers(0, len(a), size=len(a))].mean(axis=0)
        sb = b[rng.integers(0, len(b), size=len(b))].mean(axis=0)
        diff = sa - sb
        stats[r] = np.mean([diff[i].mean() for i in idx])
    alpha = (1 - confidence) / 2
    diff = a.mean(axis=0) - b.mean(axis=0)
    estimate = float(np.mean([diff[s].mean() for s in strata]))
    return Interval(estimate, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))


# ---- RouteLLM's metrics (strong/weak pair) ---------------------------------------------------------------------------
@dataclass
class CallCurve:
    """Quality as the share of calls to the strong model grows (RouteLLM, "Evaluation")."""

    strong_share: np.ndarray   # in [0, 1], increasing
    quality: np.ndarray        # mean score at that share


def strong_call_curve(strong_preference: np.ndarray, strong: np.ndarray, weak: np.ndarray,
                      n_points: int = 101) -> CallCurve:
    """Routes the items the router prefers most for the strong model to it, at n_points shares from 0 to 1.

    At share s the top round(s·n) items by `strong_preference` go to the strong model (ties broken by item
    order, stable), the rest to the weak one. RouteLLM sweeps thresholds at quantiles of its win-rate; this is
    the same curve sampled on an even grid of shares.
    """
    strong = np.asarray(strong, dtype=float)
    weak = np.asarray(weak, dtype=float)
    n = len(strong)
    order = np.argsort(-np.asarray(strong_preference, dtype=float), kind="stable")
    # quality when the first k of `order` go to the strong model, for every k = 0..n
    gain = np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
    shares = np.linspace(0.0, 1.0, n_points)
    ks = np.rint(shares * n).astype(int)
    quality = (weak.sum() + gain[ks]) / n
    return CallCurve(shares, quality)


def apgr(curve: CallCurve, strong_quality: float, weak_quality: float) -> float:
    """Average performance gap recovered: area under the PGR curve over strong-call share in [0, 1].

    PGR(s) = (quality(s) − weak) / (strong − weak); the area is by the trapezoidal rule, as RouteLLM's
    `apgr_metric` (which integrates quality and rescales, the same number).
    """
    gap = strong_quality - weak_quality
    if gap <= 0:
        return float("nan")
    pgr = (curve.quality - weak_quality) / gap
    x = curve.strong_share
    return float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def cpt(curve: CallCurve, strong_quality: float, weak_quality: float, target: float) -> float:
    """Call-performance threshold: the smallest strong-call share at which quality reaches
    weak + target × (strong − weak), interpolated linearly between grid points (RouteLLM's "CPT(x %)").

    NaN when the curve never reaches it.
    """
    goal = weak_quality + target * (strong_quality - weak_quality)
    return first_crossing(curve.strong_share, curve.quality, goal)


def first_crossing(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """The smallest x at which y reaches `target`, interpolated linearly between the points before and at the
    first one that reaches it (x[0] when the first point already does); NaN when no point does."""
    hit = np.flatnonzero(y >= target - 1e-12)
    if len(hit) == 0:
        return float("nan")
    j = int(hit[0])
    if j == 0:
        return float(x[0])
    return float(x[j - 1] + (target - y[j - 1]) / (y[j] - y[j - 1]) * (x[j] - x[j - 1]))


# ---- cost ----------------------------------------------------------------------------------------------------
def routed_cost(costs: np.ndarray, picks: np.ndarray) -> float:
    """Mean cost per item of the picked models (NaN when any picked cost is unknown)."""
    c = np.asarray(costs, dtype=float)[np.arange(len(picks)), np.asarray(picks, dtype=int)]
    return float(c.mean()) if len(c) and not np.isnan(c).any() else float("nan")
