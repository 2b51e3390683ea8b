"""`random`: uniform scores, the floor every router must beat.

A score is a pure function of (seed, instruction, model name), not of call order, so the same router gives
the same routes in any batch and after save/load.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.routers._training_data import stable_seed
from modelsat.routers.base import Router, register


@register
class RandomRouter(Router):
    """Scores each (instruction, candidate) pair with a seeded uniform draw; needs no training data."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "RandomRouter":
        self.fitted_ = True
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        out = np.empty((len(instructions), len(candidates)))
        for i, text in enumerate(instructions):
            for j, cand in enumerate(candidates):
                out[i, j] = np.random.default_rng(stable_seed(self.seed, text, cand.model)).random()
        return out
