"""Calibrated probabilities (issue 41): calibrators on planted data, the metrics, and Router.predict_proba /
calibrate with save / load. Planted data: a known miscalibration (true P = sigmoid(x / 3) scored as sigmoid(x))
must be repaired on fresh draws; a calibrated input must come out nearly unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

import router_data as toy
from modelsat.calibration import (CalibrationError, Calibrator, brier_score, expected_calibration_error,
                                  fit_calibrator, reliability_curve, sigmoid)
from modelsat.routers import Router, RouterError, get

N = 20000


def overconfident(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(scores, outcomes): the truth is sigmoid(x / 3), the score sigmoid(x), three times too sure of itself."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 3.0, n)
    return sigmoid(x), (rng.random(n) < sigmoid(x / 3)).astype(float)


def calibrated(seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, outcomes) where the probabilities are the truth."""
    rng = np.random.default_rng(seed)
    p = sigmoid(rng.normal(0.0, 2.0, n))
    return p, (rng.random(n) < p).astype(float)


# ---- calibrators on planted data -----------------------------------------------------------------------------
def test_the_planted_miscalibration_is_real():
    scores, outcomes = overconfident(1)
    assert expected_calibration_error(scores, outcomes) > 0.1


@pytest.mark.parametrize("method", ["platt", "isotonic", "auto"])
def test_a_known_miscalibration_is_repaired_on_fresh_draws(method):
    cal = fit_calibrator(*overconfident(0), method=method)
    scores, outcomes = overconfident(1)
    assert expected_calibration_error(cal.predict(scores), outcomes) < 0.02


def test_platt_recovers_the_planted_temperature():
    cal = fit_calibrator(*overconfident(0), method="platt")
    assert cal.params["a"] == pytest.approx(1 / 3, abs=0.03)
    assert cal.params["b"] == pytest.approx(0.0, abs=0.05)


def test_a_calibrated_input_is_left_nearly_unchanged():
    p, outcomes = calibrated(0)
    cal = fit_calibrator(p, outcomes, method="platt")
    fresh, _ = calibrated(1)
    assert np.max(np.abs(cal.predict(fresh) - fresh)) < 0.02


def test_auto_says_which_method_it_chose_and_on_what():
    cal = fit_calibrator(*overconfident(0), method="auto")
    assert cal.method in ("platt", "isotonic")
    assert cal.choice["method"] == cal.method
    assert set(cal.choice["held_out_log_loss"]) == {"platt", "isotonic"}
    assert 0 < cal.choice["held_out_pairs"] < N


def test_auto_keeps_platt_when_a_temperature_explains_the_miscalibration():
    assert fit_calibrator(*overconfident(0), method="auto").method == "platt"


def test_auto_chooses_isotonic_for_a_distortion_platt_cannot_fit():
    rng = np.random.default_rng(0)
    scores = rng.random(N)
    outcomes = (rng.random(N) < np.where(scores < 0.5, 0.2, 0.8)).astype(float)     # a step, not a sigmoid
    assert fit_calibrator(scores, outcomes, method="auto").method == "isotonic"


def test_auto_with_few_pairs_fits_platt():
    scores, outcomes = overconfident(0, n=40)
    assert fit_calibrator(scores, outcomes, method="auto").method == "platt"


def test_scores_outside_the_unit_interval_are_read_as_log_odds():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 5000)
    cal = fit_calibrator(z, (rng.random(5000) < sigmoid(z)).astype(float), method="platt")
    assert cal.scale == "log-odds"
    assert cal.params["a"] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_calibrator_survives_a_round_trip_through_json(method):
    cal = fit_calibrator(*overconfident(0), method=method)
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    scores, _ = overconfident(1, n=1000)
    np.testing.assert_allclose(back.predict(scores), cal.predict(scores), rtol=0, atol=1e-12)
    assert back.method == cal.method and back.choice == cal.choice


def test_predict_keeps_the_shape_of_a_score_table():
    cal = fit_calibrator(*overconfident(0), method="platt")
    table = np.linspace(0.01, 0.99, 12).reshape(3, 4)
    out = cal.predict(table)
    assert out.shape == (3, 4)
    assert np.all(np.diff(out.ravel()) > 0)        # platt never reorders


def test_a_malformed_saved_calibrator_names_the_field():
    with pytest.raises(CalibrationError, match="params must hold a, b"):
        Calibrator.from_dict({"method": "platt", "scale": "probability", "params": {"a": 1.0}})


def test_outcomes_outside_zero_one_are_refused():
    with pytest.raises(CalibrationError, match=r"outcomes must lie in \[0, 1\]"):
        fit_calibrator([0.2, 0.4], [0.0, 2.0])


def test_an_unknown_method_is_refused():
    with pytest.raises(CalibrationError, match="expected one of auto, platt, isotonic"):
        fit_calibrator([0.2, 0.4], [0.0, 1.0], method="beta")


# ---- metrics ---------------------------------------------------------------------------------------------------
def test_ece_is_the_count_weighted_gap_per_bin():
    # bin [0, 0.5): two pairs at 0.2, one right -> |0.5 - 0.2| ; bin [0.5, 1]: two at 0.9, both right -> 0.1
    p, y = [0.2, 0.2, 0.9, 0.9], [0, 1, 1, 1]
    assert expected_calibration_error(p, y, bins=2) == pytest.approx(0.5 * 0.3 + 0.5 * 0.1)


def test_brier_score_of_a_constant_half_is_a_quarter():
    assert brier_score([0.5] * 4, [0, 1, 1, 0]) == pytest.approx(0.25)


def test_reliability_curve_gives_centres_rates_and_counts_with_empty_bins_as_nan():
    curve = reliability_curve([0.05, 0.05, 0.95, 1.0], [0, 1, 1, 1], bins=10)
    np.testing.assert_allclose(curve.centres, np.arange(0.05, 1.0, 0.1))
    assert curve.counts.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert curve.observed[0] == 0.5 and curve.observed[-1] == 1.0
    assert np.isnan(curve.observed[1:-1]).all()


# ---- routers -----------------------------------------------------------------------------------------------------
RECORDS = toy.records()
TRAIN, HELD = toy.split(RECORDS)
PROFILES = toy.profiles(RECORDS)
PROMPTS = list(dict.fromkeys(HELD["prompt"]))


def test_a_router_whose_scores_are_not_probabilities_asks_to_be_calibrated():
    router = get("random")().fit(TRAIN, PROFILES)
    with pytest.raises(RouterError, match="call calibrate"):
        router.predict_proba(PROMPTS, PROFILES)


def test_a_calibrated_router_gives_probabilities_in_the_unit_interval():
    router = get("random")().fit(TRAIN, PROFILES).calibrate(HELD, PROFILES)
    p = router.predict_proba(PROMPTS, PROFILES)
    assert p.shape == (len(PROMPTS), len(PROFILES))
    assert np.all((p >= 0) & (p <= 1))


def test_a_router_whose_scores_are_probabilities_gives_them_uncalibrated():
    router = get("best-single")().fit(TRAIN, PROFILES)
    np.testing.assert_allclose(router.predict_proba(PROMPTS, PROFILES),
                               np.clip(router.score(PROMPTS, PROFILES), 0, 1))


def test_a_model_known_only_by_its_profile_gets_calibrated_probabilities():
    router = get("best-single")().fit(TRAIN, PROFILES).calibrate(HELD, PROFILES, method="platt")
    p = router.predict_proba(PROMPTS, PROFILES + [toy.newcomer_profile(0.8)])
    assert np.all((p[:, -1] > 0) & (p[:, -1] < 1))


def test_calibrate_pairs_every_validation_result_of_a_profiled_model():
    router = get("best-single")().fit(TRAIN, PROFILES)
    scores, outcomes, items = router._calibration_pairs(HELD, PROFILES[:2])
    kept = HELD[HELD["model"].isin([p.model for p in PROFILES[:2]])]
    assert len(scores) == len(outcomes) == len(kept)
    assert len(set(items)) == kept["item_id"].nunique()


def test_calibrate_without_a_profiled_model_says_so():
    router = get("best-single")().fit(TRAIN, PROFILES)
    with pytest.raises(RouterError, match="no validation record of a model with a profile"):
        router.calibrate(HELD, [toy.newcomer_profile()])


def test_save_and_load_keep_the_calibrator(tmp_path):
    router = get("best-single")().fit(TRAIN, PROFILES).calibrate(HELD, PROFILES, method="platt")
    router.save(tmp_path / "r")
    back = Router.load(tmp_path / "r")
    assert back.calibrator_.to_dict() == router.calibrator_.to_dict()
    np.testing.assert_allclose(back.predict_proba(PROMPTS, PROFILES), router.predict_proba(PROMPTS, PROFILES))
    assert "## Calibration" in (tmp_path / "r" / "README.md").read_text()


def test_saving_an_uncalibrated_router_over_a_calibrated_one_drops_the_stale_calibrator(tmp_path):
    get("best-single")().fit(TRAIN, PROFILES).calibrate(HELD, PROFILES, method="platt").save(tmp_path / "r")
    get("best-single")().fit(TRAIN, PROFILES).save(tmp_path / "r")
    assert getattr(Router.load(tmp_path / "r"), "calibrator_", None) is None


def probability_routers() -> list[str]:
    """Routers whose test configuration declares probabilities (an instance's word: Model-SAT's depends on its
    preset, a property that only an instance can answer)."""
    from modelsat.routers import available
    return [n for n in available() if get(n).for_tests().scores_are_probabilities]


@pytest.mark.parametrize("name", probability_routers())
def test_a_router_that_declares_probabilities_scores_its_training_models_in_zero_one(name):
    router = get(name).for_tests()
    router.fit(RECORDS if router.is_upper_bound else TRAIN, PROFILES)
    if router.needs_responses:
        router.attach_responses(HELD[["model", "prompt", "response"]])
    s = router.score(PROMPTS, PROFILES)
    assert s.min() >= -1e-6 and s.max() <= 1 + 1e-6       # kNN's tie-break adds at most 1e-6


def test_the_calibration_report_leaves_out_pairs_without_an_outcome():
    from conftest import load_script
    report = load_script("calibration_report")
    out = report.figures(np.array([0.2, 0.9, 0.5]), np.array([0.0, 1.0, np.nan]), bins=15)
    assert out["pairs"] == 2
    assert out["brier"] == pytest.approx((0.2 ** 2 + 0.1 ** 2) / 2)
