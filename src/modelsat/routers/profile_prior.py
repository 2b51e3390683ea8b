"""The profile prior: a candidate's profile accuracy at the instruction's MMLU subjects (no per-model training).

    prior(x, c) = sum_s w_s(x) * acc~_c(s),   acc~_c(s) = (n_cs * acc_cs + kappa * mean_c) / (n_cs + kappa)

w(x) comes from the subject map (softmax of MiniLM similarity to per-subject anchors, `subject_map.py`);
acc~ shrinks each per-subject accuracy toward the model's mean accuracy by the number of items it rests on, and
a subject the profile lacks (n = 0) falls back to the mean. Nothing is learned per model, so a model known only
by its aptitude-test profile is scored like any other (design.md, "Where we depart from the paper": the
router is an explicit prior plus a learned correction; this is the prior).

`prior_scores` is the plain function the Model-SAT model takes as an input; `ProfilePrior` is the same thing
as a registered router (`profile-prior`) whose `fit` learns only the temperature and kappa.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.errors import ModelsatError
from modelsat.routers.base import Router, RouterError, register
from modelsat.routers.subject_map import SubjectMap, shipped

# fitted on MMLU-Pro validation items for aptitude-test profiles (20 items a subject; scripts/measure_profile_prior.py)
DEFAULT_KAPPA = 100.0
KAPPA_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)


def shrunk_accuracies(candidates: Sequence[Profile], subjects: Sequence[str], kappa: float) -> np.ndarray:
    """(S, m) per-subject accuracies, each shrunk toward the candidate's mean by its item count."""
    out = np.zeros((len(subjects), len(candidates)), dtype=np.float64)
    for j, c in enumerate(candidates):
        mean = c.mean_accuracy
        for i, s in enumerate(subjects):
            sc = c.subjects.get(s)
            n, acc = (sc.n_items, sc.accuracy) if sc is not None else (0, mean)
            out[i, j] = mean if n + kappa <= 0 else (n * acc + kappa * mean) / (n + kappa)
    return out


def prior_scores(instructions: Sequence[str], candidates: Sequence[Profile], subject_map: SubjectMap | None = None,
                 kappa: float = DEFAULT_KAPPA, weights: np.ndarray | None = None) -> np.ndarray:
    """(n, m) expected accuracy of each candidate on each instruction, read from its profile.

    `subject_map` defaults to the shipped one; pass `weights` ((n, S) from `subject_map.weights`) to reuse
    subject weights already computed (e.g. once per instruction for many candidate sets).
    """
    if not candidates:
        raise RouterError("prior_scores: no candidates")
    sm = subject_map if subject_map is not None else shipped()
    w = sm.weights(list(instructions)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(instructions), len(sm.subjects)):
        raise RouterError(f"prior_scores: weights of shape {w.shape}, expected "
                          f"({len(instructions)}, {len(sm.subjects)})")
    return w @ shrunk_accuracies(candidates, sm.subjects, kappa)


@register
class ProfilePrior(Router):
    """Routes to the candidate whose profile is strongest at the instruction's subjects; scores unseen models."""

    name = "profile-prior"
    uses_embeddings = True

    def __init__(self, kappa: float | None = None, temperature: float | None = None, fit_temperature: bool = True):
        self.kappa = kappa                    # None: fitted on `fit`'s records (DEFAULT_KAPPA until then)
        self.temperature = temperature        # None: the subject map's (refitted on `fit` if fit_temperature)
        self.fit_temperature = fit_temperature

    # the subject map is state, not a hyper-parameter: a fresh router starts from the shipped one
    def _map(self) -> SubjectMap:
        if getattr(self, "subject_map_", None) is None:
            self.subject_map_ = shipped()
            if self.temperature is not None:
                self.subject_map_.temperature = float(self.temperature)
        return self.subject_map_

    def _kappa(self) -> float:
        if self.kappa is not None:
            return float(self.kappa)
        return float(getattr(self, "kappa_", DEFAULT_KAPPA))

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "ProfilePrior":
        """Fits the subject temperature (on records with an MMLU subject) and kappa; nothing per model.

        kappa maximises the Bernoulli log-likelihood of the records' scores under the prior, over the models
        that have a profile. Give it records the profiles were *not* built from (e.g. validation items): on
        the profiles' own items the per-subject accuracies look better than they are and kappa comes out low.
        """
        from modelsat.embeddings import embed
        sm = self._map()
        items = records.drop_duplicates("item_id")
        known = items[items["subject"].isin(sm.subjects)] if "subject" in items else items.iloc[:0]
        item_w: dict[str, np.ndarray] = {}
        if len(items):
            emb = embed(items["prompt"].tolist())
            if self.fit_temperature and self.temperature is None and len(known) >= 10:
                pos = np.flatnonzero(items["subject"].isin(sm.subjects).to_numpy())
                sm.fit_temperature(emb[pos], items["subject"].iloc[pos].tolist())
            w = sm.weights_from_embeddings(emb)
            item_w = dict(zip(items["item_id"], w))
        self.kappa_ = DEFAULT_KAPPA
        by_name = {p.model: p for p in profiles}
        rec = records[records["model"].isin(by_name)] if "model" in records else records.iloc[:0]
        if self.kappa is None and len(rec):
            models = sorted(rec["model"].unique())
            cands = [by_name[m] for m in models]
            col = {m: j for j, m in enumerate(models)}
            W = np.stack([item_w[i] for i in rec["item_id"]])
            j = rec["model"].map(col).to_numpy()
            y = rec["score"].to_numpy(dtype=np.float64)
            best = None
            for k in KAPPA_GRID:
                p = np.einsum("ns,ns->n", W, shrunk_accuracies(cands, sm.subjects, k).T[j]).clip(1e-4, 1 - 1e-4)
                ll = float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
                if best is None or ll > best[1]:
                    best = (k, ll)
            self.kappa_ = float(best[0])
        self.fitted_ = True
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n, m) prior: the candidate's shrunk profile accuracy averaged over the instruction's subjects."""
        return prior_scores(instructions, candidates, self._map(), kappa=self._kappa())

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        sm = self._map()
        return ({"anchors": sm.anchors},
                {"subjects": sm.subjects, "temperature": sm.temperature, "kappa": self._kappa(),
                 "subject_map_provenance": sm.provenance})

    def _set_state(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        if "anchors" not in arrays:
            return
        self.subject_map_ = SubjectMap(subjects=list(extra["subjects"]), anchors=arrays["anchors"],
                                       temperature=float(extra["temperature"]),
                                       provenance=dict(extra.get("subject_map_provenance") or {}))
        self.kappa_ = float(extra["kappa"])

    @classmethod
    def for_tests(cls) -> "ProfilePrior":
        """A router for the shared contract test (uses the shipped subject map; fit learns only kappa/T)."""
        return cls()


def profile_from_records(records: pd.DataFrame, model: str, subjects: Sequence[str],
                         test_version: str = "records", provenance: dict | None = None) -> Profile:
    """A profile of `model`: its mean score per subject over `records` rows in `subjects` (a stand-in when no
    aptitude-test profile exists: it rests on every given item, not on the 20 selected per subject)."""
    rows = records[(records["model"] == model) & records["subject"].isin(set(subjects))]
    if rows.empty:
        raise ModelsatError(f"no records of model {model!r} in the given subjects")
    g = rows.groupby("subject")["score"].agg(["mean", "size"])
    return Profile(model=model, test_version=test_version,
                   subjects={s: SubjectScore(float(r["mean"]), int(r["size"])) for s, r in g.iterrows()},
                   provenance=dict(provenance or {}))
