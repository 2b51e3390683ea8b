"""The routing metrics on small cases computed by hand."""

import numpy as np
import pytest

from modelsat.evaluate import metrics as M

# 4 items x 3 models
S = np.array([[1, 0, 0],
              [0, 1, 0],
              [1, 1, 0],
              [0, 0, 0]], dtype=float)


def test_oracle_is_the_best_model_per_item():
    assert M.oracle_scores(S).tolist() == [1, 1, 1, 0]
    assert M.macro_mean(M.oracle_scores(S)) == 0.75


def test_random_is_the_expected_value_over_models():
    assert np.allclose(M.random_scores(S), [1 / 3, 1 / 3, 2 / 3, 0])


def test_routed_scores_follow_the_picks():
    assert M.routed_scores(S, np.array([0, 1, 2, 0])).tolist() == [1, 1, 0, 0]


def test_macro_mean_weights_each_group_once():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    groups = np.array(["a", "a", "a", "b"])
    assert M.macro_mean(values, groups) == 0.5
    assert M.macro_mean(values) == 0.75


def test_gap_closed_is_share_of_best_single_to_oracle_gap():
    # best single (model 0) = 0.5, oracle = 0.75, routed = 0.625 -> half the gap
    assert M.gap_closed(0.625, 0.5, 0.75) == pytest.approx(0.5)
    assert M.gap_closed(0.4, 0.5, 0.75) == pytest.approx(-0.4)
    assert np.isnan(M.gap_closed(0.5, 0.5, 0.5))


def test_best_single_is_chosen_by_macro_mean_on_training_items():
    train = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=float)
    groups = np.array(["a", "a", "a", "b"])
    assert M.best_single_index(train) == 0                     # micro: 0.75 vs 0.25
    train2 = np.array([[1, 1], [1, 1], [0, 1], [0, 1]], dtype=float)
    groups2 = np.array(["a", "a", "b", "b"])
    assert M.best_single_index(train2, groups2) == 1


def test_per_group_best_falls_back_to_best_single_for_unseen_groups():
    train = np.array([[1, 0], [0, 1]], dtype=float)
    picks, missing = M.per_group_best_picks(train, np.array(["a", "b"]), np.array(["b", "a", "c"]), fallback=0)
    assert picks.tolist() == [1, 0, 0]
    assert missing == ["c"]


def test_bootstrap_ci_of_identical_systems_is_zero():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    ci = M.paired_bootstrap(a, a, n_resamples=200)
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert not ci.significant


def test_bootstrap_ci_of_a_constant_difference_is_that_difference():
    b = np.array([0.2, 0.4, 0.1, 0.9])
    ci = M.paired_bootstrap(b + 0.1, b, n_resamples=200)
    assert ci.estimate == pytest.approx(0.1)
    assert ci.low == pytest.approx(0.1) and ci.high == pytest.approx(0.1)
    assert ci.significant


def test_bootstrap_ci_matches_the_binomial_spread_and_is_seeded():
    # a wins on 60 of 100 items, loses on 40: difference 0.2, sd of the mean = sqrt(1 - 0.04)/10 = 0.098
    a = np.r_[np.ones(60), np.zeros(40)]
    b = np.r_[np.zeros(60), np.ones(40)]
    ci = M.paired_bootstrap(a, b, n_resamples=4000, seed=1)
    assert ci.estimate == pytest.approx(0.2)
    assert ci.low == pytest.approx(0.2 - 1.96 * 0.098, abs=0.03)
    assert ci.high == pytest.approx(0.2 + 1.96 * 0.098, abs=0.03)
    assert ci == M.paired_bootstrap(a, b, n_resamples=4000, seed=1)


def test_bootstrap_resamples_within_groups():
    # group a: always +1, group b: always -1 -> macro difference is exactly 0 in every resample
    a = np.array([1, 1, 1, 0.0])
    b = np.array([0, 0, 0, 1.0])
    ci = M.paired_bootstrap(a, b, groups=np.array(["a", "a", "a", "b"]), n_resamples=300)
    assert (ci.low, ci.high) == (0.0, 0.0)


# RouteLLM: strong model right on items 0, 1, 2; weak right on items 2, 3
STRONG = np.array([1, 1, 1, 0], dtype=float)
WEAK = np.array([0, 0, 1, 1], dtype=float)


def test_perfect_preference_recovers_the_gap_fastest():
    pref = np.array([3, 2, 1, 0], dtype=float)         # sends items 0 then 1 to strong first
    curve = M.strong_call_curve(pref, STRONG, WEAK, n_points=5)
    assert curve.strong_share.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert curve.quality.tolist() == [0.5, 0.75, 1.0, 1.0, 0.75]
    # PGR = (q - 0.5) / 0.25 = [0, 1, 2, 2, 1]; trapezoid over step 0.25: 0.25 * (0.5 + 1.5 + 2 + 1.5) = 1.375
    assert M.apgr(curve, 0.75, 0.5) == pytest.approx(1.375)
    # 50 % of the gap = quality 0.625: halfway between shares 0 and 0.25
    assert M.cpt(curve, 0.75, 0.5, 0.5) == pytest.approx(0.125)
    assert M.cpt(curve, 0.75, 0.5, 0.8) == pytest.approx(0.2)


def test_a_backwards_preference_scores_below_the_weak_model_first():
    # a preference that sends the weak-only item first, then the tie, then the strong wins: linear-ish curve
    pref = np.array([0, 0, 0, 0], dtype=float)          # stable order: items 0..3
    curve = M.strong_call_curve(pref, STRONG, WEAK, n_points=5)
    assert curve.quality.tolist() == [0.5, 0.75, 1.0, 1.0, 0.75]
    worst = M.strong_call_curve(np.array([0, 1, 2, 3.0]), STRONG, WEAK, n_points=5)
    # item 3 first (loses 1), item 2 (tie), then 1, 0
    assert worst.quality.tolist() == [0.5, 0.25, 0.25, 0.5, 0.75]
    assert M.apgr(worst, 0.75, 0.5) == pytest.approx(0.25 * (-0.5 - 1 - 0.5 + 0.5))
    assert M.cpt(worst, 0.75, 0.5, 0.5) == pytest.approx(0.875)


def test_cpt_is_nan_when_never_reached():
    curve = M.CallCurve(np.array([0, 1.0]), np.array([0.5, 0.6]))
    assert np.isnan(M.cpt(curve, 0.8, 0.5, 0.8))


def test_routed_cost_is_the_mean_cost_of_the_picks():
    costs = np.array([[2.0, 1.0], [4.0, 3.0]])
    assert M.routed_cost(costs, np.array([0, 1])) == 2.5


def test_within_item_auc_is_the_per_item_roc_auc_of_centred_scores():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(3)
    truth = (rng.random((200, 6)) < 0.5).astype(float)
    scores = np.round(rng.normal(size=(200, 6)) + 0.8 * truth, 1)      # rounded: ties within items
    centred = scores - scores.mean(axis=0)
    kept = [i for i in range(200) if 0 < truth[i].sum() < 6]
    auc, n = M.within_item_auc(scores, truth)
    assert n == len(kept) < 200
    assert auc == pytest.approx(np.mean([roc_auc_score(truth[i], centred[i]) for i in kept]))
    assert auc > 0.6


def test_within_item_auc_gives_a_half_to_strength_and_difficulty_alone():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]], dtype=float)
    strength = np.tile([0.875, 0.5, 0.25], (4, 1))                      # which model is stronger overall
    difficulty = np.array([[0.5], [0.75], [0.25], [1.0]]) + strength     # plus which item is harder (exact in binary)
    assert M.within_item_auc(strength, truth) == (0.5, 3)
    assert M.within_item_auc(difficulty, truth)[0] == pytest.approx(0.5)
    assert M.within_item_auc(truth + 0.0, truth)[0] > 0.5         # knowing the item's answerers
    groups = np.array(["a", "a", "b", "b"])
    by_group = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 1, 1]], dtype=float)
    per_group = np.array([[0.75, 0.5, 0.25]] * 2 + [[0.25, 0.75, 0.5]] * 2)
    assert M.within_item_auc(per_group, by_group) == (0.875, 4)          # which model is best at each benchmark ...
    assert M.within_item_auc(per_group, by_group, groups) == (0.5, 4)    # ... is not item-level skill within it
    with pytest.raises(ValueError, match="shape"):
        M.within_item_auc(strength[:, :2], truth)
    assert np.isnan(M.within_item_auc(strength[3:], truth[3:])[0])


def test_within_item_auc_reads_probabilities_as_log_odds_so_a_rasch_router_gets_a_half():
    rng = np.random.default_rng(0)
    strength, difficulty = rng.normal(scale=0.6, size=8), rng.normal(scale=0.6, size=(300, 1))
    interaction = rng.normal(scale=1.5, size=(300, 8))                  # item-level skill, model by model
    logits = strength - difficulty + interaction
    truth = (rng.random((300, 8)) < 1 / (1 + np.exp(-logits))).astype(float)
    rasch = 1 / (1 + np.exp(-(strength - difficulty)))                  # strength and difficulty alone, as probabilities
    assert rasch.min() >= 1e-4 and rasch.max() <= 1 - 1e-4              # nothing clipped: exactly the log-odds
    assert M.within_item_auc(rasch, truth)[0] == pytest.approx(0.5)
    assert M.within_item_auc(strength - difficulty, truth)[0] == pytest.approx(0.5)
    skilled, _ = M.within_item_auc(1 / (1 + np.exp(-logits)), truth)
    assert skilled > 0.6 and skilled == pytest.approx(M.within_item_auc(logits, truth)[0])
