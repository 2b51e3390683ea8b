"""Calibrated probabilities: a router's scores turned into P(good answer), and how well such P are calibrated.

A calibrator is fitted on *validation* items (never a training or test item; design.md, "Contracts") as one
(score, outcome) pair per (item, candidate). Two methods:

- `platt`: p = sigmoid(a · z + b) on log-odds z, with a and b minimising the log loss. Scores that already are
  probabilities (in [0, 1]) are turned into log-odds first, so a calibrated input keeps a ≈ 1, b ≈ 0, and a
  router that is over- or under-confident gets a < 1 or a > 1 (temperature scaling is the case b = 0).
  It is monotone and strictly increasing for a > 0: it never reorders candidates.
- `isotonic`: the non-decreasing step function of the score that fits the outcomes best (scikit-learn's
  `IsotonicRegression`), read between its knots by linear interpolation. It repairs any monotone distortion
  but needs more items, and its flat steps can tie candidates that the scores told apart.

`fit_calibrator(..., method="auto")` fits both on part of the validation items and keeps `platt` unless isotonic's
log loss on the rest is lower by more than a standard error, then refits the kept one on all of them;
`Calibrator.choice` says what it chose and why. Outcomes may be partial credit in [0, 1]. `to_dict` / `from_dict` keep a calibrator in a saved router.

Metrics, for reliability reports and tests: `expected_calibration_error` (equal-width bins, 15 by default),
`brier_score`, and `reliability_curve` (what a reliability diagram plots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from modelsat.errors import ModelsatError

METHODS = ("platt", "isotonic")
CHOICES = ("auto",) + METHODS
SCALES = ("probability", "log-odds")
EPS = 1e-6                  # probabilities are clipped to [EPS, 1 - EPS] before log-odds and log losses
HELD_OUT_FRACTION = 0.3     # `auto`: the share of validation items (groups) its choice is measured on
MIN_AUTO_PAIRS = 100        # `auto` with fewer pairs than this fits `platt` (isotonic would only fit noise)


class CalibrationError(ModelsatError):
    """Scores or outcomes a calibrator cannot be fitted on or applied to."""


def _as_float_array(x, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{what}: expected numbers, got {type(x).__name__} ({exc})") from exc
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise CalibrationError(f"{what}: every value must be finite; position {bad} holds {arr.ravel()[bad]}")
    return arr


def _check_pairs(scores, outcomes, what: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    s = _as_float_array(scores, what).ravel()
    y = _as_float_array(outcomes, "outcomes").ravel()
    if s.shape != y.shape:
        raise CalibrationError(f"{what} and outcomes differ in size: {s.size} vs {y.size}")
    if s.size == 0:
        raise CalibrationError(f"no ({what}, outcome) pairs to work on")
    if y.min() < 0 or y.max() > 1:
        raise CalibrationError(f"outcomes must lie in [0, 1] (1 = answered well); found {y.min()} .. {y.max()}")
    return s, y


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities, clipped to [EPS, 1 - EPS] first so that 0 and 1 stay finite."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), without overflow warnings for large |z|."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def pair_log_losses(p, y) -> np.ndarray:
    """Bernoulli log loss of each probability p for its outcome y in [0, 1] (p clipped to [EPS, 1 - EPS])."""
    p, y = _check_pairs(p, y, "probabilities")
    q = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(q) + (1 - y) * np.log1p(-q))


def log_loss(p, y) -> float:
    """Mean Bernoulli log loss of probabilities p for outcomes y in [0, 1]."""
    return float(np.mean(pair_log_losses(p, y)))


def clustered_standard_error(values: np.ndarray, groups: np.ndarray) -> float:
    """Standard error of the mean of `values` when pairs of one group (item) are not independent."""
    n = len(values)
    sums = np.bincount(np.unique(groups, return_inverse=True)[1], weights=values - values.mean())
    return float(np.sqrt(np.sum(sums ** 2)) / n) if n else float("nan")


@dataclass
class Calibrator:
    """A fitted map from a router's raw scores to calibrated P(good answer); `predict` keeps the input's shape.

    `scale` says how raw scores are read: "probability" (turned into log-odds first) or "log-odds" (used as
    they are). `params` holds {"a", "b"} for platt, {"x", "y"} (the knots, in log-odds) for isotonic.
    """

    method: str
    scale: str
    params: dict
    choice: dict = field(default_factory=dict)   # what `fit_calibrator` chose and the figures it chose on

    def log_odds(self, scores) -> np.ndarray:
        """The raw scores as log-odds, the calibrator's own input scale."""
        s = _as_float_array(scores, "scores")
        return logit(s) if self.scale == "probability" else s

    def predict(self, scores) -> np.ndarray:
        """Calibrated probabilities, in [0, 1], of the same shape as `scores`."""
        z = self.log_odds(scores)
        if self.method == "platt":
            return sigmoid(self.params["a"] * z + self.params["b"])
        x, y = np.asarray(self.params["x"]), np.asarray(self.params["y"])
        return np.clip(np.interp(z, x, y), 0.0, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready: everything `from_dict` needs."""
        params = {k: (np.asarray(v).tolist() if isinstance(v, (list, np.ndarray)) else float(v))
                  for k, v in self.params.items()}
        return {"method": self.method, "scale": self.scale, "params": params, "choice": self.choice}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        """A calibrator written by `to_dict`; a malformed one gets an error that names the field."""
        if not isinstance(d, dict):
            raise CalibrationError(f"calibrator: expected a JSON object, got {type(d).__name__}")
        method, kind, params = d.get("method"), d.get("scale"), d.get("params")
        if method not in METHODS:
            raise CalibrationError(f"calibrator: method is {method!r}; expected one of {', '.join(METHODS)}")
        if kind not in SCALES:
            raise CalibrationError(f"calibrator: scale is {kind!r}; expected one of {', '.join(SCALES)}")
        need = ("a", "b") if method == "platt" else ("x", "y")
        if not isinstance(params, dict) or any(k not in params for k in need):
            raise CalibrationError(f"calibrator ({method}): params must hold {', '.join(need)}; got {params!r}")
        if method == "platt":
            values = {k: float(_as_float_array(params[k], f"calibrator params.{k}")) for k in need}
        else:
            values = {k: _as_float_array(params[k], f"calibrator params.{k}").ravel() for k in need}
            if len(values["x"]) != len(values["y"]) or len(values["x"]) == 0:
                raise CalibrationError("calibrator (isotonic): params.x and params.y must be equally long, not empty")
        return cls(method=method, scale=kind, params=values, choice=dict(d.get("choice") or {}))


def fit_platt(z: np.ndarray, y: np.ndarray) -> dict:
    """{"a", "b"} minimising the log loss of sigmoid(a·z + b) against outcomes y (Platt 1999, on log-odds z)."""
    from scipy.optimize import minimize

    def loss_and_grad(theta):
        a, b = theta
        t = a * z + b
        # log(1 + e^t) − y·t, its gradient (sigmoid(t) − y)·(z, 1)
        loss = np.mean(np.logaddexp(0.0, t) - y * t)
        r = sigmoid(t) - y
        return loss, np.array([np.mean(r * z), np.mean(r)])

    res = minimize(loss_and_grad, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in res.x)
    return {"a": a, "b": b}


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> dict:
    """{"x", "y"}: the knots of the non-decreasing fit of y on z (scikit-learn), read by linear interpolation.

    Each block's rate is Laplace-smoothed, (hits + 1) / (pairs + 2): the end blocks of a plain isotonic fit
    often hold a handful of pairs that were all right (or all wrong) and would say P = 1 (or 0) for every
    score beyond them, which a single surprise on a fresh item punishes without bound.
    """
    from sklearn.isotonic import IsotonicRegression
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(z, y)
    knots_x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    knots_y = np.asarray(iso.y_thresholds_, dtype=np.float64)
    blocks, block_of = np.unique(iso.predict(z), return_inverse=True)
    n = np.bincount(block_of, minlength=len(blocks)).astype(np.float64)
    smoothed = np.maximum.accumulate((blocks * n + 1.0) / (n + 2.0))
    where = np.clip(np.searchsorted(blocks, knots_y), 0, len(blocks) - 1)
    near = np.abs(blocks[where] - knots_y) > np.abs(blocks[np.maximum(where - 1, 0)] - knots_y)
    where = np.where(near, np.maximum(where - 1, 0), where)
    return {"x": knots_x, "y": smoothed[where]}


def _fit(method: str, kind: str, z: np.ndarray, y: np.ndarray) -> Calibrator:
    params = fit_platt(z, y) if method == "platt" else fit_isotonic(z, y)
    return Calibrator(method=method, scale=kind, params=params)


def fit_calibrator(scores, outcomes, method: str = "auto", scale: str = "auto", groups=None,
                   seed: int = 0) -> Calibrator:
    """A calibrator fitted on validation (score, outcome) pairs; `method` is "platt", "isotonic" or "auto".

    `scale` is how the scores are read: "probability" (values in [0, 1], turned into log-odds first),
    "log-odds", or "auto" (probability when every score lies in [0, 1]). A router says which it gives.
    `auto` fits both methods on 70 % of the pairs and measures their log loss on the other 30 %: it keeps platt
    (two parameters, never reorders candidates, extrapolates smoothly) unless isotonic's log loss is lower by
    more than one standard error of the paired difference, then refits the kept method on every pair; with
    fewer than MIN_AUTO_PAIRS pairs it fits platt. `groups` (one label per pair, e.g. the item) keeps the pairs
    of one item on the same side of that split and in one cluster of the standard error.
    The returned calibrator's `choice` records the method, the held-out log losses and the pair counts.
    """
    if method not in CHOICES:
        raise CalibrationError(f"calibration method {method!r}: expected one of {', '.join(CHOICES)}")
    if scale not in SCALES + ("auto",):
        raise CalibrationError(f"calibration scale {scale!r}: expected one of {', '.join(SCALES + ('auto',))}")
    s, y = _check_pairs(scores, outcomes)
    if scale == "auto":
        scale = "probability" if s.min() >= 0 and s.max() <= 1 else "log-odds"
    elif scale == "probability" and (s.min() < 0 or s.max() > 1):
        raise CalibrationError(f"scores read as probabilities must lie in [0, 1]; found {s.min()} .. {s.max()} "
                               "(give scale='log-odds' for unbounded scores)")
    z = logit(s) if scale == "probability" else s
    choice: dict = {"requested": method, "pairs": int(s.size)}
    if method == "auto":
        if s.size < MIN_AUTO_PAIRS:
            method = "platt"
            choice["reason"] = f"fewer than {MIN_AUTO_PAIRS} pairs: platt without a held-out comparison"
        else:
            labels = np.arange(s.size) if groups is None else np.asarray(groups).ravel()
            if labels.shape != s.shape:
                raise CalibrationError(f"groups: one label per pair expected ({s.size}), got {labels.size}")
            uniq, inverse = np.unique(labels, return_inverse=True)
            rng = np.random.default_rng(seed)
            held_groups = rng.random(len(uniq)) < HELD_OUT_FRACTION
            held = held_groups[inverse]
            if held.all() or not held.any():          # one group, or an unlucky draw on very few groups
                held = rng.random(s.size) < HELD_OUT_FRACTION
            per_pair = {m: pair_log_losses(_fit(m, scale, z[~held], y[~held]).predict(s[held]), y[held])
                        for m in METHODS}
            gain = per_pair["platt"] - per_pair["isotonic"]
            se = clustered_standard_error(gain, labels[held])
            method = "isotonic" if gain.mean() > se else "platt"
            choice |= {"held_out_pairs": int(held.sum()),
                       "held_out_log_loss": {m: float(v.mean()) for m, v in per_pair.items()},
                       "isotonic_gain": float(gain.mean()), "gain_standard_error": se,
                       "reason": ("isotonic's held-out log loss is lower by more than one standard error"
                                  if method == "isotonic" else
                                  "isotonic's held-out log loss is not lower by more than one standard error")}
    cal = _fit(method, scale, z, y)
    cal.choice = {"method": method, **choice}
    return cal


# ---- how calibrated are probabilities --------------------------------------------------------------------------
class ReliabilityCurve(NamedTuple):
    """Per equal-width bin of predicted P: its centre, the observed rate of good answers (NaN where empty), the
    number of pairs in it, and their mean predicted P (NaN where empty). A reliability diagram plots observed
    (or the bar height) against centre (or predicted); a calibrated router lies on the diagonal."""

    centres: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    predicted: np.ndarray


def reliability_curve(p, y, bins: int = 15) -> ReliabilityCurve:
    """The reliability curve of probabilities p against outcomes y over `bins` equal-width bins of [0, 1]."""
    p, y = _check_pairs(p, y, "probabilities")
    if p.min() < 0 or p.max() > 1:
        raise CalibrationError(f"probabilities must lie in [0, 1]; found {p.min()} .. {p.max()}")
    if int(bins) < 1:
        raise CalibrationError(f"bins must be at least 1, got {bins}")
    bins = int(bins)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)       # p = 1 goes to the last bin
    counts = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.bincount(idx, weights=y, minlength=bins) / counts
        predicted = np.bincount(idx, weights=p, minlength=bins) / counts
    centres = (np.arange(bins) + 0.5) / bins
    return ReliabilityCurve(centres, observed, counts, predicted)


def expected_calibration_error(p, y, bins: int = 15) -> float:
    """ECE: the mean over pairs of |observed rate − mean predicted P| of their bin (equal-width bins of [0, 1])."""
    curve = reliability_curve(p, y, bins)
    full = curve.counts > 0
    gaps = np.abs(curve.observed[full] - curve.predicted[full])
    return float(np.sum(curve.counts[full] * gaps) / np.sum(curve.counts))


def brier_score(p, y) -> float:
    """Mean squared difference between probabilities p and outcomes y (0 is perfect; 0.25 is a constant 0.5)."""
    p, y = _check_pairs(p, y, "probabilities")
    if p.min() < 0 or p.max() > 1:
        raise CalibrationError(f"probabilities must lie in [0, 1]; found {p.min()} .. {p.max()}")
    return float(np.mean((p - y) ** 2))
