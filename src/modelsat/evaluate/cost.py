"""Quality at a price: each router's cost–quality curve under the routing policies, and the figures read off it.

A router's calibrated probabilities P (n, m) and each candidate's expected cost (the policies' input, known
before routing: the model's mean cost per call on training items) are turned into choices by
`modelsat.policies`: `tradeoff` over a sweep of λ and `threshold` over a sweep of δ. Every choice is then
charged the item's own recorded cost (the truth: RouterBench's and LLMRouter's per-item USD, RouteLLM's per
call) and scored by the item's recorded outcome. Each knob value is one operating point (mean cost, mean
quality), both macro means over benchmarks (each benchmark counts once, as the accuracy tables do).

Figures (RouterBench, Hu et al. 2024, §3; RouteLLM, Ong et al. 2024, §5):

- **hull**: the non-decreasing convex hull of a method's operating points (both policies together, plus the
  cheapest single model, which every method can fall back to). A point on a hull segment is reached by routing
  a share of requests with one knob value and the rest with the other.
- **AIQ** (average improvement in quality): the area under the hull between the cheapest and the most
  expensive single model's cost, divided by that cost range; beyond the hull's last point the hull is flat.
  It is a quality (a mean score), so it reads on the accuracy scale.
- **cost to reach** a target: the lowest cost on the hull whose quality reaches the target (the best single
  model's accuracy, and 95 % of it), as a share of the best single model's cost; NaN when never reached.
- **accuracy at** 10 / 25 / 50 % of the best single model's cost: the hull's quality there (NaN below the
  hull's cheapest point).
- On a strong/weak pair, **APGR** and **CPT(x %)** (`metrics.apgr`, `metrics.cpt`) on the curve of strong-call
  share, ordered by the calibrated preference P(strong) − P(weak); the random mix's CPT(x %) is x.

Baselines share the policies and the calibration: every registered router's P is calibrated on validation items
(`Router.calibrate`); the per-benchmark best with prices reads each model's training accuracy on the item's
benchmark (calibrated the same way); the oracle's P is the outcome itself; the random mix sends a share s of
requests to the best single model and the rest to the cheapest (a straight line between their two points).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from modelsat import policies
from modelsat.evaluate import metrics as M

TRADEOFF_STEPS = 36                                                  # λ values besides λ = 0
THRESHOLD_DELTAS = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 30)])
REACH_TARGETS = (1.0, 0.95)          # shares of the best single model's accuracy
COST_SHARES = (0.10, 0.25, 0.50)     # shares of the best single model's cost
CPT_TARGETS = (0.5, 0.8, 0.95)
COST_BOOTSTRAP = 1000      # resamples behind each interval of the cost section (each redraws every hull)
MIX_POINTS = 21
RELIABILITY_BINS = 15      # equal-width bins of [0, 1] behind each ECE and reliability diagram
ORACLE = "oracle"
RANDOM_MIX = "random mix"
PER_BENCHMARK = "per-benchmark best (priced)"
COMPARED_PREFIX = "modelsat"       # the rows whose differences to every baseline get intervals
# registered routers with no curve of their own: the random router's P carries no signal, the oracle's is
# computed here from the outcomes, and best-single's P is the same on every item (its model's point)
NOT_PRICED = ("random", "oracle", "best-single")


# ---- operating points -----------------------------------------------------------------------------------------
@dataclass
class PricedItems:
    """The test items of one zoo with what each model scored and was charged on them."""

    models: list[str]
    scores: np.ndarray          # (n, m) outcome of each model on each item
    costs: np.ndarray           # (n, m) charged USD (the records' own per-item cost)
    groups: np.ndarray          # (n,) benchmark of each item
    expected: np.ndarray        # (m,) the policies' expected cost per call (training mean), USD
    best: int                   # column of the best single model (chosen on training items)

    def weights(self, within: str | None = None) -> np.ndarray:
        """(n,) weights whose dot product with per-item values is their macro mean over benchmarks (or their
        mean over one benchmark's items)."""
        if within is not None:
            mask = self.groups == within
            return mask / mask.sum()
        _, inverse, counts = np.unique(self.groups, return_inverse=True, return_counts=True)
        return 1.0 / (counts[inverse] * len(counts))

    def cheapest(self, w: np.ndarray | None = None) -> int:
        """Column of the single model with the lowest charged cost under weights `w` (macro by default)."""
        return int(np.argmin(self.costs.T @ (self.weights() if w is None else w)))


@dataclass
class Curve:
    """One method's operating points: for each knob value, each item's routed outcome and charged cost."""

    method: str
    policy: str                 # tradeoff, threshold, mix or single
    knobs: np.ndarray           # (K,) λ (probability per USD), δ, or the share sent to the best model
    quality: np.ndarray         # (K, n)
    cost: np.ndarray            # (K, n)

    def points(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(costs, qualities) of the K operating points under item weights `w` ((n,) or (n, R))."""
        return self.cost @ w, self.quality @ w


def _curve(method: str, policy: str, knobs: np.ndarray, picks: Sequence[np.ndarray], items: PricedItems) -> Curve:
    """The curve of the knob values' picks; a knob value that picks what the one before it picked adds no point."""
    idx = np.stack(picks)
    keep = np.concatenate([[0], 1 + np.flatnonzero((idx[1:] != idx[:-1]).any(axis=1))])
    rows = np.arange(len(items.groups))
    idx = idx[keep]
    return Curve(method, policy, np.asarray(knobs, dtype=float)[keep], items.scores[rows, idx],
                 items.costs[rows, idx])


def tradeoff_lambdas(expected: np.ndarray) -> np.ndarray:
    """λ = 0 and TRADEOFF_STEPS values spaced evenly in log from where cost barely matters (λ × the largest
    cost = 0.001) to where every request goes to its cheapest candidate (λ × the smallest cost gap = 2)."""
    c = np.unique(np.asarray(expected, dtype=float))
    gaps = np.diff(c)
    if c.max() <= 0 or not (gaps > 0).any():
        return np.array([0.0])
    lo, hi = 1e-3 / c.max(), 2.0 / gaps[gaps > 0].min()
    return np.concatenate([[0.0], np.geomspace(lo, max(hi, lo * 10), TRADEOFF_STEPS)])


def tradeoff_curve(method: str, p: np.ndarray, items: PricedItems) -> Curve:
    """The `tradeoff` policy's operating points over the λ sweep (`tradeoff_lambdas`)."""
    lams = tradeoff_lambdas(items.expected)
    return _curve(method, "tradeoff", lams, [policies.tradeoff(p, items.expected, lam).index for lam in lams], items)


def threshold_curve(method: str, p: np.ndarray, items: PricedItems) -> Curve:
    """The `threshold` policy's operating points over δ in THRESHOLD_DELTAS (0 = max quality, 1 = cheapest)."""
    return _curve(method, "threshold", THRESHOLD_DELTAS,
                  [policies.threshold(p, items.expected, delta=d).index for d in THRESHOLD_DELTAS], items)


def mix_curve(items: PricedItems, cheap: int, best: int, points: int = MIX_POINTS) -> Curve:
    """The random mix: a share s of requests to model `best`, the rest to `cheap` (expected values, no
    sampling noise), for s evenly from 0 to 1: the straight line between the two models' points."""
    s = np.linspace(0.0, 1.0, points)[:, None]
    q = (1 - s) * items.scores[:, cheap] + s * items.scores[:, best]
    c = (1 - s) * items.costs[:, cheap] + s * items.costs[:, best]
    return Curve(RANDOM_MIX, "mix", s.ravel(), q, c)


def single_curve(items: PricedItems, j: int) -> Curve:
    """One model alone: a curve of one point."""
    return Curve(items.models[j], "single", np.array([0.0]), items.scores[None, :, j], items.costs[None, :, j])


# ---- hull and the figures read off it ---------------------------------------------------------------------------
def pareto_points(cost, quality) -> tuple[np.ndarray, np.ndarray]:
    """The points no cheaper-or-equal point matches in quality, by cost: quality rises strictly along them."""
    c = np.asarray(cost, dtype=float).ravel()
    q = np.asarray(quality, dtype=float).ravel()
    keep = np.isfinite(c) & np.isfinite(q)
    c, q = c[keep], q[keep]
    order = np.lexsort((-q, c))
    c, q = c[order], q[order]
    if len(c) == 0:
        return c, q
    best_before = np.maximum.accumulate(q)
    front = np.concatenate([[True], q[1:] > best_before[:-1]])
    return c[front], q[front]


def _upper_hull(c: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper concave chain of Pareto points (cost ascending, quality strictly rising)."""
    hx: list[float] = []
    hy: list[float] = []
    for x, y in zip(c.tolist(), q.tolist()):
        if hx and x == hx[-1]:          # same cost, higher quality (Pareto order): it replaces the last
            hx.pop()
            hy.pop()
        while len(hx) >= 2 and (hx[-1] - hx[-2]) * (y - hy[-2]) - (hy[-1] - hy[-2]) * (x - hx[-2]) >= 0:
            hx.pop()
            hy.pop()
        hx.append(x)
        hy.append(y)
    return np.array(hx), np.array(hy)


def nondecreasing_hull(cost, quality) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (costs, qualities) of the non-decreasing convex hull of the points: the upper concave envelope
    from the cheapest point to the cheapest point of highest quality (flat beyond it)."""
    c, q = pareto_points(cost, quality)
    if len(c) == 0:
        raise ValueError("no finite (cost, quality) point to take a hull of")
    return _upper_hull(c, q)


def hull_value(hx: np.ndarray, hy: np.ndarray, cost: float) -> float:
    """The hull's quality at `cost`: interpolated between vertices, flat beyond the last, NaN before the first."""
    if cost < hx[0] - 1e-15:
        return float("nan")
    return float(np.interp(cost, hx, hy))


def aiq(hx: np.ndarray, hy: np.ndarray, low: float, high: float) -> float:
    """Area under the hull between costs `low` and `high`, divided by (high − low): RouterBench's AIQ on that
    range. The hull must start at or below `low` (include the cheapest single model's point)."""
    if not high > low:
        raise ValueError(f"AIQ needs a cost range with high > low, got [{low}, {high}]")
    if hx[0] > low * (1 + 1e-9) + 1e-15:
        raise ValueError(f"the hull starts at cost {hx[0]:.6g}, above the range's low end {low:.6g}; add the "
                         "cheapest model's point")
    inner = hx[(hx > low) & (hx < high)]
    xs = np.concatenate([[low], inner, [high]])
    ys = np.interp(xs, hx, hy)                   # flat beyond the last vertex
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)) / (high - low))


def cost_to_reach(hx: np.ndarray, hy: np.ndarray, target: float) -> float:
    """The lowest cost at which the hull's quality reaches `target`; NaN when it never does."""
    return M.first_crossing(hx, hy, target)


@dataclass
class Frame:
    """What a method's figures are measured against, under one weighting of the items."""

    low: float                  # the cheapest single model's cost (AIQ's range starts here)
    high: float                 # the most expensive single model's cost
    anchor: tuple[float, float]  # the cheapest single model's (cost, quality)
    best_cost: float
    best_quality: float


def frame(items: PricedItems, w: np.ndarray, cheap: int) -> Frame:
    """The frame of `items` under weights `w` ((n,)): single models' costs and the best one's figures."""
    costs, quality = items.costs.T @ w, items.scores.T @ w
    return Frame(float(costs[cheap]), float(costs.max()), (float(costs[cheap]), float(quality[cheap])),
                 float(costs[items.best]), float(quality[items.best]))


def read_figures(cost: np.ndarray, quality: np.ndarray, f: Frame) -> dict:
    """AIQ, cost to reach, accuracy at cost shares and the hull, from one method's points and the frame."""
    hx, hy = nondecreasing_hull(np.append(cost, f.anchor[0]), np.append(quality, f.anchor[1]))
    share = (lambda c: c / f.best_cost) if f.best_cost > 0 else (lambda c: float("nan"))
    return {"aiq": aiq(hx, hy, f.low, f.high) if f.high > f.low else float("nan"),
            "max_quality": float(hy[-1]),
            "cost_to_reach": {f"{round(100 * t)}": share(cost_to_reach(hx, hy, t * f.best_quality))
                              for t in REACH_TARGETS},
            "quality_at": {f"{round(100 * s)}": hull_value(hx, hy, s * f.best_cost) for s in COST_SHARES},
            "hull": {"cost": hx.tolist(), "quality": hy.tolist()}}


def method_figures(curves: Sequence[Curve], f: Frame, w: np.ndarray) -> dict:
    """Figures of one method on the hull of all its curves' points, AIQ of each policy's own hull, and its
    operating points per policy (for the plot)."""
    pts = {c.policy: c.points(w) for c in curves}
    cost = np.concatenate([p[0] for p in pts.values()])
    quality = np.concatenate([p[1] for p in pts.values()])
    out = read_figures(cost, quality, f)
    out["aiq_by_policy"] = {pol: read_figures(c_, q_, f)["aiq"] for pol, (c_, q_) in pts.items()}
    out["points"] = {pol: {"knob": next(c.knobs for c in curves if c.policy == pol).tolist(),
                           "cost": c_.tolist(), "quality": q_.tolist()} for pol, (c_, q_) in pts.items()}
    return out


# ---- one zoo ------------------------------------------------------------------------------------------------------
def per_benchmark_probabilities(train: pd.DataFrame, models: Sequence[str], groups: np.ndarray) -> np.ndarray:
    """(n, m) each model's mean training score on each item's benchmark (0.5 where it has none)."""
    table = train[train["model"].isin(models)].groupby(["benchmark", "model"])["score"].mean().unstack()
    table = table.reindex(columns=list(models))
    return np.stack([table.loc[g].to_numpy(dtype=float) if g in table.index else np.full(len(models), np.nan)
                     for g in groups]) if len(groups) else np.zeros((0, len(models)))


def calibrated_per_benchmark(train: pd.DataFrame, validation: pd.DataFrame, models: Sequence[str],
                             groups: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """The per-benchmark best's P on the test items: training accuracy per benchmark, calibrated on the
    validation items like every router's, and the calibrator's choice."""
    from modelsat.calibration import fit_calibrator
    p_test = np.nan_to_num(per_benchmark_probabilities(train, models, groups), nan=0.5)
    val = validation[validation["model"].isin(models) & validation["score"].notna()]
    if val.empty:
        return np.clip(p_test, 0, 1), {"method": "none", "reason": "no validation items"}
    col = val["model"].map({m: j for j, m in enumerate(models)}).to_numpy()
    p_val = np.nan_to_num(per_benchmark_probabilities(train, models, val["benchmark"].to_numpy()), nan=0.5)
    p_val = p_val[np.arange(len(val)), col]
    items = val.groupby(["benchmark", "item_id"], sort=False).ngroup().to_numpy()
    cal = fit_calibrator(np.clip(p_val, 0, 1), val["score"].to_numpy(dtype=float), scale="probability",
                         groups=items, seed=seed)
    return cal.predict(np.clip(p_test, 0, 1)), cal.choice


def zoo_curves(probabilities: dict[str, np.ndarray], items: PricedItems) -> dict[str, list[Curve]]:
    """Every method's curves: each P under both policies, the oracle (P = the outcome), the random mix."""
    cheap = items.cheapest()
    curves = {name: [tradeoff_curve(name, p, items), threshold_curve(name, p, items)]
              for name, p in probabilities.items()}
    oracle_p = np.clip(items.scores, 0.0, 1.0)
    curves[ORACLE] = [tradeoff_curve(ORACLE, oracle_p, items), threshold_curve(ORACLE, oracle_p, items)]
    curves[RANDOM_MIX] = [mix_curve(items, cheap, items.best)]
    return curves


def _interval(estimate: float, stats: np.ndarray) -> dict:
    ok = stats[np.isfinite(stats)]
    if not np.isfinite(estimate) or len(ok) < 0.5 * len(stats):
        return {"estimate": estimate, "low": float("nan"), "high": float("nan"),
                "resamples_defined": int(len(ok))}
    iv = M.percentile_interval(estimate, ok)
    return iv.to_dict() | {"resamples_defined": int(len(ok))}


def _resampled_figures(cost: np.ndarray, quality: np.ndarray, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """AIQ and the costs to reach REACH_TARGETS on each resample: `cost`, `quality` are (K, R) operating points,
    `frames` the (R,) cheapest model's cost and quality, the dearest model's cost and the best model's figures."""
    C_ = np.vstack([cost, frames["low"][None]]).T                      # the cheapest model's point added
    Q_ = np.vstack([quality, frames["anchor_quality"][None]]).T
    order = np.lexsort((-Q_, C_))                                      # per resample: by cost, then quality down
    C_, Q_ = np.take_along_axis(C_, order, 1), np.take_along_axis(Q_, order, 1)
    before = np.maximum.accumulate(Q_, axis=1)
    front = np.concatenate([np.ones((len(Q_), 1), bool), Q_[:, 1:] > before[:, :-1]], axis=1)
    out = {"aiq": np.empty(len(C_)), **{f"cost_to_reach_{round(100 * t)}": np.empty(len(C_)) for t in REACH_TARGETS}}
    for r in range(len(C_)):
        hx, hy = _upper_hull(C_[r, front[r]], Q_[r, front[r]])
        low, high, best_cost = frames["low"][r], frames["high"][r], frames["best_cost"][r]
        out["aiq"][r] = aiq(hx, hy, low, high) if high > low else np.nan
        for t in REACH_TARGETS:
            out[f"cost_to_reach_{round(100 * t)}"][r] = (cost_to_reach(hx, hy, t * frames["best_quality"][r])
                                                          / best_cost if best_cost > 0 else np.nan)
    return out


def bootstrap_differences(curves: dict[str, list[Curve]], items: PricedItems, n_resamples: int,
                          seed: int) -> dict[str, dict[str, dict]]:
    """{Model-SAT row: {other method: {figure: Δ with its paired 95 % CI}}} for AIQ and the cost to reach 100 %
    and 95 % of the best single model's accuracy (as a share of its cost). Each resample draws the test items
    within each benchmark (`metrics.bootstrap_weights`, the resamples `metrics.paired_bootstrap` draws) and
    recomputes every method's points, hull and figures, and the single models' costs and accuracies, on the
    same items."""
    subjects = [m for m in curves if m.startswith(COMPARED_PREFIX)]
    if not subjects:
        return {}
    W = M.bootstrap_weights(items.groups, n_resamples, seed).T.astype(np.float32)      # (n, R)
    cheap = items.cheapest()
    single_cost = (items.costs.T.astype(np.float32) @ W).astype(float)                  # (m, R)
    single_quality = (items.scores.T.astype(np.float32) @ W).astype(float)
    frames = {"low": single_cost[cheap], "anchor_quality": single_quality[cheap], "high": single_cost.max(axis=0),
              "best_cost": single_cost[items.best], "best_quality": single_quality[items.best]}
    # every method's operating points on every resample: one product for all of them
    names = [m for m, cs in curves.items() for c in cs for _ in range(len(c.knobs))]
    cost = (np.vstack([c.cost for cs in curves.values() for c in cs]).astype(np.float32) @ W).astype(float)
    quality = (np.vstack([c.quality for cs in curves.values() for c in cs]).astype(np.float32) @ W).astype(float)
    rows = np.array(names)
    stats = {m: _resampled_figures(cost[rows == m], quality[rows == m], frames) for m in curves}
    w = items.weights()
    f = frame(items, w, cheap)
    full = {m: read_figures(np.concatenate([c.points(w)[0] for c in cs]),
                            np.concatenate([c.points(w)[1] for c in cs]), f) for m, cs in curves.items()}

    def point(m: str, k: str) -> float:
        return full[m]["aiq"] if k == "aiq" else full[m]["cost_to_reach"][k.rsplit("_", 1)[1]]

    out: dict[str, dict[str, dict]] = {}
    for s in subjects:
        out[s] = {o: {k: _interval(point(s, k) - point(o, k), stats[s][k] - stats[o][k]) for k in stats[s]}
                  for o in curves if o != s and o != ORACLE}
    return out


def routellm_figures(probabilities: dict[str, np.ndarray], items: PricedItems, strong: int, weak: int,
                     n_resamples: int, seed: int) -> dict[str, dict[str, dict]]:
    """{method: {benchmark: APGR, CPT(50/80/95 %) and Δ CPT(x %) to the random mix's (x) with a bootstrap 95 %
    CI}} on the strong/weak pair, ordered by the calibrated preference P(strong) − P(weak)."""
    out: dict[str, dict[str, dict]] = {}
    for name, p in probabilities.items():
        out[name] = {}
        for b in np.unique(items.groups):
            mask = items.groups == b
            pref = p[mask, strong] - p[mask, weak]
            s, w = items.scores[mask, strong], items.scores[mask, weak]
            curve = M.strong_call_curve(pref, s, w)
            sq, wq = float(s.mean()), float(w.mean())
            fig = {"apgr": M.apgr(curve, sq, wq), "strong": sq, "weak": wq}
            rng = np.random.default_rng(seed)       # the same resamples for every method
            boot = {t: np.empty(n_resamples) for t in CPT_TARGETS}
            apgr_boot = np.empty(n_resamples)
            for r in range(n_resamples):
                idx = rng.integers(0, len(s), size=len(s))
                c_r = M.strong_call_curve(pref[idx], s[idx], w[idx])
                sq_r, wq_r = float(s[idx].mean()), float(w[idx].mean())
                apgr_boot[r] = M.apgr(c_r, sq_r, wq_r)
                for t in CPT_TARGETS:
                    boot[t][r] = M.cpt(c_r, sq_r, wq_r, t)
            fig["apgr_vs_random"] = _interval(fig["apgr"] - 0.5, apgr_boot - 0.5)
            for t in CPT_TARGETS:
                key = f"cpt{round(100 * t)}"
                fig[key] = M.cpt(curve, sq, wq, t)
                fig[f"{key}_vs_random"] = _interval(fig[key] - t, boot[t] - t)
            out[name][str(b)] = fig
    return out


# ---- reliability of P -----------------------------------------------------------------------------------------
def reliability_figures(p: np.ndarray, y: np.ndarray, bins: int = RELIABILITY_BINS) -> dict:
    """ECE and Brier score of probabilities p against outcomes y (every (model, item) pair with a known outcome),
    with the reliability curve they come from (`calibration.reliability_curve`; NaN in empty bins)."""
    from modelsat.calibration import brier_score, expected_calibration_error, reliability_curve
    p, y = np.asarray(p, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    known = np.isfinite(y)
    p, y = p[known], y[known]
    curve = reliability_curve(p, y, bins)
    return {"ece": expected_calibration_error(p, y, bins), "brier": brier_score(p, y), "pairs": int(p.size),
            "curve": {"centres": curve.centres.tolist(), "observed": curve.observed.tolist(),
                      "predicted": curve.predicted.tolist(), "counts": curve.counts.tolist()}}


def reliability_section(calibrated: dict[str, np.ndarray], outcomes: np.ndarray,
                        raw: dict[str, np.ndarray | None] | None = None, bins: int = RELIABILITY_BINS) -> dict:
    """Each method's reliability on the test (model, item) pairs: `after` from its calibrated P (calibrated on
    validation items), `before` from its raw score where that is already a probability in [0, 1] (else None,
    and `before_reason` says why)."""
    raw = raw or {}
    out = {"bins": int(bins), "routers": {}}
    for name, p in calibrated.items():
        r = raw.get(name)
        entry: dict = {"before": None, "after": reliability_figures(p, outcomes, bins)}
        if r is None:
            entry["before_reason"] = "raw score is not a probability"
        elif not (np.all(np.isfinite(r)) and r.min() >= 0 and r.max() <= 1):
            entry["before_reason"] = "raw score lies outside [0, 1]"
        else:
            entry["before"] = reliability_figures(r, outcomes, bins)
        out["routers"][name] = entry
    return out


def cost_section(probabilities: dict[str, np.ndarray], items: PricedItems, seed: int, n_resamples: int,
                 pair: tuple[int, int] | None = None, raw: dict[str, np.ndarray | None] | None = None) -> dict:
    """Everything the report shows about one zoo's cost: the frame, every method's figures on the macro mean and
    per benchmark, Model-SAT's differences to each baseline with paired-bootstrap CIs, (on a strong/weak
    pair) RouteLLM's figures from calibrated P, and each method's reliability before (`raw`, where its score is
    a probability) and after calibration (`reliability_section`)."""
    cheap = items.cheapest()
    curves = zoo_curves(probabilities, items)
    w = items.weights()
    f = frame(items, w, cheap)
    section = {
        "best_single": {"model": items.models[items.best], "cost_per_call": f.best_cost, "quality": f.best_quality},
        "cheapest": {"model": items.models[cheap], "cost_per_call": f.low, "quality": f.anchor[1]},
        "most_expensive_cost": f.high,
        "expected_cost_per_call": {m: float(c) for m, c in zip(items.models, items.expected)},
        "single_models": {m: {"cost_per_call": float(c), "quality": float(q)}
                          for m, c, q in zip(items.models, items.costs.T @ w, items.scores.T @ w)},
        "methods": {m: method_figures(cs, f, w) for m, cs in curves.items()},
        "per_benchmark": {},
    }
    for b in np.unique(items.groups):
        wb = items.weights(within=str(b))
        fb = frame(items, wb, cheap)
        section["per_benchmark"][str(b)] = {
            "best_single": {"cost_per_call": fb.best_cost, "quality": fb.best_quality},
            "methods": {m: {k: v for k, v in method_figures(cs, fb, wb).items() if k not in ("points", "hull")}
                        for m, cs in curves.items()}}
    section["differences"] = bootstrap_differences(curves, items, n_resamples, seed)
    section["bootstrap_resamples"] = n_resamples
    if pair is not None:
        section["routellm"] = routellm_figures(probabilities, items, pair[0], pair[1], n_resamples, seed)
    section["reliability"] = reliability_section(probabilities, items.scores, raw)
    return section
