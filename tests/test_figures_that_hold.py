"""The prior-only Model-SAT router (`lm: none`), training seeds in the benchmark, and the seed-aware interval."""

from __future__ import annotations

import numpy as np
import pytest

from modelsat.errors import ModelsatError
from modelsat.evaluate import harness as H
from modelsat.evaluate import metrics as M
from modelsat.evaluate.zoos import Zoo, ZooModel
from modelsat.routers import Router
from modelsat.routers.modelsat.config import load_preset
from modelsat.routers.modelsat.router import ModelSATPriorRouter, ModelSATRouter, resolve_preset
from tests import router_data as D


def _fitted_prior_router(**model):
    recs = D.records()
    train, test = D.split(recs)
    overrides = {"model": {"lm": "none", "prior": "fitted", "prior_records": True, **model}}
    router = ModelSATPriorRouter(preset="tiny", overrides=overrides).fit(train, D.profiles(train))
    return router, train, test


def test_prior_only_router_trains_no_lm_and_scores_with_its_prior():
    router, train, test = _fitted_prior_router()
    assert not hasattr(router, "model_")                       # no LM was built, let alone trained
    xs = test["prompt"].unique().tolist()[:6]
    cands = D.profiles(train)
    s = router.score(xs, cands)
    np.testing.assert_array_equal(s, router.prior(xs, cands))
    assert s.min() >= 0 and s.max() <= 1                       # the prior's probability of a good answer
    assert router.training_info_["steps"] == 0 and router.fit_choices()["records_prior"]


def test_prior_only_router_saves_no_adapter_and_loads_to_identical_scores(tmp_path):
    router, train, test = _fitted_prior_router()
    d = router.save(tmp_path / "r")
    assert not (d / "adapter.safetensors").exists() and (d / "records_prior.safetensors").exists()
    again = Router.load(d)
    assert isinstance(again, ModelSATPriorRouter)
    xs = test["prompt"].unique().tolist()[:6]
    cands = D.profiles(train) + [D.newcomer_profile()]         # a model known by its profile only
    np.testing.assert_array_equal(router.score(xs, cands), again.score(xs, cands))


def test_prior_only_router_routes_by_the_records_update_where_the_profiles_cannot_tell():
    """The toy subjects are no MMLU subjects, so the profile prior alone sends every item to the generalist;
    the records update reads each model's results on the nearest training items and finds the specialists."""
    router, train, test = _fitted_prior_router()
    plain, _, _ = _fitted_prior_router(prior_records=False)
    cands = D.profiles(train)
    names = [c.model for c in cands]
    for subject, best in (("math", "math-whiz"), ("history", "historian")):
        xs = test[test["subject"] == subject]["prompt"].unique().tolist()
        assert {names[p] for p in np.argmax(plain.score(xs, cands), axis=1)} == {"generalist"}
        assert {names[p] for p in np.argmax(router.score(xs, cands), axis=1)} == {best}


def test_prior_only_router_does_not_vary_with_seed_and_the_lm_router_does():
    assert ModelSATPriorRouter(preset="tiny", overrides={"model": {"lm": "none"}}).varies_with_seed is False
    assert ModelSATRouter(preset="tiny").varies_with_seed is True
    assert H.training_seeds(ModelSATRouter(preset="tiny"), 5, 3) == [5, 6, 7]
    assert H.training_seeds(ModelSATPriorRouter(preset="tiny", overrides={"model": {"lm": "none"}}), 5, 3) == [5]


def test_the_prior_preset_has_no_lm_and_lm_none_needs_the_prior():
    assert load_preset("prior").model.lm == "none"
    with pytest.raises(ModelsatError, match="lm: none needs prior"):
        resolve_preset("tiny", {"model": {"lm": "none", "prior": False}})


def test_a_router_refuses_to_score_before_fit():
    from modelsat.routers import RouterError
    with pytest.raises(RouterError, match="not fitted"):
        ModelSATPriorRouter(preset="tiny", overrides={"model": {"lm": "none"}}).score(["x"], D.profiles(D.records()))


def test_seeded_bootstrap_with_one_seed_is_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    a, b = rng.random(300), rng.random(300)
    groups = np.repeat(["x", "y", "z"], 100)
    one = M.seeded_paired_bootstrap(a[None], b[None], groups, 500, 3)
    plain = M.paired_bootstrap(a, b, groups, 500, 3)
    assert one.estimate == pytest.approx(plain.estimate)
    assert one.low == pytest.approx(plain.low, abs=0.02) and one.high == pytest.approx(plain.high, abs=0.02)


def test_seeded_bootstrap_widens_with_the_spread_between_seeds():
    rng = np.random.default_rng(1)
    b = (rng.random(400) < 0.5).astype(float)
    same = np.stack([b + 0.05] * 3)                              # three seeds that agree: +5 points
    apart = np.stack([b - 0.05, b + 0.05, b + 0.15])            # same mean, seeds 10 points apart
    tight = M.seeded_paired_bootstrap(same, b[None], None, 1000, 0)
    wide = M.seeded_paired_bootstrap(apart, b[None], None, 1000, 0)
    assert tight.estimate == pytest.approx(0.05) and wide.estimate == pytest.approx(0.05)
    assert tight.low == pytest.approx(0.05) and tight.high == pytest.approx(0.05)
    assert wide.low < 0 < wide.high                              # a seed-to-seed spread this size is no win


def _zoo_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    scores = (rng.random((n, 3)) < [0.4, 0.6, 0.5]).astype(float)
    groups = np.array(["a", "b"] * (n // 2))
    zoo = Zoo(name="z", family="f", models=[ZooModel(m) for m in ("m0", "m1", "m2")])
    refs = {"best single": scores[:, 1], "oracle": scores.max(axis=1), "random": scores.mean(axis=1)}
    return H.ZooData(name="z", zoo=zoo, models=["m0", "m1", "m2"], prompts=[f"p{i}" for i in range(n)],
                     item_keys=[("b", str(i)) for i in range(n)], scores=scores, costs=np.full((n, 3), np.nan),
                     groups=groups, best_groups=groups, references=refs, best_single="m1", notes=[],
                     train_costs=np.full(3, np.nan))


def test_seeded_row_is_the_mean_over_seeds_with_each_seed_and_the_spread():
    zd = _zoo_data()
    rng = np.random.default_rng(2)
    per_seed = []
    for k in range(3):
        s = rng.random(zd.scores.shape)
        per_seed.append((k, s, M.routed_scores(zd.scores, np.argmax(s, axis=1)), 0.1))
    row, routed = H.seeded_row("modelsat", per_seed, zd, 0)
    means = [M.macro_mean(r, zd.groups) for _, _, r, _ in per_seed]
    assert routed.shape == (3, len(zd.prompts))
    assert row["mean"] == pytest.approx(np.mean(means))
    assert [s["mean"] for s in row["seeds"]] == pytest.approx(means)
    assert row["seed_spread"]["min"] == pytest.approx(min(means)) and row["seed_spread"]["n"] == 3
    d = row["delta_vs_best_single"]
    assert d["low"] <= d["estimate"] <= d["high"]


def test_ensemble_averages_probabilities_and_reads_log_odds_as_such():
    a = np.array([[2.0, -1.0]])                                   # log-odds
    b = np.array([[-3.0, 0.5]])
    from modelsat.routers.ensemble import average_probabilities
    p = average_probabilities([a, b], are_probabilities=False)
    expected = (1 / (1 + np.exp(-a)) + 1 / (1 + np.exp(-b))) / 2
    np.testing.assert_allclose(p, expected)
    probs = [np.array([[0.9, 0.2]]), np.array([[0.1, 0.6]])]
    np.testing.assert_allclose(average_probabilities(probs, are_probabilities=True), [[0.5, 0.4]])


def test_the_report_names_each_seed_and_the_spread():
    from modelsat.evaluate.report import _md_seeds, seed_lines
    zd = _zoo_data()
    rng = np.random.default_rng(3)
    per_seed = [(k, s, M.routed_scores(zd.scores, np.argmax(s, axis=1)), 0.1)
                for k, s in ((k, rng.random(zd.scores.shape)) for k in (4, 5))]
    row, _ = H.seeded_row("modelsat", per_seed, zd, 0)
    entry = {"zoo": {"name": "z"}, "rows": [row]}
    line, = seed_lines(entry)
    assert "modelsat over 2 training seeds: seed 4" in line and "seed 5" in line and "sd" in line
    table = "\n".join(_md_seeds([entry]))
    assert "| modelsat |" in table and "sd" in table


def test_plot_styles_tell_every_method_apart():
    from modelsat.evaluate.report import method_styles
    styles = method_styles([f"m{i}" for i in range(20)])
    pairs = {(st["color"], st["marker"]) for st in styles.values()}
    colours = {st["color"] for st in styles.values()}
    assert len(pairs) == 20 and len(colours) == 20


def test_an_ensemble_of_seeds_averages_their_probabilities_and_survives_save_load(tmp_path):
    from modelsat.routers.ensemble import EnsembleRouter
    recs = D.records()
    train, test = D.split(recs)
    profs = D.profiles(train)
    members = [ModelSATRouter(preset="tiny", seed=k).fit(train, profs) for k in (0, 1)]
    ens = EnsembleRouter.of(members)
    xs = test["prompt"].unique().tolist()[:5]
    cands = profs + [D.newcomer_profile()]
    expected = np.mean([1 / (1 + np.exp(-m.score(xs, cands))) for m in members], axis=0)
    np.testing.assert_allclose(ens.score(xs, cands), expected)
    assert not np.allclose(members[0].score(xs, cands), members[1].score(xs, cands))   # the seeds differ
    again = Router.load(ens.save(tmp_path / "ens"))
    assert isinstance(again, EnsembleRouter) and again.seeds == [0, 1]
    np.testing.assert_allclose(again.score(xs, cands), expected)


def test_an_ensemble_refuses_members_of_different_kinds():
    from modelsat.routers import RouterError
    from modelsat.routers.ensemble import EnsembleRouter
    from modelsat.routers.knn import KNNRouter
    with pytest.raises(RouterError, match="one router trained with several seeds"):
        EnsembleRouter.of([ModelSATRouter(preset="tiny"), KNNRouter()])
    with pytest.raises(RouterError, match="at least one"):
        EnsembleRouter.of([])


def test_the_benchmark_runs_no_wrapper_router_by_default():
    from modelsat.routers import available, benchmark_routers
    assert "ensemble" in available() and "ensemble" not in benchmark_routers()
    assert {"modelsat-prior", "knn", "per-category"} <= set(benchmark_routers())
    assert "modelsat" not in benchmark_routers()          # the learned correction: one flag away (--routers)


TINY_YAML = """name: tiny-file
model: {lm: tiny, lm_layers: null, encoder: none, n_soft_tokens: 2, max_instruction_tokens: 32,
        max_capability_tokens: 64, tuning: full, prior: mean}
train: {group_size: 3, groups_per_step: 2, stage1_steps: 0, stage2_steps: 2, lr_connector: 3.0e-3, lr_lm: 3.0e-3,
        max_train_items: 60}
"""


@pytest.mark.skipif(not __import__("modelsat.paths", fromlist=["has_data_dir"]).has_data_dir(),
                    reason="no data folder: set MODELSAT_DATA or put ../shared/data beside the project")
def test_train_with_several_seeds_saves_each_and_their_ensemble(tmp_path):
    import subprocess
    import sys
    from modelsat.routers.ensemble import EnsembleRouter
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_YAML)
    run = subprocess.run([sys.executable, "-m", "modelsat.cli", "train", "--config", str(cfg), "--out",
                          str(tmp_path / "run"), "--seeds", "3,4"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    for k in (3, 4):
        assert (tmp_path / "run" / f"seed-{k}" / "router" / "config.json").exists()
    ens = Router.load(tmp_path / "run" / "router")
    assert isinstance(ens, EnsembleRouter) and ens.seeds == [3, 4]
    bad = subprocess.run([sys.executable, "-m", "modelsat.cli", "train", "--config", str(cfg), "--out",
                          str(tmp_path / "bad"), "--seeds", "1,x"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "comma list of integers" in bad.stdout + bad.stderr


def test_the_shipped_default_is_the_calibrated_prior_and_the_lm_router_still_ships():
    from modelsat.routers.modelsat.router import SHIPPED_LM_NAME, shipped_router
    default = shipped_router()
    assert default.prior_only and default.calibrator_ is not None
    assert not shipped_router(SHIPPED_LM_NAME).prior_only
    from modelsat.cli.route import load_zoo
    _, zoo = load_zoo(None)
    p = default.predict_proba(["What is the derivative of x squared?"], zoo)
    assert p.shape == (1, len(zoo)) and ((p > 0) & (p < 1)).all() and p.std() > 0.01
