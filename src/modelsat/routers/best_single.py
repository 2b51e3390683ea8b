"""`best-single`: every instruction goes to the model with the highest mean training score (mean over benchmarks).

A candidate absent from training has no training score; it gets its profile's mean accuracy mapped onto the
training scale by a least-squares line fitted on the training models (mean training score against mean
profile accuracy). With fewer than two distinct training accuracies the line is a shift by the mean difference.
So a new model is chosen exactly when its aptitude test says it is stronger than the best training model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.routers._training_data import item_table
from modelsat.routers.base import Router, register


def profile_to_training_scale(profile_means: np.ndarray, train_means: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the line mapping mean profile accuracy to mean training score."""
    if len(profile_means) >= 2 and np.ptp(profile_means) > 1e-9:
        slope, intercept = np.polyfit(profile_means, train_means, 1)
        return float(slope), float(intercept)
    if len(profile_means):
        return 1.0, float(np.mean(train_means - profile_means))
    return 1.0, 0.0


@register
class BestSingleRouter(Router):
    """Always the model best on average over the training items (ties: the first in name order)."""

    name = "best-single"
    scores_are_probabilities = True

    def __init__(self):
        pass

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "BestSingleRouter":
        table = item_table(records, self.name)
        self.models_ = table.models
        # mean over benchmarks of each benchmark's mean, as the evaluation's "mean" column counts: a large
        # training file (e.g. RouterDC's 2,000 MMLU items) must not outvote the other benchmarks
        bench = np.asarray(table.benchmark)
        self.mean_scores_ = np.mean([np.nanmean(table.scores[bench == b], axis=0) for b in np.unique(bench)], axis=0)
        by_name = {p.model: p for p in profiles}
        known = [i for i, m in enumerate(table.models) if m in by_name]
        acc = np.array([by_name[table.models[i]].mean_accuracy for i in known])
        self.slope_, self.intercept_ = profile_to_training_scale(acc, self.mean_scores_[known])
        return self

    def candidate_means(self, candidates: Sequence[Profile]) -> np.ndarray:
        """Each candidate's training mean, or its mapped profile mean accuracy when it was not in training."""
        self.check_fitted("models_")
        index = {m: i for i, m in enumerate(self.models_)}
        return np.array([self.mean_scores_[index[c.model]] if c.model in index
                         else self.slope_ * c.mean_accuracy + self.intercept_ for c in candidates])

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        return np.tile(self.candidate_means(candidates), (len(instructions), 1))

    def _get_state(self):
        return ({"mean_scores": self.mean_scores_},
                {"models": self.models_, "slope": self.slope_, "intercept": self.intercept_})

    def _set_state(self, arrays, extra):
        self.mean_scores_ = arrays["mean_scores"]
        self.models_ = list(extra["models"])
        self.slope_, self.intercept_ = float(extra["slope"]), float(extra["intercept"])
