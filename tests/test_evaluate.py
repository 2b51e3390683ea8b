"""The evaluation harness on small hand-written records: references, routers, splits kept apart, n/a rows."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelsat.evaluate import harness as H
from modelsat.evaluate.report import markdown, zoo_table
from modelsat.evaluate.zoos import zoo_from_dict
from modelsat.routers.base import Router, RouterError
from tests.conftest import needs_data


def _records():
    """3 models x 2 benchmarks x 40 items; 'math' is good at b1, 'code' at b2, 'mid' so-so at both."""
    rows = []
    rng = np.random.default_rng(0)
    for bench, good in (("b1", "math"), ("b2", "code")):
        for i in range(40):
            split = "test" if i >= 30 else "train"
            for m in ("math", "code", "mid"):
                p = 0.9 if m == good else (0.6 if m == "mid" else 0.2)
                rows.append({"model": m, "benchmark": bench, "item_id": str(i), "prompt": f"{bench} question {i}",
                             "subject": None, "score": float(rng.random() < p), "cost": {"math": 1.0, "code": 2.0,
                             "mid": 0.5}[m], "response": None, "split": split})
    return pd.DataFrame(rows)


ZOO = zoo_from_dict({"name": "toy", "family": "toy", "models": ["math", "code", "mid"]})


def _family():
    return H.prepare_family("toy", [ZOO], _records(), seed=0, test_builder=lambda pool, train: None)


class _Unseen(Router):
    name = "toy-unseen"
    needs_seen_models = True

    def fit(self, records, profiles):
        self.models_ = sorted(records["model"].unique())
        return self

    def score(self, instructions, candidates):
        self.check_candidates(candidates, self.models_)
        return np.zeros((len(instructions), len(candidates)))


class _BenchmarkOracle(Router):
    """Knows which model is good at which benchmark (from the prompt's first word)."""
    name = "toy-benchmark"

    def fit(self, records, profiles):
        return self

    def score(self, instructions, candidates):
        want = {"b1": "math", "b2": "code"}
        return np.array([[1.0 if c.model == want[p.split()[0]] else 0.0 for c in candidates] for p in instructions])


def test_routers_train_only_on_training_items_of_training_models():
    fam = _family()
    tr = fam.train_records
    val = fam.splits[fam.splits["split"] == "validation"]
    expected = {(b, str(i)) for b in ("b1", "b2") for i in range(30)} - set(zip(val["benchmark"], val["item_id"]))
    assert set(zip(tr["benchmark"], tr["item_id"])) == expected
    assert len(val) == 2 * round(30 * 0.1 / 0.8)
    assert (fam.splits.groupby("split").size()["test"]) == 20
    assert "eval_split" not in tr.columns


def test_references_are_right_on_the_toy_zoo():
    fam = _family()
    zd = H.build_zoo_data(fam, ZOO)
    S = zd.scores
    assert zd.scores.shape == (20, 3)
    assert np.allclose(zd.references["oracle"], S.max(1))
    assert np.allclose(zd.references["random"], S.mean(1))
    # per-benchmark best = math on b1, code on b2 (chosen on training items)
    pb = zd.references["per-benchmark best"]
    want = np.where(zd.groups == "b1", S[:, zd.models.index("math")], S[:, zd.models.index("code")])
    assert np.allclose(pb, want)


def test_a_router_that_knows_the_benchmark_matches_per_benchmark_best_and_beats_best_single():
    fam = _family()
    zd = H.build_zoo_data(fam, ZOO)
    router = _BenchmarkOracle().fit(fam.train_records, list(fam.profiles.values()))
    row, s = H.router_row("toy-benchmark", router, zd, fam.profiles, fam, seed=0)
    assert row["status"] == "ok"
    assert row["mean"] == pytest.approx(H.M.macro_mean(zd.references["per-benchmark best"], zd.groups))
    assert row["delta_vs_best_single"]["estimate"] > 0
    assert row["pick_share"] == {"math": 0.5, "code": 0.5}
    assert row["cost_per_call"] == pytest.approx(1.5)
    assert "ms_per_instruction" in row


def test_the_fit_status_keeps_what_a_router_chose_and_the_report_prints_it():
    from modelsat.routers.knn import KNNRouter
    fam = _family()
    router, status = H.fit_router("knn", KNNRouter(k_grid=(1, 5)), fam)
    assert status["choices"] == {"k": router.k_} and router.k_ in (1, 5)
    assert "choices" not in H.fit_router("toy-benchmark", _BenchmarkOracle(), fam)[1]     # chose nothing
    info = {"models": ["math", "code", "mid"], "train_models": ["math", "code", "mid"], "split_counts": {},
            "profile_method": "none", "splits_file": "toy.csv",
            "fit": {"knn": status | {"choices": {"k": 5, "prior": {"kappa": 1e6, "task_kappa": None},
                                                 "loss": {f"k={k}": 0.5 for k in range(20)}}}}}
    md = markdown({"run": {"started": "now", "seed": 0, "quick": True, "bootstrap_resamples": 10},
                   "families": {"toy": info}, "zoos": []})
    assert "chose k=5, prior.kappa=1e+06" in md and "task_kappa" not in md
    # a grid's 20 losses are counted, not listed, in the Markdown
    assert "loss=(20 values in results.json)" in md and "k=19" not in md


def test_an_unseen_model_gives_na_for_a_learned_id_router():
    fam = _family()
    fam.train_models = ["math", "code"]
    zd = H.build_zoo_data(fam, ZOO)
    router = _Unseen().fit(fam.train_records, [])
    row, s = H.router_row("toy-unseen", router, zd, fam.profiles, fam, seed=0)
    assert row["status"] == "n/a (unseen model)" and s is None


def test_cost_curve_goes_from_quality_to_cheapness():
    from modelsat.evaluate.cost import tradeoff_curve
    fam = _family()
    zd = H.build_zoo_data(fam, ZOO)
    assert H.has_costs(zd)
    items = H.priced_items(zd)
    p = _BenchmarkOracle().score(zd.prompts, [fam.profiles[m] for m in zd.models])
    cost, _ = tradeoff_curve("toy-benchmark", p, items).points(items.weights())
    assert cost[0] == pytest.approx(1.5)
    assert cost[-1] == pytest.approx(0.5)     # everything to the cheapest model


def test_release_stream_zoos_are_the_best_so_far_plus_the_newest():
    order = [("a", "2023-01"), ("b", "2023-02"), ("c", "2023-03"), ("d", "2024-01"), ("e", "2024-02")]
    from modelsat.aptitude.profile import Profile, SubjectScore
    acc = {"a": 0.1, "b": 0.5, "c": 0.3, "d": 0.9, "e": 0.2}
    profiles = {m: Profile(m, "v", {"s": SubjectScore(a, 20)}) for m, a in acc.items()}
    steps = H.stream_steps(order, ["a", "b", "c"], profiles, keep_best=2, cutoff="2024")
    assert [s["models"] for s in steps] == [["b", "c", "d"], ["d", "b", "e"]]
    assert steps[1]["unseen"] == ["d", "e"]


def test_the_report_prints_losses_and_na_rows():
    fam = _family()
    zd = H.build_zoo_data(fam, ZOO)
    entry = {"zoo": ZOO.to_dict(), "family": "toy", "n_test_items": 20,
             "n_test_items_per_benchmark": {"b1": 10, "b2": 10}, "best_single_model": zd.best_single,
             "notes": [], "rows": H.reference_rows(zd, 0) + [{"method": "x", "kind": "router",
                                                             "status": "n/a (unseen model)", "reason": "r"}]}
    from rich.console import Console
    c = Console(record=True, width=200)
    c.print(zoo_table(entry))
    text = c.export_text()
    assert "n/a (unseen model)" in text and "oracle (upper bound)" in text
    md = markdown({"run": {"started": "now", "seed": 0, "quick": True, "bootstrap_resamples": 10},
                   "families": {}, "zoos": [entry, entry | {"zoo": ZOO.to_dict() | {"name": "again"}}]})
    assert "| random |" in md
    # the summary (methods x zoos, and their average) shows each router's Δ with its CI, and n/a rows as such
    summary = md.split("## Summary")[1].split("## Families")[0]
    rand = next(r for r in entry["rows"] if r["method"] == "random")
    d = rand["delta_vs_best_single"]
    cell = f"{100 * rand['mean']:.2f} ({100 * d['estimate']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}])"
    assert f"| random | {cell} | {cell} | {100 * rand['mean']:.2f} ({100 * d['estimate']:+.2f}) |" in summary
    assert "| x | n/a (see the zoo's table) | n/a (see the zoo's table) |  |" in summary


@needs_data
def test_real_routerdc_splits_keep_test_files_apart():
    from modelsat import sources
    zoo = zoo_from_dict({"name": "rdc", "family": "rdc", "source": "routerdc",
                         "benchmarks": ["routerdc/humaneval", "routerdc/javascript"],
                         "models": ["meta-math/MetaMath-Mistral-7B", "cognitivecomputations/dolphin-2.9-llama3-8b"]})
    fam = H.prepare_family("rdc", [zoo], sources.load("routerdc"), 0, lambda pool, train: None)
    split = fam.records.drop_duplicates(["benchmark", "item_id"]).set_index(["benchmark", "item_id"])
    assert (split.loc["routerdc/javascript", "eval_split"] == "test").all()
    assert (split.loc["routerdc/humaneval", "eval_split"] == "test").sum() == 49
    zd = H.build_zoo_data(fam, zoo)
    assert len(zd.prompts) == 49 + 164


def test_shared_scores_slice_the_family_matrix_into_each_zoos_row():
    fam = _family()
    small = zoo_from_dict({"name": "pair", "family": "toy", "models": ["mid", "code"]})
    zds = [H.build_zoo_data(fam, ZOO), H.build_zoo_data(fam, small)]
    router = _BenchmarkOracle()
    assert H.shared_scores(router, zds, fam.profiles) is None          # not declared independent
    router.columns_independent = True
    shared = H.shared_scores(router, zds, fam.profiles)
    assert shared.scores.shape == (len(set(zds[0].prompts) | set(zds[1].prompts)), 3)
    for zd in zds:
        alone, _ = H.router_row("r", router, zd, fam.profiles, fam, 0)
        sliced, s = H.router_row("r", router, zd, fam.profiles, fam, 0, shared)
        assert s.shape == (len(zd.prompts), len(zd.models))
        assert {k: v for k, v in sliced.items() if k != "ms_per_instruction"} == \
               {k: v for k, v in alone.items() if k != "ms_per_instruction"}


def test_an_item_rendered_differently_per_model_gets_one_prompt_text():
    recs = _records()
    recs.loc[(recs["model"] == "code") & (recs["item_id"] == "35"), "prompt"] += "  "   # a variant rendering
    fam = H.prepare_family("toy", [ZOO], recs, seed=0, test_builder=lambda pool, train: None)
    assert fam.records.groupby(["benchmark", "item_id"])["prompt"].nunique().max() == 1
    from modelsat.routers import get
    oracle = get("oracle")().fit(fam.records[fam.records["model"].isin(fam.train_models)]
                                 .drop(columns=["eval_split"]), [])
    row, _ = H.router_row("oracle", oracle, H.build_zoo_data(fam, ZOO), fam.profiles, fam, 0)
    assert row.get("status", "ok") == "ok"


def test_published_figures_are_set_beside_each_methods_mean_over_the_same_benchmarks():
    from modelsat.evaluate.report import published_comparison
    rows = [{"method": "best single", "kind": "reference", "model": "m1", "per_benchmark": {"b1": 0.60, "b2": 0.40}},
            {"method": "r", "kind": "router", "per_benchmark": {"b1": 0.70, "b2": 0.50, "b3": 0.10}},
            {"method": "random", "kind": "reference", "per_benchmark": {"b1": 0.1, "b2": 0.1}},
            {"method": "oracle", "kind": "upper bound", "per_benchmark": {"b1": 0.9, "b2": 0.9}},
            {"method": "x", "kind": "router", "status": "n/a (unseen model)"}]
    entry = {"rows": rows, "n_test_items_per_benchmark": {"b1": 10, "b2": 10, "b3": 10}, "notes": []}
    line = published_comparison(entry, "Them", {"b1": 0.65, "b2": 0.50, "b9": 0.99})   # b9: not in this zoo
    assert line.startswith("Mean over Them's 2 published benchmarks: Them (published) 57.50; ")
    # r: (70 + 50) / 2 = 60 (above on b1, equal on b2 is not above); best single 50, above on neither
    assert "r 60.00 (1 of 2 above); best single: m1 50.00 (0 of 2 above); both on every test item" in line
    assert "random" not in line and "oracle" not in line and "x " not in line
    sampled = entry | {"notes": ["b1: 5 of 10 test items (quick, seeded sample)"]}
    assert published_comparison(sampled, "Them", {"b1": 0.65}).endswith(
        "ours on a sample of b1's test items, theirs on all")


def test_the_max_test_items_for_is_the_quick_default_unless_given_and_zero_means_all():
    from modelsat.evaluate.benchmark import QUICK_MAX_TEST_ITEMS, max_test_items_for
    assert max_test_items_for(True, None) == QUICK_MAX_TEST_ITEMS and max_test_items_for(False, None) is None
    assert max_test_items_for(True, 0) is None and max_test_items_for(False, 50) == 50
    with pytest.raises(ValueError):
        max_test_items_for(True, -1)


def test_model_sat_rows_are_set_head_to_head_against_the_cheap_routers_with_paired_cis():
    groups = np.array(["b1"] * 50 + ["b2"] * 50)
    rng = np.random.default_rng(0)
    knn = (rng.random(100) < 0.5).astype(float)
    better = knn.copy()
    better[np.flatnonzero(knn == 0)[:20]] = 1.0                 # 20 more items right than kNN, none fewer
    per_item = {"best single": knn, "per-benchmark best": knn, "knn": knn, "mlp": 1 - knn,
                "modelsat": better, "modelsat:v": knn}
    duel = H.head_to_head(per_item, groups, seed=0)
    assert set(duel) == {"modelsat", "modelsat:v"}                       # only Model-SAT rows are compared
    assert set(duel["modelsat"]) == {"knn", "per-benchmark best"}        # against cheap routers and the reference
    d = duel["modelsat"]["knn"]
    assert d["estimate"] == pytest.approx(0.20) and d["low"] > 0          # paired: a sure gain is significant
    assert duel["modelsat:v"]["knn"] == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    # the mean over zoos that share their items, resampled together; zoos with other items are not pooled
    zd = H.build_zoo_data(_family(), ZOO)
    zd2 = H.build_zoo_data(_family(), ZOO, name="toy2")
    n = len(zd.prompts)
    by_zoo = {z.name: {"knn": np.zeros(n), "modelsat": np.r_[np.ones(n // 2), np.zeros(n - n // 2)]} for z in (zd, zd2)}
    joint = H.joint_head_to_head([zd, zd2], by_zoo, seed=0)
    assert joint["zoos"] == ["toy", "toy2"]
    assert joint["deltas"]["modelsat"]["knn"]["estimate"] == pytest.approx(np.mean(by_zoo["toy"]["modelsat"]))
    assert joint["shared_items"] == n
    # a zoo holding the same items in another order is aligned item by item
    flipped = dataclasses.replace(zd2, item_keys=zd2.item_keys[::-1], groups=zd2.groups[::-1])
    flipped_scores = {"toy": by_zoo["toy"], "toy2": {m: v[::-1] for m, v in by_zoo["toy2"].items()}}
    again = H.joint_head_to_head([zd, flipped], flipped_scores, seed=0)
    assert again["deltas"] == joint["deltas"]
    # zoos that share fewer than half their items are not pooled
    other = dataclasses.replace(zd2, item_keys=[(b, f"x{i}") for b, i in zd2.item_keys])
    assert H.joint_head_to_head([zd, other], by_zoo, seed=0) is None
    from modelsat.evaluate.report import head_to_head_lines
    line = head_to_head_lines(duel)[0]
    assert line.startswith("Head to head (paired 95 % CI, points): **modelsat** − knn +20.00 [")
