"""Model-SAT model and router: the overfit test, save/load, unseen models, fast order = paper-free padded path,
resumable training, presets. Tiny random models only (hidden 64, 2 layers); seconds each."""

import json
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.routers.modelsat.config import ModelConfig, Preset, load_preset, tiny_preset
from modelsat.routers.modelsat.model import ModelSAT
from modelsat.routers.modelsat.router import ModelSATRouter
from modelsat.routers.modelsat.train import diagnostics, train, training_data
from modelsat.errors import ModelsatError
from modelsat.routers.base import RouterError

torch.set_num_threads(1)

MATH = ["What is {a} plus {b}?", "Compute {a} times {b}.", "Solve x + {a} = {b}."]
RELIGION = ["Which scripture mentions prophet {a}?", "Name the festival {a} in faith {b}.",
            "Who founded temple {a} of order {b}?"]


def profile(name, math, religion):
    return Profile(name, "t", {"high_school_mathematics": SubjectScore(math, 20),
                               "world_religions": SubjectScore(religion, 20)})


PROFILES = [profile("math-whiz", 0.9, 0.2), profile("theologian", 0.2, 0.9)]


def synthetic_records(n_per_subject=6):
    """math-whiz answers every math item and no religion item; theologian the opposite."""
    rows = []
    for subject, templates, winner in (("high_school_mathematics", MATH, "math-whiz"),
                                       ("world_religions", RELIGION, "theologian")):
        for i in range(n_per_subject):
            prompt = templates[i % len(templates)].format(a=i + 3, b=2 * i + 5)
            for model in ("math-whiz", "theologian"):
                rows.append({"model": model, "benchmark": "toy", "item_id": f"{subject}-{i}", "prompt": prompt,
                             "subject": subject, "score": float(model == winner)})
    return pd.DataFrame(rows)


def trained_scores_and_truth(preset, records, profiles):
    """(scores, truth), both (items, models), of a router trained with `preset` on `records`, on its own items."""
    router = ModelSATRouter(preset=preset.to_dict()).fit(records, profiles)
    prompts = records.drop_duplicates("item_id")["prompt"].tolist()
    truth = records.pivot_table(index="prompt", columns="model", values="score").reindex(prompts)
    return router.score(prompts, profiles), truth[[p.model for p in profiles]].to_numpy()


def test_overfit_ranks_positives_and_the_right_model():
    records = synthetic_records()
    preset = tiny_preset()
    preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, stage2_steps=80, group_size=2))
    s, truth = trained_scores_and_truth(preset, records, PROFILES)
    # the right model above the wrong one on the same item
    assert (s.argmax(1) == truth.argmax(1)).all()
    # within one model, its positives above its negatives
    for j in range(len(PROFILES)):
        assert s[truth[:, j] == 1, j].min() > s[truth[:, j] == 0, j].max()


@pytest.mark.parametrize("encoder", ["none", "tiny"])
def test_save_load_gives_identical_scores(tmp_path, encoder):
    """Also with a frozen ψ that has dropout: it stays in eval mode while φ trains, so the ψ outputs cached for
    the training models are the clean ones a reloaded router computes."""
    records = synthetic_records(3)
    router = ModelSATRouter(preset="tiny", overrides={"model": {"encoder": encoder}}).fit(records, PROFILES)
    if encoder == "tiny":
        assert router.model_.encoder.config.hidden_dropout_prob > 0
    router.save(tmp_path / "r")
    again = ModelSATRouter.load(tmp_path / "r")
    xs = ["What is 4 plus 4?", "Who founded temple 9?"]
    np.testing.assert_array_equal(router.score(xs, PROFILES), again.score(xs, PROFILES))
    assert (tmp_path / "r" / "README.md").exists()


def test_unseen_model_is_scored_from_its_profile_alone():
    router = ModelSATRouter(preset="tiny", overrides={"model": {"encoder": "tiny"}}).fit(synthetic_records(3),
                                                                                       PROFILES)
    newcomer = profile("never-seen", 0.6, 0.6)
    s = router.score(["What is 1 plus 1?"], PROFILES + [newcomer])
    assert s.shape == (1, 3) and np.isfinite(s).all()


@pytest.mark.parametrize("encoder,order", [("none", "fast"), ("tiny", "fast"), ("tiny", "fastest"),
                                           ("tiny", "prompt-first")])
def test_shared_instruction_cache_matches_separate_sequences(encoder, order):
    model = ModelSAT(dataclasses.replace(tiny_preset().model, encoder=encoder, tuning="lora", order=order), seed=0)
    caps = [model.capability_input(p) for p in PROFILES]
    priors = torch.tensor([0.7, 0.4])
    with torch.no_grad():
        shared = model.score_shared("What is 2 plus 2?", caps, priors)
        separate = model.score_pairs(["What is 2 plus 2?"] * 2, caps, priors)
    torch.testing.assert_close(shared, separate, atol=1e-4, rtol=1e-4)


def test_inference_with_lora_merged_and_cached_capabilities_matches_training_time_scoring():
    """score_matrix merges LoRA into φ and memoises capability inputs; the scores must be those of the unmerged
    model scoring each (instruction, candidate) as its own sequence, and training must see unmerged weights."""
    model = ModelSAT(dataclasses.replace(tiny_preset().model, encoder="tiny", tuning="lora", order="fastest"), seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)          # a LoRA that changes φ, as after training
    priors = np.array([[0.7, 0.4], [0.2, 0.9]])
    xs = ["What is 2 plus 2?", "Which scripture mentions prophet 5?"]
    model.eval()                                               # as a loaded router is
    fast = model.score_matrix(xs, PROFILES, priors)
    assert len(model._cap_cache) == len(PROFILES)
    again = model.score_matrix(xs, PROFILES, priors)          # from the capability cache
    model.train()                                              # unmerges, forgets the cache
    assert not model._cap_cache and not any(getattr(m, "merged", False) for m in model.lm.modules())
    with torch.no_grad():
        caps = [model.capability_input(p) for p in PROFILES]
        slow = np.stack([model.score_pairs([x] * 2, caps, torch.tensor(priors[i], dtype=torch.float32)).numpy()
                         for i, x in enumerate(xs)])
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    np.testing.assert_array_equal(fast, again)


def test_prompt_first_head_is_computed_once_and_recomputed_when_weights_change():
    """The prompt-first order reads the prompt's keys/values from a cache: scores with it equal those computed with
    the prompt in the sequence (with gradients on, as in training), and a change of φ's weights (LoRA merged for
    inference, an optimizer step) makes the cache stale rather than silently reused."""
    model = ModelSAT(dataclasses.replace(tiny_preset().model, encoder="tiny", tuning="lora", order="prompt-first"), seed=0)
    model.set_stage(2)                                            # LoRA trains, as in stage 2
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    caps = [model.capability_input(p).detach() for p in PROFILES]
    priors = torch.tensor([[0.7, 0.4]])
    x = ["What is 2 plus 2?"]
    with torch.no_grad():
        cached = model.score_packed(x, caps, priors)
    key = model._head_kv_cache[0]
    in_sequence = model.score_packed(x, caps, priors)            # gradients on: the head is in the sequence
    assert in_sequence.requires_grad
    torch.testing.assert_close(cached, in_sequence.detach(), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        model.score_packed(x, caps, priors)
    assert model._head_kv_cache[0] == key                         # same weights: the same cache
    with torch.no_grad():
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:
                p.add_(0.3)                                       # as an optimizer step does, in place
        moved = model.score_packed(x, caps, priors)
    assert model._head_kv_cache[0] != key
    fresh = model.score_packed(x, caps, priors).detach()
    torch.testing.assert_close(moved, fresh, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(moved, cached, atol=1e-3)


def test_untrained_router_ranks_like_the_prior():
    model = ModelSAT(dataclasses.replace(tiny_preset().model, prior="profile"), seed=0)
    with torch.no_grad():
        model.lm_gate.zero_()                               # an LM term that has learned nothing yet
    priors = np.array([[0.8, 0.3], [0.2, 0.6]])
    s = model.score_matrix(["a", "b"], PROFILES, priors)
    assert (s.argmax(1) == priors.argmax(1)).all()


def test_stopped_run_resumes_to_the_same_weights(tmp_path):
    records = synthetic_records(3)
    base = tiny_preset()
    preset = dataclasses.replace(base, train=dataclasses.replace(base.train, stage2_steps=6))
    data = training_data(records, PROFILES, lambda x, c: np.full((len(x), len(c)), 0.5))
    full = ModelSAT(preset.model, seed=0)
    train(full, data, preset, out_dir=tmp_path / "a", log=lambda m: None, checkpoint_every=3)
    half = dataclasses.replace(preset, train=dataclasses.replace(preset.train, stage2_steps=3))
    first = ModelSAT(preset.model, seed=0)
    train(first, data, half, out_dir=tmp_path / "b", log=lambda m: None, checkpoint_every=3)
    resumed = ModelSAT(preset.model, seed=0)
    train(resumed, data, preset, out_dir=tmp_path / "b", resume=True, log=lambda m: None, checkpoint_every=3)
    a, b = full.trained_state(), resumed.trained_state()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_tail_average_keeps_the_mean_of_the_last_states_and_resumes_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr("modelsat.routers.modelsat.train.LOG_EVERY", 1)
    records = synthetic_records(3)
    base = tiny_preset()
    data = training_data(records, PROFILES, lambda x, c: np.full((len(x), len(c)), 0.5))

    def trained(steps, average=0.0, out=None, resume=False, log=lambda m: None):
        preset = dataclasses.replace(base, train=dataclasses.replace(
            base.train, stage2_steps=steps, average_last=average))
        model = ModelSAT(preset.model, seed=0)
        train(model, data, preset, out_dir=out, resume=resume, log=log, checkpoint_every=1 if out else 0)
        return model.trained_state()

    last = [trained(n) for n in (4, 5, 6)]                  # the states after steps 4, 5 and 6 of one run
    averaged = trained(6, average=0.5)                      # keeps the mean over steps 4-6
    for k in averaged:
        torch.testing.assert_close(averaged[k], (last[0][k] + last[1][k] + last[2][k]) / 3)
    assert any(not torch.equal(averaged[k], last[2][k]) for k in averaged)

    def stop_at_step_5(message):
        if message.startswith("step 5/"):
            raise KeyboardInterrupt                         # the run stops after step 4's checkpoint
    with pytest.raises(KeyboardInterrupt):
        trained(6, average=0.5, out=tmp_path, log=stop_at_step_5)
    resumed = trained(6, average=0.5, out=tmp_path, resume=True)
    for k in averaged:
        torch.testing.assert_close(resumed[k], averaged[k])


def test_diagnostics_flag_a_router_that_only_sees_item_difficulty():
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    difficulty_only = np.array([[0.5, 0.5], [0.4, 0.4], [0.9, 0.9], [0.1, 0.1]]) + np.array([0.0, 0.01])
    d = diagnostics(difficulty_only, truth, ["a", "b"])
    assert d["between_model_corr"] > 0.99 and d["within_item_auc_centred"] == 0.5


def test_presets_load_and_unknown_keys_are_refused(tmp_path):
    for name in ("cpu-default", "quick", "full", "paper"):
        assert isinstance(load_preset(name), Preset)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  n_soft_tokenz: 3\n")
    with pytest.raises(ModelsatError, match="n_soft_tokenz"):
        load_preset(bad)
    bad.write_text("model:\n  prior_features: bag-of-letters\n")
    with pytest.raises(ModelsatError, match=r"\['prior_features'\] were removed .*removed-options.md"):
        load_preset(bad)


def test_fitted_prior_is_trained_saved_and_loaded_with_the_router(tmp_path):
    """prior 'fitted': the profile-prior router (with its task classifier) is fitted on the training
    records, saved in `prior/` beside the adapters, and gives identical scores after load."""
    records = synthetic_records(3)
    records.loc[records["subject"] == "world_religions", "benchmark"] = "toy2"
    router = ModelSATRouter(preset="tiny", overrides={"model": {"prior": "fitted"}})
    router.fit(records, PROFILES)
    assert router.prior_router_.task_names_ == []        # the profiles measure no task named toy/toy2
    assert router.prior_router_._map().features == "minilm"
    xs = ["What is 4 plus 4?", "Who founded temple 9?"]
    np.testing.assert_allclose(router.prior(xs, PROFILES), router.prior_router_.score(xs, PROFILES))
    router.save(tmp_path / "r")
    assert (tmp_path / "r" / "prior" / "config.json").exists()
    again = ModelSATRouter.load(tmp_path / "r")
    np.testing.assert_array_equal(router.score(xs, PROFILES), again.score(xs, PROFILES))
    import shutil
    shutil.rmtree(tmp_path / "r" / "prior")
    with pytest.raises(RouterError, match="prior.*is missing"):
        ModelSATRouter.load(tmp_path / "r")


@pytest.mark.parametrize("encoder,order", [("none", "fast"), ("tiny", "fastest"), ("tiny", "prompt-first")])
def test_packing_several_instructions_in_one_forward_matches_one_at_a_time(encoder, order):
    model = ModelSAT(dataclasses.replace(tiny_preset().model, encoder=encoder, tuning="lora", order=order), seed=0).eval()
    xs = ["What is 2 plus 2?", "Which scripture mentions prophet 5?", "Solve x + 3 = 9."]
    priors = np.array([[0.7, 0.4], [0.2, 0.9], [0.5, 0.5]])
    model.pack_tokens = 10_000
    packed = model.score_matrix(xs, PROFILES, priors)
    model.pack_tokens = 1                                   # one instruction per forward
    single = model.score_matrix(xs, PROFILES, priors)
    np.testing.assert_allclose(packed, single, atol=1e-4)


def test_all_models_group_holds_every_model_with_a_result_and_its_loss_is_eq5_with_one_positive():
    from modelsat.routers.modelsat.config import TrainConfig
    from modelsat.routers.modelsat.train import GroupSampler, TrainingData, group_loss
    scores = np.array([[1.0, 0.0, 0.0, np.nan], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    profs = [profile(f"m{j}", 0.5, 0.5) for j in range(4)]
    data = TrainingData(["a", "b", "c"], scores, profs, np.full(scores.shape, 0.5))
    sampler = GroupSampler(data, TrainConfig())
    for _ in range(20):
        kind, items, models, labels = sampler.model_contrastive()
        i = int(items[0])
        assert kind == "model" and i in (0, 1)              # item 2 has no wrong answer: nothing to contrast
        assert sorted(models) == [j for j in range(4) if not np.isnan(scores[i, j])]
        assert (labels == scores[i, models]).all() and labels[0] == 1.0
    cfg = TrainConfig(objective="paper")                   # eq. 5 alone
    s = torch.tensor([0.3, -1.2, 2.0])
    eq5 = torch.nn.functional.cross_entropy(s[None], torch.zeros(1, dtype=torch.long))
    assert torch.allclose(group_loss(s, torch.tensor([1.0, 0.0, 0.0]), cfg), eq5)
    # two positives: −log of their softmax mass
    two = group_loss(s, torch.tensor([1.0, 0.0, 1.0]), cfg)
    assert torch.allclose(two, -torch.log(torch.softmax(s, 0)[[0, 2]].sum()))
    with pytest.raises(ModelsatError, match="objective"):
        TrainConfig(objective="some")


def test_overfit_with_all_model_groups_ranks_the_right_model():
    records = synthetic_records()
    extra = records[records["model"] == "math-whiz"].assign(model="dunce", score=0.0)
    records = pd.concat([records, extra], ignore_index=True)
    profiles = PROFILES + [profile("dunce", 0.3, 0.3)]
    preset = tiny_preset()
    preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, stage2_steps=60))
    s, truth = trained_scores_and_truth(preset, records, profiles)
    assert (s.argmax(1) == truth.argmax(1)).all()


def test_centred_lm_term_has_zero_mean_over_the_centring_instructions_and_survives_save_load(tmp_path):
    """lm_center_items: each candidate's LM term, less its mean over training instructions kept in the router;
    over those instructions the scores are then the prior's alone on average, and the router reloads to the
    same scores (the instructions travel in config.json)."""
    records = synthetic_records(4)
    overrides = {"model": {"prior": "fitted", "lm_center_items": 5, "encoder": "tiny"}}
    router = ModelSATRouter(preset="tiny", overrides=overrides).fit(records, PROFILES)
    centre = router.center_prompts_
    assert len(centre) == 5 and set(centre) <= set(records["prompt"])
    newcomer = profile("never-seen", 0.6, 0.6)
    cands = PROFILES + [newcomer]
    s = router.score(centre, cands)
    priors = router.prior(centre, cands)
    lm = router._lm_part(s, priors)
    np.testing.assert_allclose(lm.mean(axis=0), 0.0, atol=1e-6)       # the unseen model too
    assert np.abs(lm).max() > 1e-4                                       # the LM still reorders within a model
    plain = ModelSATRouter(preset="tiny", overrides={"model": {**overrides["model"], "lm_center_items": 0}}
                           ).fit(records, PROFILES)
    np.testing.assert_allclose(s - plain.score(centre, cands),
                               np.broadcast_to(-router.lm_offsets(cands), s.shape), atol=1e-6)
    again = ModelSATRouter.load(router.save(tmp_path / "r"))
    assert again.center_prompts_ == centre
    np.testing.assert_array_equal(again.score(centre, cands), s)
    with pytest.raises(ModelsatError, match="lm_center_items"):
        dataclasses.replace(tiny_preset().model, lm_center_items=-1)


def test_prepared_offsets_are_saved_so_a_loaded_router_scores_known_candidates_without_recentring(tmp_path):
    """prepare() memoises each candidate's centring offset; save keeps it, so a shipped router pays no centring
    forwards for its default zoo, while a candidate whose profile changed is centred afresh."""
    records = synthetic_records(4)
    overrides = {"model": {"prior": "fitted", "lm_center_items": 5, "encoder": "tiny"}}
    router = ModelSATRouter(preset="tiny", overrides=overrides).fit(records, PROFILES)
    newcomer = profile("never-seen", 0.6, 0.6)
    cands = PROFILES + [newcomer]
    router.prepare(cands)
    expected = router.score(["a new instruction"], cands)
    again = ModelSATRouter.load(router.save(tmp_path / "r"))
    calls = []
    real = again.model_.score_matrix
    again.model_.score_matrix = lambda *a, **k: calls.append(len(a[0])) or real(*a, **k)
    np.testing.assert_array_equal(again.score(["a new instruction"], cands), expected)
    assert calls == [1]                                       # the instruction only: no centring forwards
    changed = profile("never-seen", 0.6, 0.2)                 # same name, another profile: not the memoised one
    again.score(["a new instruction"], PROFILES + [changed])
    assert calls[1:] == [1, len(again.center_prompts_)]       # the instruction, then the changed one centred
    np.testing.assert_array_equal(ModelSATRouter.load(tmp_path / "r").lm_offsets(cands), router.lm_offsets(cands))
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["memoised"]["offset_cache_"] = [[["x"], "not a number"]]
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RouterError, match="memoised"):
        ModelSATRouter.load(tmp_path / "r")


def test_records_prior_updates_a_trained_models_prior_by_its_nearest_results_and_never_an_items_own():
    """prior_records: p' = (Σ neighbour results + κ·p) / (neighbours with a result + κ) for a candidate the
    router holds records of; an instruction's own item is not its neighbour; a profile-only model keeps p."""
    from modelsat.embeddings import embed
    from modelsat.routers.modelsat.records_prior import RecordsPrior, text_key
    records = synthetic_records(6)
    table = records.pivot_table(index="prompt", columns="model", values="score")
    prompts = table.index.tolist()
    scores = table.to_numpy().copy()
    scores[0, 1] = np.nan                                     # a model without a result on an item
    rp = RecordsPrior(embed(prompts), scores, list(table.columns), [text_key(t) for t in prompts], k=3,
                      strength=2.0)
    newcomer = profile("newcomer", 0.5, 0.5)
    cands = [PROFILES[1], newcomer, PROFILES[0]]
    base = np.full((len(prompts), 3), 0.5)
    out = rp.update(prompts, cands, base)
    np.testing.assert_array_equal(out[:, 1], base[:, 1])
    sim = embed(prompts) @ embed(prompts).T
    np.fill_diagonal(sim, -np.inf)
    for i in range(len(prompts)):
        near = np.argsort(-sim[i], kind="stable")[:3]
        assert i not in near
        for j, c in ((0, cands[0]), (2, cands[2])):
            col = scores[near, list(table.columns).index(c.model)]
            known = col[~np.isnan(col)]
            assert out[i, j] == pytest.approx((known.sum() + 2.0 * 0.5) / (len(known) + 2.0))
    # the largest strength of the grid means no update at all
    rp.strength = 1e9
    np.testing.assert_array_equal(rp.update(prompts, cands, base), base)


def test_router_with_records_prior_chooses_k_and_strength_and_scores_the_same_after_save_and_load(tmp_path):
    records = synthetic_records(30)
    router = ModelSATRouter(preset="tiny", overrides={"model": {"prior_records": True}}).fit(records, PROFILES)
    info = router.fit_choices()["records_prior"]
    assert info["by"] == "leave-one-out model-contrastive likelihood" and len(info["log_loss"]) == 20
    assert info["log_loss"][f"k={info['k']},kappa={info['strength']:g}"] == min(info["log_loss"].values())
    # each subject's items all go one model's way, so the neighbours predict better than a flat profile prior
    assert info["strength"] < 1e9
    prompts = records["prompt"].unique().tolist()
    newcomer = profile("newcomer", 0.9, 0.2)
    cands = PROFILES + [newcomer]
    again = ModelSATRouter.load(router.save(tmp_path / "r"))
    np.testing.assert_array_equal(again.score(prompts, cands), router.score(prompts, cands))
    updated = router.prior(prompts, cands)
    kept, router.records_prior_ = router.records_prior_, None
    base, base_known = router.prior(prompts, cands), router.prior(prompts, router.records_profiles_)
    router.records_prior_ = kept
    assert np.abs(updated[:, :2] - base[:, :2]).max() > 0.01                 # the trained models: updated
    # the newcomer, known by its profile only, moves by the mean log-odds shift of the trained models
    clip = lambda p: np.clip(p, 0.02, 0.98)                                   # noqa: E731
    logit = lambda p: np.log(clip(p) / (1 - clip(p)))                         # noqa: E731
    shift = (logit(kept.update(prompts, router.records_profiles_, base_known)) - logit(base_known)).mean(axis=1)
    np.testing.assert_allclose(updated[:, 2], 1 / (1 + np.exp(-(logit(base[:, 2]) + shift))))
    assert np.abs(shift).max() > 0
    with pytest.raises(ModelsatError, match="prior_records"):
        dataclasses.replace(tiny_preset().model, prior="none", prior_records=True)


def test_records_prior_scores_the_same_with_its_blas_on_one_thread_or_all(monkeypatch):
    records = synthetic_records(30)
    router = ModelSATRouter(preset="tiny", overrides={"model": {"prior_records": True}}).fit(records, PROFILES)
    prompts = records["prompt"].unique().tolist()
    cands = PROFILES + [profile("newcomer", 0.9, 0.2)]
    one = router.score(prompts, cands)
    monkeypatch.setenv("MODELSAT_BLAS_SINGLE", "0")
    np.testing.assert_array_equal(router.score(prompts, cands), one)


def test_records_prior_codes_round_trip_and_keep_the_nearest_rows():
    from modelsat.routers.modelsat.records_prior import dequantize, pack4, quantize, unpack4
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 33)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for bits, levels in ((8, 127), (4, 7)):
        codes = quantize(x, bits)
        assert codes.dtype == np.int8 and np.abs(codes).max() == levels
        np.testing.assert_array_equal(quantize(dequantize(codes), bits), codes)     # rounding again: the same
        cos = np.sum(dequantize(codes) * x, axis=1)
        assert cos.min() > (0.999 if bits == 8 else 0.95)
    codes = quantize(x, 4)
    packed = pack4(codes)
    assert packed.dtype == np.uint8 and packed.shape == (200, 17)                   # two codes a byte, odd d padded
    np.testing.assert_array_equal(unpack4(packed, 33), codes)


def test_router_with_4_bit_records_prior_is_smaller_and_scores_the_same_after_save_and_load(tmp_path):
    from safetensors.numpy import load_file
    records = synthetic_records(30)
    full = ModelSATRouter(preset="tiny", overrides={"model": {"prior_records": True}}).fit(records, PROFILES)
    small = ModelSATRouter(preset="tiny", overrides={"model": {"prior_records": True,
                                                               "prior_records_bits": 4}}).fit(records, PROFILES)
    assert small.fit_choices()["records_prior"]["bits"] == 4
    prompts = records["prompt"].unique().tolist()
    cands = PROFILES + [profile("newcomer", 0.9, 0.2)]
    again = ModelSATRouter.load(small.save(tmp_path / "small"))
    np.testing.assert_array_equal(again.score(prompts, cands), small.score(prompts, cands))
    np.testing.assert_array_equal(again.records_prior_.embeddings, small.records_prior_.embeddings)
    full.save(tmp_path / "full")
    kept = load_file(str(tmp_path / "small" / "records_prior.safetensors"))
    assert kept["embeddings"].dtype == np.uint8 and kept["scores"].dtype == np.float16
    assert kept["embeddings"].nbytes * 8 == full.records_prior_.embeddings.nbytes
    # the rounded rows still find (nearly) the same neighbours: the update they give is close to float32's
    assert np.abs(small.prior(prompts, cands) - full.prior(prompts, cands)).max() < 0.1
    with pytest.raises(ModelsatError, match="prior_records_bits"):
        ModelConfig(prior_records=True, prior_records_bits=16)


def test_records_prior_read_only_at_scoring_leaves_training_as_without_it():
    records = synthetic_records(30)
    plain = ModelSATRouter(preset="tiny").fit(records, PROFILES)
    late = ModelSATRouter(preset="tiny", overrides={"model": {"prior_records": True,
                                                              "prior_records_training": False}}).fit(records, PROFILES)
    a, b = plain.model_.trained_state(), late.model_.trained_state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    prompts = records["prompt"].unique().tolist()
    assert late.records_prior_ is not None
    assert np.abs(late.prior(prompts, PROFILES) - plain.prior(prompts, PROFILES)).max() > 0.01


def coin_records(seed, n_per_subject=20):
    """Which of the two models answers each item is a coin toss: nothing near an item says who wins it."""
    rng = np.random.default_rng(seed)
    rows = []
    for subject, templates in (("high_school_mathematics", MATH), ("world_religions", RELIGION)):
        for i in range(n_per_subject):
            prompt = templates[i % len(templates)].format(a=i + 3, b=2 * i + 5)
            winner = PROFILES[int(rng.integers(2))].model
            for p in PROFILES:
                rows.append({"model": p.model, "benchmark": "toy", "item_id": f"{subject}-{i}", "prompt": prompt,
                             "subject": subject, "score": float(p.model == winner)})
    return pd.DataFrame(rows)


def test_fit_prior_fits_the_explicit_prior_alone_as_fit_does_and_trains_no_lm():
    """ModelSATRouter.fit_prior: the same profile prior and records prior as `fit` (same choices, same prior
    scores), no LM (score refuses)."""
    records = synthetic_records(30)
    overrides = {"model": {"prior_records": True}}
    full = ModelSATRouter(preset="tiny", overrides=overrides).fit(records, PROFILES)
    alone = ModelSATRouter(preset="tiny", overrides=overrides)
    info = alone.fit_prior(records, PROFILES)
    assert info == full.fit_choices()["records_prior"] == alone.fit_choices()["records_prior"]
    prompts = records["prompt"].unique().tolist()
    np.testing.assert_array_equal(alone.prior(prompts, PROFILES), full.prior(prompts, PROFILES))
    with pytest.raises(RouterError, match="not fitted"):
        alone.score(prompts, PROFILES)
    assert ModelSATRouter(preset="tiny").fit_prior(records, PROFILES) == {}


def test_contrastive_log_loss_ignores_item_difficulty_and_rewards_ranking_the_right_model_first():
    from modelsat.routers.modelsat.records_prior import contrastive_log_loss
    truth = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, np.nan], [1.0, 1.0, 1.0]])   # the last item tells no model apart
    good = np.array([[0.8, 0.3, 0.3], [0.4, 0.7, 0.5], [0.5, 0.5, 0.5]])
    bad = good[:, [1, 0, 2]]
    assert contrastive_log_loss(good, truth) < contrastive_log_loss(bad, truth)
    logit = np.log(good / (1 - good))
    harder = 1 / (1 + np.exp(-(logit - np.array([[1.0], [0.5], [2.0]]))))   # every model shifted alike per item
    assert contrastive_log_loss(harder, truth) == pytest.approx(contrastive_log_loss(good, truth))
    # the second item's third model has no result, so it is not among the alternatives
    only_two = contrastive_log_loss(good[1:2, :2], truth[1:2, :2])
    assert contrastive_log_loss(good[1:2], truth[1:2]) == pytest.approx(only_two)


