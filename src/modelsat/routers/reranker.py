"""`reranker`: scores (instruction, candidate response) pairs: the paper's Cappy / BGE / GTE class.

It needs every candidate's answer first (`needs_responses`): before `score`, call
`attach_responses(df)` with columns model, prompt, response for the items to be scored; without them `score`
raises a RouterError saying so. The scorer is a logistic regression on
[emb(instruction), emb(response), emb(instruction) ⊙ emb(response)] (MiniLM, `modelsat.embeddings`), trained
on a seeded sample of training (item, model) pairs that have a response, label = score ≥ 0.5. Only the last
`response_chars` characters of a response are embedded: long chain-of-thought answers end with the answer, and
MiniLM reads at most 128 tokens (`embeddings.MAX_TOKENS`). Model names are not features, so any model with
responses can be scored.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import embed
from modelsat.routers._training_data import stable_seed
from modelsat.routers.base import Router, RouterError, register


def pair_features(instr: np.ndarray, resp: np.ndarray) -> np.ndarray:
    return np.concatenate([instr, resp, instr * resp], axis=1).astype(np.float64)


@register
class RerankerRouter(Router):
    """Logistic regression on (instruction, response) embeddings; needs the candidates' responses."""

    name = "reranker"
    scores_are_probabilities = True
    uses_embeddings = True
    needs_responses = True
    # `modelsat benchmark --quick`: every test response of every candidate is embedded, so keep them short
    quick_params = {"max_pairs": 1000, "response_chars": 100}

    def __init__(self, C: float = 1.0, max_pairs: int | None = 6000, response_chars: int = 1000, seed: int = 0):
        self.C = C
        self.max_pairs = max_pairs
        self.response_chars = response_chars
        self.seed = seed

    def _tail(self, texts) -> list[str]:
        return [str(t)[-self.response_chars:] for t in texts]

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "RerankerRouter":
        from sklearn.linear_model import LogisticRegression
        if "response" not in records.columns or records["response"].notna().sum() == 0:
            raise RouterError("reranker: the training records hold no responses (column 'response' is empty); "
                              "it learns from (instruction, response, score) triples, so train it on a source "
                              "with responses (MMLU-Pro outputs, RouterBench)")
        rows = records[records["response"].notna()]
        # a stable order independent of the input's row order, then a seeded sample
        rows = rows.assign(_key=[stable_seed(m, b, i) for m, b, i in
                                 zip(rows["model"], rows["benchmark"], rows["item_id"])]).sort_values("_key")
        if self.max_pairs is not None and len(rows) > self.max_pairs:
            rows = rows.sample(n=self.max_pairs, random_state=self.seed)
        y = (rows["score"].to_numpy(dtype=np.float64) >= 0.5).astype(int)
        feats = pair_features(embed(rows["prompt"].astype(str).tolist()), embed(self._tail(rows["response"])))
        if len(np.unique(y)) < 2:
            self.coef_ = np.zeros(feats.shape[1])
            self.intercept_ = np.array([10.0 if y[0] == 1 else -10.0])
        else:
            clf = LogisticRegression(C=self.C, max_iter=500, random_state=self.seed).fit(feats, y)
            self.coef_, self.intercept_ = clf.coef_[0].astype(np.float64), clf.intercept_.astype(np.float64)
        self.n_train_pairs_ = int(len(y))
        return self

    def attach_responses(self, responses: pd.DataFrame) -> "RerankerRouter":
        """Remembers each (model, prompt)'s response, for the items `score` will be asked about."""
        missing = [c for c in ("model", "prompt", "response") if c not in responses.columns]
        if missing:
            raise RouterError(f"reranker.attach_responses: missing column(s) {', '.join(missing)}; "
                              "expected model, prompt, response")
        rows = responses[responses["response"].notna()]
        self._responses = {(str(m), str(p)): str(r)
                           for m, p, r in zip(rows["model"], rows["prompt"], rows["response"])}
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        self.check_fitted("coef_")
        responses = getattr(self, "_responses", None)
        if responses is None:
            raise RouterError("reranker scores (instruction, response) pairs and has no responses: call "
                              "attach_responses(df) with columns model, prompt, response for the items to "
                              "score before score()/route()")
        instructions = list(instructions)
        lacking = [(c.model, t) for t in instructions for c in candidates if (c.model, t) not in responses]
        if lacking:
            model, text = lacking[0]
            raise RouterError(f"reranker: no response of model {model!r} for {len(lacking)} (model, "
                              f"instruction) pair(s) (first instruction: {text[:80]!r}); attach_responses() "
                              "must cover every candidate on every instruction")
        n, m = len(instructions), len(candidates)
        instr = np.repeat(embed(instructions), m, axis=0)
        resp = embed(self._tail([responses[(c.model, t)] for t in instructions for c in candidates]))
        logits = pair_features(instr, resp) @ self.coef_ + self.intercept_[0]
        return (1.0 / (1.0 + np.exp(-logits))).reshape(n, m)

    def _get_state(self):
        return {"coef": self.coef_, "intercept": self.intercept_}, {"n_train_pairs": self.n_train_pairs_}

    def _set_state(self, arrays, extra):
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        self.n_train_pairs_ = int(extra["n_train_pairs"])
