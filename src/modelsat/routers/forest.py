"""`random-forest`: a random forest predicts the score from [PCA of instruction embedding, profile vector].

Like `mlp`, a candidate enters only through its profile accuracy vector (fixed subject order in the state),
so unseen models are scored. The 384-d embedding is first reduced by PCA (`n_components`) so that splits on the
profile features are not drowned by hundreds of embedding dimensions.

Saving: scikit-learn forests cannot go to safetensors and `skops` is not a dependency, so the fitted trees
are flattened into plain arrays (children, split feature, threshold, leaf value; one node table for all
trees) and prediction walks those arrays in numpy, before and after a save alike. No pickle is involved.
Inputs are cast to float32 before comparison with the thresholds, as scikit-learn's trees do.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import embed
from modelsat.routers._training_data import (item_table, pointwise_pairs, profile_vectors, profiles_by_model,
                                             subject_order)
from modelsat.routers.base import Router, register
from modelsat.routers.mlp import pair_features


def flatten_forest(forest) -> dict[str, np.ndarray]:
    """All trees of a fitted sklearn forest regressor as one node table (global child indices)."""
    left, right, feature, threshold, value, roots = [], [], [], [], [], []
    offset = 0
    for est in forest.estimators_:
        t = est.tree_
        roots.append(offset)
        cl, cr = t.children_left.astype(np.int64), t.children_right.astype(np.int64)
        left.append(np.where(cl >= 0, cl + offset, -1))
        right.append(np.where(cr >= 0, cr + offset, -1))
        feature.append(t.feature.astype(np.int64))
        threshold.append(t.threshold.astype(np.float64))
        value.append(t.value[:, 0, 0].astype(np.float64))
        offset += t.node_count
    return {"left": np.concatenate(left), "right": np.concatenate(right), "feature": np.concatenate(feature),
            "threshold": np.concatenate(threshold), "value": np.concatenate(value),
            "roots": np.array(roots, dtype=np.int64)}


def predict_forest(trees: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Mean leaf value over the trees for each row of `x` (rows walk all trees at once)."""
    x = np.asarray(x, dtype=np.float32)
    left, right, feature, threshold = trees["left"], trees["right"], trees["feature"], trees["threshold"]
    node = np.tile(trees["roots"], (len(x), 1))                # (n, n_trees) global node index
    rows = np.arange(len(x))[:, None]
    while True:
        inner = left[node] >= 0
        if not inner.any():
            break
        go_left = x[rows, np.where(inner, feature[node], 0)] <= threshold[node]
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)
    return trees["value"][node].mean(axis=1)


@register
class RandomForestRouter(Router):
    """Pointwise random forest over [PCA(instruction embedding), profile accuracy vector]."""

    name = "random-forest"
    scores_are_probabilities = True
    uses_embeddings = True

    def __init__(self, n_estimators: int = 60, min_samples_leaf: int = 20, max_features: float = 0.3,
                 n_components: int = 32, max_pairs: int | None = 30000, seed: int = 0):
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_components = n_components
        self.max_pairs = max_pairs
        self.seed = seed

    @classmethod
    def for_tests(cls) -> "RandomForestRouter":
        return cls(n_estimators=10, min_samples_leaf=3, n_components=8)

    def _features(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) - self.pca_mean_) @ self.pca_components_.T

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "RandomForestRouter":
        from sklearn.decomposition import PCA
        from sklearn.ensemble import RandomForestRegressor
        table = item_table(records, self.name)
        self.subjects_ = subject_order(profiles)
        pvec = profile_vectors(profiles_by_model(profiles, table.models, self.name), self.subjects_)
        x = embed(table.prompts)
        pca = PCA(n_components=min(self.n_components, len(x), x.shape[1]), random_state=self.seed).fit(x)
        self.pca_mean_ = pca.mean_.astype(np.float64)
        self.pca_components_ = pca.components_.astype(np.float64)
        z = self._features(x)
        items, models = pointwise_pairs(len(x), len(table.models), self.max_pairs, self.seed)
        y = table.scores[items, models]
        keep = ~np.isnan(y)
        feats = np.concatenate([z[items[keep]], pvec[models[keep]]], axis=1)
        forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                       max_features=self.max_features, random_state=self.seed, n_jobs=1)
        forest.fit(feats.astype(np.float32), y[keep])
        self.trees_ = flatten_forest(forest)
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        self.check_fitted("trees_")
        feats = pair_features(self._features(embed(list(instructions))),
                              profile_vectors(candidates, self.subjects_).astype(np.float64))
        pred = predict_forest(self.trees_, feats.reshape(-1, feats.shape[-1]))
        return pred.reshape(len(instructions), len(candidates))

    def _get_state(self):
        arrays = {f"tree_{k}": v for k, v in self.trees_.items()}
        arrays.update(pca_mean=self.pca_mean_, pca_components=self.pca_components_)
        return arrays, {"subjects": self.subjects_}

    def _set_state(self, arrays, extra):
        self.trees_ = {k[len("tree_"):]: v for k, v in arrays.items() if k.startswith("tree_")}
        self.pca_mean_, self.pca_components_ = arrays["pca_mean"], arrays["pca_components"]
        self.subjects_ = list(extra["subjects"])
