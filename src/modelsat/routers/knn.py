"""`knn`: each candidate's mean score over the k training items nearest to the instruction.

Nearness is cosine similarity of MiniLM embeddings (`modelsat.embeddings`). k is chosen from `k_grid` by
routed accuracy on a seeded validation split of the training items (neighbours drawn from the rest); the
final index holds every training item. A tiny tie-break by each model's overall training mean keeps ties
from going to whichever model happens to be listed first. It knows only models it has records for
(`needs_seen_models`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import embed
from modelsat.routers._training_data import item_table, routed_accuracy, validation_split
from modelsat.routers.base import Router, register

TIE_BREAK = 1e-6


def nearest_rows(query: np.ndarray, index: np.ndarray, k: int,
                 exclude: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(n_query, k) the rows of `index` most similar (dot product) to each query row, most similar first, ties
    by row (a stable sort of the whole row, so results do not depend on the partition algorithm). `exclude[i]`
    lists rows query i may not use."""
    sim = query @ index.T
    if exclude is not None:
        for i, rows in enumerate(exclude):
            sim[i, list(rows)] = -np.inf
    neg = -sim
    n = neg.shape[1]
    k = min(k, n)
    if k <= 0:
        return np.zeros((len(neg), 0), dtype=np.intp)
    if 4 * k >= n:
        return np.argsort(neg, axis=1, kind="stable")[:, :k]
    # partition first (a live request sorts k + slack values, not the whole index), then sort the kept columns
    # stably by (value, row); a row whose k-th value ties values left outside the kept set is sorted whole
    keep = min(n, 2 * k)
    cols = np.sort(np.argpartition(neg, keep - 1, axis=1)[:, :keep], axis=1)
    vals = np.take_along_axis(neg, cols, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(cols, order, axis=1)
    kth = np.take_along_axis(vals, order[:, -1:], axis=1)
    whole = (neg <= kth).sum(axis=1) > (vals <= kth).sum(axis=1)
    if whole.any():
        out[whole] = np.argsort(neg[whole], axis=1, kind="stable")[:, :k]
    return out


def neighbour_sums(query: np.ndarray, index: np.ndarray, scores: np.ndarray, k: int,
                   exclude: Sequence[Sequence[int]] | None = None,
                   chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts), each (n_query, n_models): `scores` summed over each query's k most similar rows of
    `index`, and how many of those rows hold a score (NaN = none). `exclude[i]` lists rows query i may not use
    (an item never votes for itself)."""
    k = max(1, min(k, len(index)))
    sums, counts = np.empty((len(query), scores.shape[1])), np.empty((len(query), scores.shape[1]))
    for start in range(0, len(query), chunk):
        nearest = nearest_rows(query[start:start + chunk], index, k,
                               None if exclude is None else exclude[start:start + chunk])
        found = scores[nearest]          # (chunk, k, n_models): only the rows used, NaN where no score
        known = ~np.isnan(found)
        sums[start:start + chunk] = np.where(known, found, 0.0).sum(axis=1)
        counts[start:start + chunk] = known.sum(axis=1)
    return sums, counts


def neighbour_means(query: np.ndarray, index: np.ndarray, scores: np.ndarray, k: int,
                    chunk: int = 1024) -> np.ndarray:
    """(n_query, n_models) mean of `scores` over each query's k most similar rows of `index`."""
    sums, _ = neighbour_sums(query, index, np.nan_to_num(scores, nan=0.0), k, chunk=chunk)
    return sums / max(1, min(k, len(index)))


@register
class KNNRouter(Router):
    """k-nearest-neighbour router over instruction embeddings; k tuned on a validation split."""

    name = "knn"
    scores_are_probabilities = True
    uses_embeddings = True
    needs_seen_models = True

    def __init__(self, k_grid: tuple[int, ...] = (5, 10, 20, 40, 80, 160), validation_fraction: float = 0.2,
                 seed: int = 0):
        self.k_grid = k_grid
        self.validation_fraction = validation_fraction
        self.seed = seed

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "KNNRouter":
        table = item_table(records, self.name)
        x = embed(table.prompts)
        scores = table.filled_scores
        train, val = validation_split(len(x), self.validation_fraction, self.seed)
        prior = scores[train].mean(axis=0) * TIE_BREAK
        self.validation_ = {}
        for k in self.k_grid:
            pred = neighbour_means(x[val], x[train], scores[train], k) + prior
            self.validation_[int(k)] = routed_accuracy(pred, scores[val])
        self.k_ = max(self.validation_, key=lambda k: (self.validation_[k], -k))
        self.embeddings_ = x.astype(np.float32)
        self.scores_ = scores
        self.models_ = table.models
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        self.check_fitted("embeddings_")
        self.check_candidates(candidates, self.models_)
        cols = [self.models_.index(c.model) for c in candidates]
        scores = self.scores_[:, cols]
        means = neighbour_means(embed(list(instructions)), self.embeddings_, scores, self.k_)
        return means + scores.mean(axis=0) * TIE_BREAK

    def fit_choices(self) -> dict:
        return {"k": self.k_} if hasattr(self, "k_") else {}

    def _get_state(self):
        return ({"embeddings": self.embeddings_, "scores": self.scores_},
                {"models": self.models_, "k": self.k_, "validation": self.validation_})

    def _set_state(self, arrays, extra):
        self.embeddings_, self.scores_ = arrays["embeddings"], arrays["scores"]
        self.models_, self.k_ = list(extra["models"]), int(extra["k"])
        self.validation_ = {int(k): v for k, v in extra["validation"].items()}
