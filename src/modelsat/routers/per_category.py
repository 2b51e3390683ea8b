"""`per-category`: predict the instruction's category from its text, then route to the model best on it.

The label is the training items' `category` where the records carry one (MMLU-Pro: 14), else their
`benchmark` when there are several (RouterDC: per-benchmark best), else their `subject` (`label="auto"`).
The classifier is a multinomial logistic regression on MiniLM embeddings (`modelsat.embeddings`). Its accuracy
on a seeded validation split of the training items is kept as `category_accuracy_` (and in the saved state);
the final classifier is then refitted on every training item.

A candidate absent from training scores its profile's mean accuracy mapped onto the training scale, the
same rule as `best-single`, in every category.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import embed
from modelsat.routers._training_data import item_table, validation_split
from modelsat.routers.base import Router, RouterError, register
from modelsat.routers.best_single import profile_to_training_scale

LABELS = ("auto", "category", "benchmark", "subject")


def choose_labels(table, label: str) -> tuple[str, list[str]]:
    """(label column used, one label per item); `auto` picks category, then benchmark, then subject."""
    columns = {"category": table.category, "benchmark": table.benchmark, "subject": table.subject}
    if label == "auto":
        for name in ("category", "benchmark", "subject"):
            values = columns[name]
            if sum(v is not None for v in values) >= 0.5 * len(values) and len(set(values) - {None}) > 1:
                label = name
                break
        else:
            label = "benchmark"
    return label, [v if v is not None else "(none)" for v in columns[label]]


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, C: float = 1.0,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(coef (n_classes, d), intercept (n_classes,)) of a multinomial logistic regression of labels `y` (ints in
    [0, n_classes)) on `x`; classes absent from `y` get -1e9, a single class is constant."""
    present = np.unique(y)
    coef = np.zeros((n_classes, x.shape[1]))
    intercept = np.full(n_classes, -1e9)
    if len(present) == 1:
        intercept[present[0]] = 0.0
        return coef, intercept
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=C, max_iter=300, random_state=seed).fit(x, y)
    coef[clf.classes_] = clf.coef_ if len(present) > 2 else np.vstack([-clf.coef_, clf.coef_]) / 2
    intercept[clf.classes_] = clf.intercept_ if len(present) > 2 else np.array(
        [-clf.intercept_[0], clf.intercept_[0]]) / 2
    return coef, intercept


@register
class PerCategoryRouter(Router):
    """Category classifier on instruction embeddings + the best training model per category."""

    name = "per-category"
    scores_are_probabilities = True
    uses_embeddings = True

    def __init__(self, label: str = "auto", C: float = 1.0, validation_fraction: float = 0.2, seed: int = 0):
        self.label = label
        self.C = C
        self.validation_fraction = validation_fraction
        self.seed = seed

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "PerCategoryRouter":
        if self.label not in LABELS:
            raise RouterError(f"per-category: label={self.label!r}; expected one of {', '.join(LABELS)}")
        table = item_table(records, self.name)
        self.label_used_, labels = choose_labels(table, self.label)
        self.categories_ = sorted(set(labels))
        y = np.array([self.categories_.index(v) for v in labels])
        x = embed(table.prompts).astype(np.float64)
        train, val = validation_split(len(y), self.validation_fraction, self.seed)
        if len(val):
            coef, intercept = fit_logistic(x[train], y[train], len(self.categories_), self.C, self.seed)
            self.category_accuracy_ = float(np.mean(np.argmax(x[val] @ coef.T + intercept, 1) == y[val]))
        else:
            self.category_accuracy_ = float("nan")
        self.coef_, self.intercept_ = fit_logistic(x, y, len(self.categories_), self.C, self.seed)
        scores = table.filled_scores
        self.models_ = table.models
        overall = scores.mean(axis=0)
        self.table_ = np.stack([scores[y == c].mean(axis=0) if np.any(y == c) else overall
                                for c in range(len(self.categories_))])
        by_name = {p.model: p for p in profiles}
        known = [i for i, m in enumerate(self.models_) if m in by_name]
        self.slope_, self.intercept_map_ = profile_to_training_scale(
            np.array([by_name[self.models_[i]].mean_accuracy for i in known]), overall[known])
        return self

    def predict_category(self, instructions: Sequence[str]) -> list[str]:
        """The predicted category of each instruction."""
        self.check_fitted("coef_")
        x = embed(list(instructions)).astype(np.float64)
        return [self.categories_[i] for i in np.argmax(x @ self.coef_.T + self.intercept_, axis=1)]

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        cats = self.predict_category(instructions)
        rows = [self.categories_.index(c) for c in cats]
        index = {m: i for i, m in enumerate(self.models_)}
        out = np.empty((len(instructions), len(candidates)))
        for j, cand in enumerate(candidates):
            if cand.model in index:
                out[:, j] = self.table_[rows, index[cand.model]]
            else:
                out[:, j] = self.slope_ * cand.mean_accuracy + self.intercept_map_
        return out

    def fit_choices(self) -> dict:
        if not hasattr(self, "label_used_"):
            return {}
        return {"label": self.label_used_, "category_accuracy": self.category_accuracy_}

    def _get_state(self):
        return ({"coef": self.coef_, "intercept": self.intercept_, "table": self.table_},
                {"categories": self.categories_, "models": self.models_, "label_used": self.label_used_,
                 "category_accuracy": self.category_accuracy_, "slope": self.slope_,
                 "intercept_map": self.intercept_map_})

    def _set_state(self, arrays, extra):
        self.coef_, self.intercept_, self.table_ = arrays["coef"], arrays["intercept"], arrays["table"]
        self.categories_, self.models_ = list(extra["categories"]), list(extra["models"])
        self.label_used_, self.category_accuracy_ = extra["label_used"], float(extra["category_accuracy"])
        self.slope_, self.intercept_map_ = float(extra["slope"]), float(extra["intercept_map"])
