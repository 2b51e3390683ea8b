"""`oracle`: the upper bound. It reads each instruction's true scores, so it is never a real router.

Fit it on records that include the test items; `score` looks each instruction up by its text (several items
with the same text: their mean). A model without a result for an item counts as wrong there (0), as the
evaluation counts it.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.routers._training_data import item_table
from modelsat.routers.base import Router, RouterError, register


def _text_key(text: str) -> str:
    return hashlib.sha1(str(text).encode("utf-8", "replace")).hexdigest()


@register
class OracleRouter(Router):
    """Scores = the true per-item scores; reported as an upper bound (`is_upper_bound`)."""

    name = "oracle"
    scores_are_probabilities = True
    is_upper_bound = True
    needs_seen_models = True    # it can only read the answers of models whose records it was given

    def __init__(self):
        pass

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "OracleRouter":
        table = item_table(records, self.name)
        frame = pd.DataFrame(table.filled_scores, columns=table.models)
        frame["key"] = [_text_key(p) for p in table.prompts]
        grouped = frame.groupby("key", sort=True).mean()
        self.keys_ = list(grouped.index)
        self.models_ = table.models
        self.scores_ = grouped[self.models_].to_numpy(dtype=np.float64)
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        self.check_fitted("scores_")
        unseen = [c.model for c in candidates if c.model not in set(self.models_)]
        if unseen:
            raise RouterError(f"oracle: no records for model(s) {', '.join(unseen)}; fit the oracle on the "
                              "records (test items included) of every candidate it must score")
        row = {k: i for i, k in enumerate(self.keys_)}
        unknown = [t for t in instructions if _text_key(t) not in row]
        if unknown:
            raise RouterError(f"oracle: {len(unknown)} instruction(s) have no scores in the records it was "
                              f"fitted on (first: {unknown[0][:80]!r}); fit the oracle on records that include "
                              "the test items")
        col = {m: j for j, m in enumerate(self.models_)}
        rows = [row[_text_key(t)] for t in instructions]
        return self.scores_[np.ix_(rows, [col[c.model] for c in candidates])]

    def _get_state(self):
        return {"scores": self.scores_}, {"models": self.models_, "keys": self.keys_}

    def _set_state(self, arrays, extra):
        self.scores_ = arrays["scores"]
        self.models_, self.keys_ = list(extra["models"]), list(extra["keys"])
