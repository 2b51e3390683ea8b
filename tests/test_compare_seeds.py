"""experiments/compare_modelsat.py --seeds: the table that ranks routers over several seeds."""

from tests.conftest import load_script


def entry(zoo: str, rows: dict[str, tuple[float, float, float]]) -> dict:
    return {"zoo": {"name": zoo}, "rows": [
        {"method": m, "kind": "router", "mean": 0.5, "delta_vs_best_single": {"estimate": e, "low": lo, "high": hi}}
        for m, (e, lo, hi) in rows.items()] + [{"method": "oracle", "kind": "upper bound", "mean": 0.9,
                                                 "delta_vs_best_single": {"estimate": 0.3, "low": 0.2, "high": 0.4}}]}


def test_seed_table_averages_each_methods_delta_and_counts_significant_seeds():
    mod = load_script("compare_modelsat")
    seed0 = {"zoos": [entry("middle-mixed", {"knn": (0.02, -0.01, 0.05), "modelsat:k": (-0.01, -0.03, 0.01)}),
                      entry("high-performance", {"knn": (0.00, 0.0, 0.0), "modelsat:k": (-0.03, -0.05, -0.01)}),
                      entry("routerdc-in-domain", {"knn": (0.03, 0.01, 0.05), "modelsat:k": (0.01, -0.01, 0.03)})]}
    seed1 = {"zoos": [entry("middle-mixed", {"knn": (-0.02, -0.05, 0.01), "modelsat:k": (0.01, -0.01, 0.03)}),
                      entry("high-performance", {"knn": (0.00, 0.0, 0.0), "modelsat:k": (0.01, -0.01, 0.03)}),
                      entry("routerdc-in-domain", {"knn": (0.01, -0.01, 0.03), "modelsat:k": (0.05, 0.02, 0.08)})]}
    d = mod.seed_deltas(seed0)
    assert set(d) == {"knn", "modelsat:k"}                          # the upper bound is not a router
    assert d["modelsat:k"]["MMLU-Pro (mean of 2)"][0] == -2.0        # (-1 - 3) / 2 points
    assert d["knn"]["routerdc-in-domain"] == (3.0, 1, 0)
    table = mod.seeds_table({0: seed0, 1: seed1})
    row = next(line for line in table.splitlines() if line.startswith("| modelsat:k |"))
    assert "-2.00 / +1.00 → **-0.50**" in row                         # MMLU-Pro mean per seed, then their mean
    assert "+1.00 / +5.00 → **+3.00** [1+ / 0−]" in row               # RouterDC: significant in one seed of two
    knn = next(line for line in table.splitlines() if line.startswith("| knn |"))
    assert "+3.00 / +1.00 → **+2.00** [1+ / 0−]" in knn


def test_release_stream_steps_are_one_column_that_counts_the_steps_below_zero():
    mod = load_script("compare_modelsat")
    steps = [entry("mmlu-pro-release-stream@A", {"modelsat:k": (-0.01, -0.03, 0.01)}),
             entry("mmlu-pro-release-stream@B", {"modelsat:k": (-0.03, -0.05, -0.01)}),
             entry("mmlu-pro-release-stream@C", {"modelsat:k": (0.01, 0.00, 0.02)})]
    seed0 = {"zoos": [entry("routerdc-in-domain", {"modelsat:k": (0.01, -0.01, 0.03)})], "streams": steps}
    d = mod.seed_deltas(seed0)["modelsat:k"]
    assert set(d) == {"mmlu-pro-release-stream (mean of 3)", "routerdc-in-domain"}
    delta, sign, below = d["mmlu-pro-release-stream (mean of 3)"]
    assert (round(delta, 6), sign, below) == (-1.0, None, 1)         # (-1 - 3 + 1) / 3 points; step B is below
    row = next(line for line in mod.seeds_table({0: seed0, 1: seed0}).splitlines() if line.startswith("| modelsat:k |"))
    assert "-1.00 / -1.00 → **-1.00** [2 of 6 below]" in row


def test_head_to_head_rows_take_the_pooled_ci_over_shared_zoos_and_each_zoos_own():
    mod = load_script("compare_modelsat")
    duel = {"modelsat:k": {"knn": {"estimate": 0.02, "low": 0.005, "high": 0.035}}}
    seed0 = {"zoos": [entry("middle-mixed", {"knn": (0.0, -0.01, 0.01)}) | {"head_to_head": duel},
                      entry("high-performance", {"knn": (0.0, -0.01, 0.01)}) | {"head_to_head": duel},
                      entry("routerdc-in-domain", {"knn": (0.0, -0.01, 0.01)}) | {"head_to_head": duel}],
             "families": {"mmlu_pro": {"head_to_head": [{"zoos": ["middle-mixed", "high-performance"], "deltas": {
                 "modelsat:k": {"knn": {"estimate": -0.01, "low": -0.03, "high": 0.01}}}}]}}}
    d = mod.seed_deltas(seed0)["modelsat:k − knn"]
    assert d["MMLU-Pro (mean of 2)"] == (-1.0, 0, 0)          # the pooled CI, not the mean of the zoos' Δ
    assert d["routerdc-in-domain"] == (2.0, 1, 0)
    lines = mod.seeds_table({0: seed0}).splitlines()
    assert lines[-1].startswith("| modelsat:k − knn | -1.00 → **-1.00** [0+ / 0−] | "
                                "+2.00 → **+2.00** [1+ / 0−]")
