"""The router contract (design.md, "Contracts"; issue 11), run over every registered router.

Like scikit-learn's `check_estimator`: each router in `modelsat.routers.available()`, in its small
`for_tests()` configuration, is fitted on a small real-text dataset written here (tests/router_data.py) and
must: return itself from fit; score (n, m); route inside the zoo; follow the candidates' order; give identical
scores after save → load; give identical scores from two fits with the same seed; refuse an unseen model with
a clear RouterError when it `needs_seen_models`, score it finitely otherwise; and, when it `needs_responses`,
fail clearly without them. A router added later is covered by adding its module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import router_data as toy
from modelsat.routers import Router, RouterError, available, get

torch.set_num_threads(1)

RECORDS = toy.records()
TRAIN, TEST = toy.split(RECORDS)
PROFILES = toy.profiles(RECORDS)
TEST_PROMPTS = list(dict.fromkeys(TEST["prompt"]))
ZOO = [p for p in PROFILES if p.model in ("generalist", "historian", "math-whiz")][::-1]   # subset, new order
_FITTED: dict[str, tuple[Router, Router]] = {}


def responses_for(models) -> pd.DataFrame:
    """(model, prompt, response) of the test items for `models` (the newcomer answers like the generalist)."""
    recs = toy.records(list(toy.MODELS) + [toy.NEWCOMER])
    rows = recs[recs["prompt"].isin(TEST_PROMPTS) & recs["model"].isin(models)]
    return rows[["model", "prompt", "response"]]


def fit_one(name: str) -> Router:
    router = get(name).for_tests()
    # an upper bound is fitted on records that include the test items' scores
    result = router.fit(RECORDS if router.is_upper_bound else TRAIN, PROFILES)
    assert result is router, f"{name}.fit must return self"
    if router.needs_responses:
        router.attach_responses(responses_for(toy.MODELS + [toy.NEWCOMER]))
    return router


def fitted(name: str) -> tuple[Router, Router]:
    """Two independent fits of the router (same configuration and seed), cached for the module."""
    if name not in _FITTED:
        _FITTED[name] = (fit_one(name), fit_one(name))
    return _FITTED[name]


@pytest.fixture(params=available())
def name(request) -> str:
    return request.param


def test_fit_returns_self_and_score_has_one_row_per_instruction_one_column_per_candidate(name):
    router, _ = fitted(name)
    s = np.asarray(router.score(TEST_PROMPTS, ZOO))
    assert s.shape == (len(TEST_PROMPTS), len(ZOO))
    assert np.all(np.isfinite(s))


def test_route_returns_models_inside_the_zoo(name):
    router, _ = fitted(name)
    routed = router.route(TEST_PROMPTS, ZOO)
    assert len(routed) == len(TEST_PROMPTS)
    assert set(routed) <= {p.model for p in ZOO}


def test_scores_follow_the_order_of_the_candidates(name):
    router, _ = fitted(name)
    forward = np.asarray(router.score(TEST_PROMPTS, ZOO))
    backward = np.asarray(router.score(TEST_PROMPTS, ZOO[::-1]))
    # float32 kernels (Model-SAT packs all candidates into one sequence) reorder sums: 1e-5 absolute, not bits
    np.testing.assert_allclose(backward, forward[:, ::-1], rtol=1e-5, atol=1e-5)


def test_save_then_load_gives_identical_scores(name, tmp_path):
    router, _ = fitted(name)
    router.save(tmp_path / name)
    restored = Router.load(tmp_path / name)
    assert type(restored) is type(router)
    if restored.needs_responses:
        restored.attach_responses(responses_for(toy.MODELS))
    np.testing.assert_array_equal(np.asarray(restored.score(TEST_PROMPTS, ZOO)),
                                  np.asarray(router.score(TEST_PROMPTS, ZOO)))


def test_two_fits_with_the_same_seed_give_identical_scores(name):
    first, second = fitted(name)
    np.testing.assert_array_equal(np.asarray(first.score(TEST_PROMPTS, ZOO)),
                                  np.asarray(second.score(TEST_PROMPTS, ZOO)))


def test_unseen_model_is_refused_clearly_or_scored_finitely(name):
    router, _ = fitted(name)
    zoo = ZOO + [toy.newcomer_profile()]
    if router.needs_seen_models:
        with pytest.raises(RouterError, match=toy.NEWCOMER):
            router.score(TEST_PROMPTS, zoo)
    else:
        s = np.asarray(router.score(TEST_PROMPTS, zoo))
        assert s.shape == (len(TEST_PROMPTS), len(zoo))
        assert np.all(np.isfinite(s))


def test_router_that_needs_responses_fails_clearly_without_them(name):
    if not get(name).needs_responses:
        pytest.skip(f"{name} does not need responses")
    router = get(name).for_tests().fit(TRAIN, PROFILES)
    with pytest.raises(RouterError, match="attach_responses"):
        router.score(TEST_PROMPTS, ZOO)


def test_router_declares_its_needs_as_booleans(name):
    klass = get(name)
    assert klass.name == name
    for flag in ("needs_responses", "needs_seen_models", "is_upper_bound"):
        assert isinstance(getattr(klass, flag), bool), f"{name}.{flag} must be a bool"


def test_a_router_that_declares_no_embeddings_never_embeds(name, monkeypatch):
    """The benchmark skips the (slow, cold-cache) embedding pass when no chosen router `uses_embeddings`."""
    cls = get(name)
    if cls.uses_embeddings:
        pytest.skip(f"{name} uses embeddings")
    import modelsat.embeddings as emb

    class NoDatabase:
        @staticmethod
        def connect(*a, **k):
            raise AssertionError(f"{name} declares uses_embeddings=False but called embed()")

    monkeypatch.setattr(emb, "sqlite3", NoDatabase)
    router = fit_one(name)
    assert router.score(TEST_PROMPTS, ZOO).shape == (len(TEST_PROMPTS), len(ZOO))


def test_a_router_with_independent_columns_scores_a_candidate_alike_in_any_zoo(name):
    """`columns_independent` lets the benchmark score a family's zoos once; it must hold for real."""
    if not get(name).columns_independent:
        pytest.skip(f"{name} does not declare columns_independent")
    router = fitted(name)[0]
    full = router.score(TEST_PROMPTS, ZOO)
    for j in range(len(ZOO)):
        np.testing.assert_allclose(router.score(TEST_PROMPTS, [ZOO[j]])[:, 0], full[:, j], atol=1e-5)
