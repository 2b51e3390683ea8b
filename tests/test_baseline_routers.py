"""Behaviour of each baseline router that can be checked by construction on the toy dataset (router_data.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import router_data as toy
from modelsat.routers import RouterError, get
from modelsat.routers.forest import flatten_forest, predict_forest
from modelsat.routers.routerdc_style import sample_llm_loss

torch.set_num_threads(1)

RECORDS = toy.records()
TRAIN, TEST = toy.split(RECORDS)
PROFILES = toy.profiles(RECORDS)
NEW_MATH = ["What is 61 plus 17?", "What is 44 plus 9?"]
NEW_HISTORY = ["Who ruled Portugal in the fourteenth century?", "Who ruled Egypt in the ninth century?"]


def test_knn_routes_to_the_model_that_is_right_on_near_neighbours():
    knn = get("knn")(k_grid=(10,)).fit(TRAIN, PROFILES)
    assert set(knn.route(NEW_MATH, PROFILES)) == {"math-whiz"}
    assert set(knn.route(NEW_HISTORY, PROFILES)) == {"historian"}


def test_nearest_rows_equals_a_stable_sort_of_the_whole_row_ties_and_exclusions_included():
    from modelsat.routers.knn import neighbour_sums, nearest_rows
    rng = np.random.default_rng(0)
    index = np.round(rng.normal(size=(500, 8)), 1).astype(np.float32)
    index[100:140] = index[7]                 # 41 identical rows: ties across the k-th place
    query = np.vstack([index[7], rng.normal(size=(5, 8)).astype(np.float32)])
    exclude = [[7, 120], [], [3], [], [], list(range(250))]
    for k in (1, 5, 30, 60, 200):
        got = nearest_rows(query, index, k, exclude)
        sim = query @ index.T
        for i, rows in enumerate(exclude):
            sim[i, rows] = -np.inf
        np.testing.assert_array_equal(got, np.argsort(-sim, axis=1, kind="stable")[:, :k])
    scores = rng.integers(0, 2, size=(500, 3)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = np.nan
    sums, counts = neighbour_sums(query, index, scores, 30, exclude)
    rows = nearest_rows(query, index, 30, exclude)
    np.testing.assert_array_equal(sums, np.nansum(scores[rows], axis=1))
    np.testing.assert_array_equal(counts, (~np.isnan(scores[rows])).sum(axis=1))


def test_knn_chooses_k_on_its_validation_split():
    knn = get("knn")(k_grid=(1, 3, 30)).fit(TRAIN, PROFILES)
    assert knn.k_ in (1, 3, 30)
    assert knn.validation_[knn.k_] == max(knn.validation_.values())


def test_best_single_picks_the_best_training_model():
    router = get("best-single")().fit(TRAIN, PROFILES)
    means = TRAIN.groupby("model")["score"].mean()
    assert set(router.route(NEW_MATH + NEW_HISTORY, PROFILES)) == {means.idxmax()} == {"generalist"}


def test_best_single_prefers_an_unseen_model_only_when_its_profile_is_stronger():
    router = get("best-single")().fit(TRAIN, PROFILES)
    assert router.route(NEW_MATH, PROFILES + [toy.newcomer_profile(0.95)])[0] == toy.NEWCOMER
    assert router.route(NEW_MATH, PROFILES + [toy.newcomer_profile(0.30)])[0] == "generalist"


def test_per_category_classifies_subjects_and_routes_to_the_subject_expert():
    router = get("per-category")().fit(TRAIN, PROFILES)
    assert router.label_used_ == "category"
    assert router.category_accuracy_ >= 0.8
    assert router.predict_category(NEW_MATH + NEW_HISTORY) == ["math"] * 2 + ["history"] * 2
    assert router.route(NEW_MATH + NEW_HISTORY, PROFILES) == ["math-whiz"] * 2 + ["historian"] * 2


def test_oracle_reads_each_items_true_scores():
    router = get("oracle")().fit(RECORDS, PROFILES)
    prompts = list(dict.fromkeys(TEST["prompt"]))
    routed = router.route(prompts, PROFILES)
    truth = TEST.set_index(["prompt", "model"])["score"]
    best = TEST.groupby("prompt")["score"].max()
    assert all(truth[(p, m)] == best[p] for p, m in zip(prompts, routed))


def test_oracle_refuses_an_instruction_it_has_no_scores_for():
    router = get("oracle")().fit(TRAIN, PROFILES)
    with pytest.raises(RouterError, match="no scores"):
        router.score(NEW_MATH, PROFILES)


def test_unseen_model_is_refused_by_mf_with_a_message_naming_it():
    router = get("mf").for_tests().fit(TRAIN, PROFILES)
    with pytest.raises(RouterError, match=toy.NEWCOMER):
        router.score(NEW_MATH, PROFILES + [toy.newcomer_profile()])


def test_mf_learns_which_model_is_right_on_which_subject():
    router = get("mf").for_tests().fit(TRAIN, PROFILES)
    assert router.route(NEW_MATH, PROFILES) == ["math-whiz"] * 2
    assert router.route(NEW_HISTORY, PROFILES) == ["historian"] * 2


def test_mlp_scores_an_unseen_model_higher_when_its_profile_is_stronger():
    router = get("mlp").for_tests().fit(TRAIN, PROFILES)
    s = router.score(NEW_MATH, [toy.newcomer_profile(0.1), toy.newcomer_profile(0.95)])
    assert np.all(s[:, 1] > s[:, 0])


def test_forest_arrays_predict_what_the_sklearn_forest_predicts():
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = x[:, 0] * 2 + (x[:, 1] > 0)
    forest = RandomForestRegressor(n_estimators=7, min_samples_leaf=2, random_state=0).fit(x, y)
    probe = rng.normal(size=(50, 6))
    np.testing.assert_allclose(predict_forest(flatten_forest(forest), probe), forest.predict(probe.astype(np.float32)),
                               rtol=1e-12, atol=1e-12)


def test_routerdc_sample_llm_loss_matches_a_hand_computed_case():
    # one item, 3 models; scores: model 0 right, 1 and 2 wrong; top_k=1, last_k=2
    logits = torch.tensor([[0.5, 0.1, -0.2]])
    scores = torch.tensor([[1.0, 0.0, 0.0]])
    expected = -(0.5 - np.log(np.exp(0.5) + np.exp(0.1) + np.exp(-0.2)))
    assert float(sample_llm_loss(logits, scores, top_k=1, last_k=2)) == pytest.approx(expected, rel=1e-6)
    # a positive that scored 0 contributes nothing; a "negative" that scored > 0.5 is masked out
    assert float(sample_llm_loss(logits, torch.zeros(1, 3), top_k=1, last_k=2)) == 0.0
    both = torch.tensor([[1.0, 1.0, 0.0]])
    expected_masked = -(0.5 - np.log(np.exp(0.5) + np.exp(-0.2)))
    assert float(sample_llm_loss(logits, both, top_k=1, last_k=2)) == pytest.approx(expected_masked, rel=1e-6)


def test_routerdc_routes_to_the_subject_expert():
    router = get("routerdc").for_tests().fit(TRAIN, PROFILES)
    assert router.route(NEW_MATH, PROFILES) == ["math-whiz"] * 2


def test_reranker_prefers_the_candidate_whose_response_looks_right():
    router = get("reranker")().fit(TRAIN, PROFILES)
    prompt = NEW_MATH[0]
    import pandas as pd
    router.attach_responses(pd.DataFrame({
        "model": ["historian", "math-whiz"], "prompt": [prompt, prompt],
        "response": ["Hmm, I am not sure; maybe it is something else entirely?",
                     "The answer is option B, checked step by step."]}))
    assert router.route([prompt], [p for p in PROFILES if p.model in ("historian", "math-whiz")]) == ["math-whiz"]


def test_random_router_is_the_same_in_any_batch_and_differs_by_seed():
    a = get("random")(seed=1).fit(TRAIN, PROFILES)
    whole = a.score(NEW_MATH, PROFILES)
    np.testing.assert_array_equal(a.score(NEW_MATH[:1], PROFILES), whole[:1])
    assert not np.array_equal(get("random")(seed=2).fit(TRAIN, PROFILES).score(NEW_MATH, PROFILES), whole)
