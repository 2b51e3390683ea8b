"""The cost section of the benchmark: hulls, AIQ, cost to reach, the policy sweeps and the random mix, on planted
arrays whose figures are worked out by hand, and the whole section on a small real slice of RouterBench."""

import numpy as np
import pytest

from modelsat.evaluate import cost as C
from modelsat.evaluate import metrics as M
from tests.conftest import needs_data

# a planted curve: the cheapest model (1, 0.50), two operating points on the hull, one under it (3, 0.82 lies
# below the segment from (2, 0.80) to (4, 0.90)), one dominated (3.5, 0.60)
COST = [1.0, 2.0, 3.0, 3.5, 4.0]
QUALITY = [0.50, 0.80, 0.82, 0.60, 0.90]


def test_hull_keeps_the_upper_concave_points_and_stops_at_the_best():
    hx, hy = C.nondecreasing_hull(COST + [5.0], QUALITY + [0.70])     # (5, 0.70) costs more for less
    assert hx.tolist() == [1.0, 2.0, 4.0] and hy.tolist() == [0.50, 0.80, 0.90]
    assert C.hull_value(hx, hy, 6.0) == pytest.approx(0.90)          # flat beyond the best point
    assert np.isnan(C.hull_value(hx, hy, 0.5))                        # nothing is cheaper than its first point


def test_aiq_of_a_planted_curve_is_its_area_by_hand():
    hx, hy = C.nondecreasing_hull(COST, QUALITY)
    # on [1, 5]: (0.5 + 0.8) / 2 · 1 + (0.8 + 0.9) / 2 · 2 + 0.9 · 1 = 0.65 + 1.70 + 0.90 = 3.25, over a range of 4
    assert C.aiq(hx, hy, 1.0, 5.0) == pytest.approx(3.25 / 4)
    # on [2, 4] only the middle segment counts
    assert C.aiq(hx, hy, 2.0, 4.0) == pytest.approx(0.85)


def test_aiq_refuses_a_hull_that_starts_above_the_range():
    hx, hy = C.nondecreasing_hull([2.0, 4.0], [0.8, 0.9])
    with pytest.raises(ValueError, match="cheapest model"):
        C.aiq(hx, hy, 1.0, 5.0)


def test_cost_to_reach_interpolates_on_the_hull_and_is_nan_when_never_reached():
    hx, hy = C.nondecreasing_hull(COST, QUALITY)
    assert C.cost_to_reach(hx, hy, 0.85) == pytest.approx(3.0)       # halfway from (2, 0.80) to (4, 0.90)
    assert C.cost_to_reach(hx, hy, 0.40) == pytest.approx(1.0)
    assert C.cost_to_reach(hx, hy, 0.90) == pytest.approx(4.0)
    assert np.isnan(C.cost_to_reach(hx, hy, 0.95))


def test_read_figures_gives_shares_of_the_best_models_cost():
    f = C.Frame(low=1.0, high=5.0, anchor=(1.0, 0.50), best_cost=4.0, best_quality=0.90)
    fig = C.read_figures(np.array(COST[1:]), np.array(QUALITY[1:]), f)        # the anchor is added by it
    assert fig["aiq"] == pytest.approx(3.25 / 4)
    assert fig["cost_to_reach"]["100"] == pytest.approx(1.0)                 # 4.0 of 4.0
    assert fig["cost_to_reach"]["95"] == pytest.approx((2 + 0.055 / 0.1 * 2) / 4)   # 0.855 at cost 3.1
    assert fig["quality_at"]["25"] == pytest.approx(0.50)                    # cost 1.0: the cheapest model
    assert fig["quality_at"]["50"] == pytest.approx(0.80)                    # cost 2.0
    assert np.isnan(fig["quality_at"]["10"])                                 # cost 0.4: below every point


def _planted(n=300, m=5, seed=0):
    """Outcomes drawn from known P; per-item charged costs equal to the expected ones (so the policies' cost is
    what they are charged); model 4 the best and dearest."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.uniform(0.2, 0.7, size=(n, m)) + np.linspace(0, 0.25, m), 0, 1)
    scores = (rng.random((n, m)) < p).astype(float)
    expected = np.array([0.1, 0.3, 0.2, 1.0, 3.0])
    groups = np.array(["a"] * (n // 2) + ["b"] * (n - n // 2))
    items = C.PricedItems([f"m{j}" for j in range(m)], scores, np.tile(expected, (n, 1)), groups, expected, best=4)
    return p, items


@pytest.mark.parametrize("sweep", [C.tradeoff_curve, C.threshold_curve])
def test_policy_sweeps_are_monotone_in_cost(sweep):
    p, items = _planted()
    curve = sweep("planted", p, items)
    cost, _ = curve.points(items.weights())
    assert len(cost) > 10
    assert np.all(np.diff(cost) <= 1e-12)              # a larger λ or δ never costs more
    assert cost[0] > cost[-1]
    assert cost[-1] == pytest.approx(0.1)              # the far end sends everything to the cheapest model


def test_tradeoff_at_lambda_zero_and_threshold_at_delta_zero_are_max_quality():
    p, items = _planted()
    t, d = C.tradeoff_curve("x", p, items), C.threshold_curve("x", p, items)
    assert t.knobs[0] == 0.0 and d.knobs[0] == 0.0
    np.testing.assert_array_equal(t.quality[0], d.quality[0])


def test_random_mix_is_the_straight_line_between_the_two_end_models():
    _, items = _planted()
    w = items.weights()
    curve = C.mix_curve(items, cheap=0, best=4)
    cost, quality = curve.points(w)
    ends_cost, ends_quality = items.costs.T @ w, items.scores.T @ w
    assert (cost[0], quality[0]) == pytest.approx((ends_cost[0], ends_quality[0]))
    assert (cost[-1], quality[-1]) == pytest.approx((ends_cost[4], ends_quality[4]))
    slope = (quality[-1] - quality[0]) / (cost[-1] - cost[0])
    np.testing.assert_allclose(quality, quality[0] + slope * (cost - cost[0]), atol=1e-12)


def test_the_oracle_beats_the_random_mix_and_the_mix_area_is_the_trapezoid():
    p, items = _planted()
    section = C.cost_section({"modelsat-planted": p}, items, seed=0, n_resamples=200)
    methods = section["methods"]
    assert methods[C.ORACLE]["aiq"] > methods["modelsat-planted"]["aiq"] > 0
    lo, hi = section["cheapest"]["cost_per_call"], section["most_expensive_cost"]
    q0, q1 = section["cheapest"]["quality"], section["best_single"]["quality"]
    # the mix runs from the cheapest model to the best (also the dearest) model: a trapezoid over the range
    assert methods[C.RANDOM_MIX]["aiq"] == pytest.approx((q0 + q1) / 2)
    assert (lo, hi) == pytest.approx((0.1, 3.0))
    diff = section["differences"]["modelsat-planted"]["random mix"]["aiq"]
    assert diff["low"] <= diff["estimate"] <= diff["high"]
    assert diff["estimate"] == pytest.approx(methods["modelsat-planted"]["aiq"] - methods[C.RANDOM_MIX]["aiq"])


def test_bootstrap_weights_draw_the_resamples_of_the_paired_bootstrap():
    rng = np.random.default_rng(1)
    a, b = rng.random(90), rng.random(90)
    groups = np.array(["x"] * 30 + ["y"] * 60)
    W = M.bootstrap_weights(groups, 500, seed=3)
    assert np.allclose(W.sum(axis=1), 1.0)
    ours = M.percentile_interval(M.macro_mean(a - b, groups), W @ (a - b))
    theirs = M.paired_bootstrap(a, b, groups, 500, seed=3)
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high))


def test_routellm_figures_of_a_perfect_preference_beat_the_random_mix():
    rng = np.random.default_rng(0)
    n = 400
    strong = (rng.random(n) < 0.8).astype(float)
    weak = (rng.random(n) < 0.6).astype(float)
    items = C.PricedItems(["strong", "weak"], np.column_stack([strong, weak]),
                          np.tile([1.0, 0.1], (n, 1)), np.array(["mmlu"] * n), np.array([1.0, 0.1]), best=0)
    p = np.column_stack([strong, weak]) * 0.9 + 0.05                     # knows which one answers
    fig = C.routellm_figures({"modelsat-planted": p}, items, 0, 1, n_resamples=200, seed=0)["modelsat-planted"]["mmlu"]
    assert fig["apgr"] > 0.5 and fig["cpt80"] < 0.8
    assert fig["cpt80_vs_random"]["high"] < 0                            # below the random mix's 80 %, CI and all


@needs_data
def test_cost_section_on_a_real_routerbench_slice():
    """RouterBench's own per-item costs, three models, the per-benchmark best calibrated on validation items."""
    from modelsat import sources
    from modelsat.evaluate import benchmark as B
    from modelsat.evaluate import harness as H
    from modelsat.evaluate.zoos import zoo_from_dict
    models = ["gpt-4-1106-preview", "gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat"]
    zoo = zoo_from_dict({"name": "rb3", "family": "routerbench", "source": "routerdc",
                         "benchmarks": ["routerbench/arc_challenge", "routerbench/winogrande"], "models": models})
    recs = sources.load("routerdc")
    recs = recs[recs["model"].isin(models) & recs["benchmark"].isin(zoo.benchmarks)]
    fam = H.prepare_family("routerbench", [zoo], recs, seed=0, test_builder=lambda pool, train: None)
    zd = H.build_zoo_data(fam, zoo, max_test_items=150, seed=0)
    assert H.has_costs(zd) and zd.best_single == "gpt-4-1106-preview"
    val = H.calibration_records(fam, 150, seed=0)
    assert val["item_id"].nunique() <= 300 and set(val["model"]) == set(models)
    rng = np.random.default_rng(0)
    planted = np.clip(0.6 * zd.scores + 0.2 + rng.normal(0, 0.1, zd.scores.shape), 0, 1)
    section = B.cost_section(zd, fam, {"modelsat-planted": planted}, val, seed=0)
    assert set(section["methods"]) == {"modelsat-planted", C.PER_BENCHMARK, C.ORACLE, C.RANDOM_MIX}
    gpt4 = section["best_single"]
    assert gpt4["model"] == "gpt-4-1106-preview" and gpt4["cost_per_call"] > 1e-3     # milli-USD per item
    oracle = section["methods"][C.ORACLE]
    assert oracle["cost_to_reach"]["100"] < 0.5 and oracle["aiq"] >= section["methods"][C.RANDOM_MIX]["aiq"]
    assert set(section["per_benchmark"]) == set(zoo.benchmarks)


def test_the_report_prints_a_cost_table_differences_and_a_plot(tmp_path):
    from rich.console import Console
    from modelsat.evaluate import report
    p, items = _planted()
    entry = {"zoo": {"name": "planted"}, "n_test_items": len(p),
             "cost": C.cost_section({"modelsat-planted": p}, items, seed=0, n_resamples=100)}
    console = Console(record=True, width=250)
    console.print(report.cost_table(entry))
    text = console.export_text()
    assert "planted — quality at a price" in text and "m4's" in text
    assert text.index("modelsat-planted") < text.index("oracle")            # by AIQ, the oracle last
    md = "\n".join(report._md_cost(entry))
    assert "| random mix |" in md and "modelsat-planted − random mix: AIQ" in md
    styles = report.method_styles(list(entry["cost"]["methods"]))
    path = report.cost_plot(entry, styles, tmp_path)
    assert path.name == "cost_planted.png" and path.stat().st_size > 10_000


def test_a_zoos_price_table_prices_records_that_carry_no_cost():
    import pandas as pd
    from modelsat.evaluate import harness as H
    from modelsat.evaluate.zoos import zoo_from_dict
    zoo = zoo_from_dict({"name": "pair", "models": [{"name": "big", "price_per_mtok": 20.0},
                                                     {"name": "small", "price_per_mtok": {"input": 0.2, "output": 0.4}},
                                                     "free"]})
    recs = pd.DataFrame({"model": ["big", "small", "free", "big"], "prompt": ["x" * 400] * 4,
                         "response": ["y" * 40, None, None, None], "cost": [np.nan, np.nan, np.nan, 0.5]})
    priced, notes = H.price_records(recs, [zoo])
    # 100 prompt tokens; big answered 10 tokens, small none recorded (300 assumed)
    assert priced["cost"].iloc[0] == pytest.approx((100 * 20 + 10 * 20) / 1e6)
    assert priced["cost"].iloc[1] == pytest.approx((100 * 0.2 + 300 * 0.4) / 1e6)
    assert np.isnan(priced["cost"].iloc[2]) and priced["cost"].iloc[3] == 0.5       # no price; its own cost wins
    assert priced["cost_is_estimate"].tolist() == [True, True, False, False]
    assert len(notes) == 1 and "big, small" in notes[0] and np.isnan(recs["cost"].iloc[0])   # input untouched


def test_reliability_table_reads_calibrations_ece_and_the_diagram_is_written(tmp_path):
    """Planted P: the table's ECE and Brier are calibration's on the same (model, item) pairs, before (a raw
    probability, here a squashed copy of P) and after; a router without a probability score reads n/a before."""
    from modelsat import calibration as K
    from modelsat.evaluate import report
    p, items = _planted()
    raw = p ** 2                                   # overconfident-low: far from the diagonal
    entry = {"zoo": {"name": "planted"}, "n_test_items": len(p),
             "cost": C.cost_section({"modelsat-planted": p, "knn": 1 - p}, items, seed=0, n_resamples=20,
                                    raw={"modelsat-planted": raw})}
    rel = entry["cost"]["reliability"]
    assert rel["bins"] == 15
    after, before = rel["routers"]["modelsat-planted"]["after"], rel["routers"]["modelsat-planted"]["before"]
    assert after["ece"] == pytest.approx(K.expected_calibration_error(p, items.scores, bins=15))
    assert before["ece"] == pytest.approx(K.expected_calibration_error(raw, items.scores, bins=15))
    assert after["brier"] == pytest.approx(K.brier_score(p, items.scores))
    assert after["ece"] < 0.05 < before["ece"]    # outcomes were drawn from p itself
    assert rel["routers"]["knn"]["before"] is None and after["pairs"] == p.size
    md = "\n".join(report._md_reliability(entry))
    row = next(line for line in md.splitlines() if line.startswith("| modelsat-planted |"))
    assert row.split(" | ")[3] == f"{after['ece']:.4f}" and row.split(" | ")[1] == f"{before['ece']:.4f}"
    assert next(line for line in md.splitlines() if line.startswith("| knn |")).split(" | ")[1] == "n/a"
    assert "Validation items fit each calibrator" in md and "n/a for knn (raw score is not a probability)" in md
    styles = report.method_styles(list(entry["cost"]["methods"]))
    path = report.reliability_plot(entry, styles, tmp_path)
    assert path.name == "reliability_planted.png" and path.stat().st_size > 10_000
