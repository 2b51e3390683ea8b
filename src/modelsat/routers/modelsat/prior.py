"""The explicit prior the Model-SAT score starts from: the candidate's profile accuracy at the instruction's
subjects (design.md, "Where we depart from the paper"). Needs no training on any model's records, so it holds
for a model known only by its profile.

The subject weights come from a shipped subject map (`modelsat.routers.subject_map.shipped(features)`);
without one, from a stand-in built here: anchors are the MiniLM embeddings of each subject's five aptitude
keywords.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from modelsat.aptitude.profile import Profile

PRIOR_FLOOR = 0.02   # logit(prior) stays finite for 0 % / 100 % subjects


@lru_cache(maxsize=2)
def _subject_map(features: str = "minilm"):
    from modelsat.routers import subject_map as sm
    try:
        return sm.shipped(features)
    except Exception:   # noqa: BLE001 - no shipped map yet: fall back to the keyword stand-in below
        return _keyword_subject_map()


def _keyword_subject_map():
    from modelsat.aptitude.core_items import subject_keywords
    from modelsat.embeddings import embed
    from modelsat.routers.subject_map import SubjectMap
    kw = subject_keywords()
    names = sorted(kw)
    anchors = embed([", ".join(kw[n]) for n in names])
    return SubjectMap(subjects=names, anchors=anchors, temperature=0.05,
                      provenance={"method": "keyword stand-in (modelsat.routers.modelsat.prior)"})


def subject_weights(instructions: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(subject names, (n, S) weights): how much each instruction belongs to each aptitude subject."""
    smap = _subject_map()
    return smap.subjects, smap.weights(list(instructions))


def prior_from_weights(subjects: list[str], weights: np.ndarray, candidates: Sequence[Profile]) -> np.ndarray:
    """(n, m) expected accuracy Σ_s w_s · acc_s of each candidate (a subject it lacks counts at its mean)."""
    acc = np.array([c.accuracy_vector(subjects) for c in candidates], dtype=np.float64).reshape(
        len(candidates), len(subjects))
    return np.asarray(weights, dtype=np.float64) @ acc.T


def profile_prior(instructions: Sequence[str], candidates: Sequence[Profile], features: str = "minilm") -> np.ndarray:
    """(n, m) prior: each candidate's profile accuracy at each instruction's estimated subjects, in [0, 1]
    (the profile-prior router's `prior_scores` with the shipped map reading `features`; this module's keyword
    map when none is shipped)."""
    from modelsat.routers.profile_prior import prior_scores
    if not len(instructions) or not len(candidates):
        return np.zeros((len(instructions), len(candidates)))
    return prior_scores(list(instructions), list(candidates), subject_map=_subject_map(features))


def prior_implementation() -> str:
    """Which subject map the prior uses now (recorded in a trained router's card)."""
    return str(_subject_map().provenance.get("method", "shipped subject map"))


def mean_accuracy_prior(instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
    """(n, m) each candidate's mean profile accuracy (no encoder at all: the tests' prior)."""
    return np.tile([c.mean_accuracy for c in candidates], (len(instructions), 1)).astype(np.float64)


PRIORS: dict[str, Callable[[Sequence[str], Sequence[Profile]], np.ndarray]] = {
    "profile": profile_prior, "mean": mean_accuracy_prior}
