"""Routing policies (issue 41) on hand-made probabilities and costs: each policy's choice, the knobs' edge cases,
the budget met on the items it was fitted on, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from modelsat.policies import (DEFAULT_OUTPUT_TOKENS, POLICIES, PolicyError, budget, choose, expected_cost,
                               fit_budget, max_quality, split_price, threshold, tradeoff)

MODELS = ["big", "mid", "small"]
COST = np.array([0.010, 0.001, 0.0001])          # USD per request
P = np.array([[0.90, 0.88, 0.50],                # big best, mid nearly as good
              [0.60, 0.70, 0.65],                # mid best, small close
              [0.95, 0.40, 0.30]])               # big far ahead


def random_case(seed: int, n: int = 400, m: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, m)), rng.random((n, m)) * 0.01


def test_max_quality_takes_the_highest_probability():
    out = max_quality(P, COST, MODELS)
    assert out.chosen_models == ["big", "mid", "big"]
    np.testing.assert_allclose(out.p, [0.90, 0.70, 0.95])
    np.testing.assert_allclose(out.cost, [0.010, 0.001, 0.010])


def test_choices_carry_every_candidates_probability_and_cost():
    out = max_quality(P, COST, MODELS)
    np.testing.assert_array_equal(out.candidate_p, P)
    np.testing.assert_array_equal(out.candidate_cost, np.broadcast_to(COST, P.shape))


def test_max_quality_breaks_ties_toward_the_cheaper_model():
    assert max_quality([[0.8, 0.8]], [0.01, 0.001]).index.tolist() == [1]


def test_tradeoff_gives_up_a_small_gain_that_costs_too_much():
    # lambda = 30 per USD: big's +0.02 over mid costs 0.009 USD (0.27 in P) -> mid; big's +0.55 on row 3 is kept
    assert tradeoff(P, COST, 30.0, MODELS).chosen_models == ["mid", "mid", "big"]


def test_tradeoff_with_lambda_zero_equals_max_quality():
    p, cost = random_case(0)
    np.testing.assert_array_equal(tradeoff(p, cost, 0.0).index, max_quality(p, cost).index)


def test_threshold_takes_the_cheapest_within_delta_of_the_best():
    assert threshold(P, COST, delta=0.06, models=MODELS).chosen_models == ["mid", "small", "big"]


def test_threshold_takes_the_cheapest_above_an_absolute_tau():
    assert threshold(P, COST, tau=0.6, models=MODELS).chosen_models == ["mid", "small", "big"]


def test_threshold_with_tau_above_every_candidate_takes_the_best():
    assert threshold(P, COST, tau=0.99, models=MODELS).chosen_models == ["big", "mid", "big"]


def test_threshold_with_delta_zero_equals_max_quality_up_to_ties_toward_the_cheaper():
    p, cost = random_case(1)
    p[:50, 1] = p[:50, 0]                      # planted ties
    np.testing.assert_array_equal(threshold(p, cost, delta=0.0).index, max_quality(p, cost).index)


def test_the_budget_policy_meets_its_budget_on_the_items_it_was_fitted_on():
    p, cost = random_case(2)
    top, floor = max_quality(p, cost).mean_cost, cost.min(axis=1).mean()
    for target in (floor + 0.1 * (top - floor), floor + 0.5 * (top - floor), floor + 0.9 * (top - floor)):
        fitted = fit_budget(p, cost, target)
        out = budget(p, cost, target)
        assert fitted.met and out.mean_cost <= target
        assert out.params["lambda"] == fitted.lam


def test_the_budget_policy_buys_quality_with_a_larger_budget():
    p, cost = random_case(3)
    top, floor = max_quality(p, cost).mean_cost, cost.min(axis=1).mean()
    assert budget(p, cost, floor + 0.3 * (top - floor)).mean_p < budget(p, cost, floor + 0.8 * (top - floor)).mean_p


def test_a_budget_that_max_quality_meets_is_max_quality():
    p, cost = random_case(4)
    out = budget(p, cost, 1.0)
    assert out.params["lambda"] == 0.0
    np.testing.assert_array_equal(out.index, max_quality(p, cost).index)


def test_a_budget_below_the_cheapest_models_cost_is_flagged_unmet():
    out = budget(P, COST, 0.00001)
    assert out.params["met"] is False
    assert out.index.tolist() == [2, 2, 2]


def test_the_budget_lambda_fitted_on_validation_items_is_applied_to_new_ones():
    p_val, cost_val = random_case(5)
    p_new, cost_new = random_case(6, n=50)
    out = budget(p_new, cost_new, 0.002, validation=(p_val, cost_val))
    assert out.params["fitted_on"] == "validation items"
    np.testing.assert_array_equal(out.index, tradeoff(p_new, cost_new, fit_budget(p_val, cost_val, 0.002).lam).index)


def test_choose_dispatches_every_policy_by_name():
    knobs = {"max-quality": {}, "tradeoff": {"lam": 30.0}, "threshold": {"delta": 0.06},
             "budget": {"budget_usd": 0.005}}
    for name in POLICIES:
        assert choose(P, COST, name, models=MODELS, **knobs[name]).policy == name


def test_an_unknown_policy_is_refused_with_the_known_names():
    with pytest.raises(PolicyError, match="unknown policy 'cheapest'; expected one of max-quality"):
        choose(P, COST, "cheapest")


def test_a_negative_delta_is_refused():
    with pytest.raises(PolicyError, match="delta must be >= 0"):
        threshold(P, COST, delta=-0.1)


def test_threshold_without_a_knob_says_what_to_give():
    with pytest.raises(PolicyError, match="needs delta"):
        threshold(P, COST)


def test_a_nan_cost_is_refused_with_the_candidate_named():
    with pytest.raises(PolicyError, match="cost of candidate 1 .* is NaN"):
        max_quality(P, [0.01, float("nan"), 0.0])


def test_costs_that_do_not_match_the_candidates_are_refused():
    with pytest.raises(PolicyError, match="2 values for 3 candidates"):
        max_quality(P, [0.01, 0.02])


def test_raw_scores_outside_zero_one_are_refused():
    with pytest.raises(PolicyError, match="predict_proba"):
        max_quality([[2.3, -1.0]], [0.01, 0.02])


def test_tradeoff_without_lambda_says_what_to_give():
    with pytest.raises(PolicyError, match="needs lam"):
        choose(P, COST, "tradeoff")


def test_expected_cost_charges_input_and_output_tokens_per_million():
    assert expected_cost(1000, 2.0, 10.0, 500) == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)


def test_expected_cost_uses_the_stated_default_output_length():
    assert expected_cost(0, 0.0, 1.0) == pytest.approx(DEFAULT_OUTPUT_TOKENS / 1e6)


def test_expected_cost_of_n_prompts_and_m_candidates_is_a_table():
    out = expected_cost([100, 2000], [1.0, 10.0], [2.0, 30.0], [300, 100])
    assert out.shape == (2, 2)
    assert out[1, 1] == pytest.approx((2000 * 10.0 + 100 * 30.0) / 1e6)


def test_a_negative_price_is_refused():
    with pytest.raises(PolicyError, match="input price"):
        expected_cost(100, -1.0, 1.0)


def test_split_price_reads_a_number_or_input_and_output():
    assert split_price(0.5) == (0.5, 0.5)
    assert split_price({"input": 0.15, "output": 0.6}) == (0.15, 0.6)
    assert split_price(None) is None
