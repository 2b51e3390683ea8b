"""The profile prior and its subject map: real MiniLM, hand-made profiles, the shipped subject map."""

import numpy as np
import pandas as pd
import pytest

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.routers import Router, get
from modelsat.routers.profile_prior import (KAPPA_MAX, ProfilePrior, empirical_bayes_kappa, prior_scores,
                                            shrunk_accuracies)
from modelsat.routers.subject_map import SubjectMap, shipped
from modelsat.errors import ModelsatError

MATH = ["abstract_algebra", "college_mathematics", "elementary_mathematics", "high_school_mathematics",
        "high_school_statistics"]
LAW = ["professional_law", "international_law", "jurisprudence"]
MATH_Q = "Solve for x: 3x^2 - 12x + 9 = 0. What is the sum of the roots?\nA. 2\nB. 3\nC. 4\nD. 6"
LAW_Q = ("Under the doctrine of adverse possession, which element must the claimant prove to obtain title to "
         "the land?\nA. Permission of the owner\nB. Open and notorious use\nC. Payment of rent\nD. A written lease")


def profile(name: str, strong: list[str], weak: list[str], hi=0.9, lo=0.3, n=20) -> Profile:
    subjects = {s: SubjectScore(hi, n) for s in strong} | {s: SubjectScore(lo, n) for s in weak}
    return Profile(model=name, test_version="hand-made", subjects=subjects)


@pytest.fixture(scope="module")
def subject_map() -> SubjectMap:
    return shipped()


def test_shipped_subject_map_covers_the_57_mmlu_subjects(subject_map):
    assert len(subject_map.subjects) == 57
    assert subject_map.anchors.shape == (57, 384)
    assert 0 < subject_map.temperature < 1


def test_math_question_maps_to_a_math_subject(subject_map):
    top = subject_map.top_subjects(MATH_Q, k=1)[0][0]
    assert top in MATH


def test_law_question_maps_to_a_law_subject(subject_map):
    top = subject_map.top_subjects(LAW_Q, k=1)[0][0]
    assert top in LAW


def test_subject_weights_are_a_distribution_per_instruction(subject_map):
    w = subject_map.weights([MATH_Q, LAW_Q])
    assert w.shape == (2, 57)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-9)
    assert (w >= 0).all()


def test_subject_map_save_load_round_trip(subject_map, tmp_path):
    subject_map.save(tmp_path / "sm")
    again = SubjectMap.load(tmp_path / "sm")
    assert again.subjects == subject_map.subjects and again.temperature == subject_map.temperature
    np.testing.assert_allclose(again.weights([MATH_Q]), subject_map.weights([MATH_Q]), atol=1e-6)


def test_prior_prefers_the_candidate_strong_at_the_instructions_subject(subject_map):
    # equal mean accuracy (0.675), so only the per-subject reading can separate them
    mathy = profile("mathy", MATH, LAW, hi=0.9, lo=0.3)
    lawyer = Profile("lawyer", "hand-made", {s: SubjectScore(0.9, 20) for s in LAW}
                     | {s: SubjectScore(0.54, 20) for s in MATH})
    assert mathy.mean_accuracy == pytest.approx(lawyer.mean_accuracy)
    s = prior_scores([MATH_Q, LAW_Q], [mathy, lawyer], subject_map)
    assert s.shape == (2, 2)
    assert s[0, 0] > s[0, 1], "math question should go to the math-strong model"
    assert s[1, 1] > s[1, 0], "law question should go to the law-strong model"


def test_missing_subject_falls_back_to_the_models_mean():
    p = Profile("m", "v", {"anatomy": SubjectScore(1.0, 20), "astronomy": SubjectScore(0.5, 20)})
    a = shrunk_accuracies([p], ["anatomy", "astronomy", "virology"], kappa=0.0)[:, 0]
    np.testing.assert_allclose(a, [1.0, 0.5, 0.75])


def test_few_items_are_shrunk_toward_the_mean_by_kappa():
    p = Profile("m", "v", {"anatomy": SubjectScore(1.0, 2), "astronomy": SubjectScore(0.0, 2)})
    a = shrunk_accuracies([p], ["anatomy"], kappa=2.0)[0, 0]
    assert a == pytest.approx((2 * 1.0 + 2 * 0.5) / 4)


def test_shrunk_accuracies_are_shrink_of_each_subject_exactly():
    from modelsat.routers.profile_prior import shrink
    rng = np.random.default_rng(0)
    subjects = [f"s{i}" for i in range(12)]
    profs = [Profile(f"m{j}", "v", {s: SubjectScore(float(rng.random()), int(rng.integers(0, 30)))
                                    for s in subjects if rng.random() < 0.8}) for j in range(4)]
    for kappa in (0.0, 0.7, 5.0, 1e6):
        got = shrunk_accuracies(profs, subjects, kappa)
        for j, p in enumerate(profs):
            for i, s in enumerate(subjects):
                sc = p.subjects.get(s)
                n, acc = (sc.n_items, sc.accuracy) if sc is not None else (0, p.mean_accuracy)
                assert got[i, j] == shrink(n, acc, p.mean_accuracy, kappa)


def _records(models_acc: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Records of hand-made models on a few math and law prompts (score = 1 where the model is strong)."""
    prompts = {"high_school_mathematics": [MATH_Q, "Compute the derivative of x^3 + 2x.\nA. 3x^2+2\nB. x^2\nC. 3x\nD. 2"],
               "professional_law": [LAW_Q, "Which amendment protects against unreasonable searches?\nA. First\n"
                                           "B. Fourth\nC. Fifth\nD. Tenth"]}
    rows = []
    for model, acc in models_acc.items():
        for subj, ps in prompts.items():
            for i, p in enumerate(ps):
                rows.append({"model": model, "benchmark": "t", "item_id": f"{subj}-{i}", "prompt": p,
                             "subject": subj, "score": float(acc[subj] > 0.5)})
    return pd.DataFrame(rows)


def test_router_scores_an_unseen_model_from_its_profile_only(subject_map):
    seen = [profile("mathy", MATH, LAW), profile("lawyer", LAW, MATH)]
    recs = _records({"mathy": {"high_school_mathematics": 0.9, "professional_law": 0.3},
                     "lawyer": {"high_school_mathematics": 0.3, "professional_law": 0.9}})
    router = get("profile-prior")(fit_temperature=False).fit(recs, seen)
    newcomer = profile("newcomer", LAW, MATH, hi=0.95, lo=0.6)   # never in records
    s = router.score([LAW_Q], seen + [newcomer])
    assert s.shape == (1, 3)
    assert router.route([LAW_Q], seen + [newcomer]) == ["newcomer"]
    np.testing.assert_allclose(s[0, 2], prior_scores([LAW_Q], [newcomer], subject_map, kappa=router.kappa_)[0, 0])


def test_router_save_load_gives_identical_scores(tmp_path):
    router = ProfilePrior(kappa=3.0)
    cands = [profile("mathy", MATH, LAW), profile("lawyer", LAW, MATH)]
    before = router.score([MATH_Q, LAW_Q], cands)
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    assert isinstance(loaded, ProfilePrior)
    np.testing.assert_array_equal(loaded.score([MATH_Q, LAW_Q], cands), before)


def _task_records() -> tuple[pd.DataFrame, list[Profile]]:
    """Two benchmarks with no MMLU subject (arithmetic, history); `calc` is strong on one, `chron` on the other;
    their aptitude-test profiles are identical, only their `tasks` differ."""
    from router_data import prompts_of
    skill = {"calc": {"toy/arith": 0.9, "toy/hist": 0.3}, "chron": {"toy/arith": 0.3, "toy/hist": 0.9}}
    rows = []
    for bench, subject in (("toy/arith", "math"), ("toy/hist", "history")):
        for i, q in enumerate(prompts_of(subject)):
            for m in skill:
                rows.append({"model": m, "benchmark": bench, "item_id": str(i), "prompt": q, "subject": None,
                             "score": float(i < 20 * skill[m][bench]), "cost": None, "response": None})
    same = {"high_school_mathematics": SubjectScore(0.5, 20), "world_religions": SubjectScore(0.5, 20)}
    profs = [Profile(model=m, test_version="t", subjects=dict(same),
                     tasks={b: SubjectScore(a, 20) for b, a in skill[m].items()}) for m in skill]
    return pd.DataFrame(rows), profs


def test_task_classifier_reads_each_candidates_accuracy_on_the_instructions_task(tmp_path):
    recs, profs = _task_records()
    router = ProfilePrior(kappa=1.0).fit(recs, profs)
    assert router.task_names_ == ["toy/arith", "toy/hist"] and router.mmlu_like_ == []
    questions = ["What is 31 plus 58?", "Who ruled Portugal in the sixteenth century?"]
    assert router.route(questions, profs) == ["calc", "chron"]
    # a model never in the records joins by its profile's tasks alone
    newcomer = Profile(model="newcomer", test_version="t", subjects=dict(profs[0].subjects),
                       tasks={"toy/arith": SubjectScore(0.2, 20), "toy/hist": SubjectScore(0.99, 20)})
    assert router.route(questions, profs + [newcomer]) == ["calc", "newcomer"]
    # without tasks the two profiles are the same: the prior cannot tell them apart
    plain = ProfilePrior(kappa=1.0, tasks=False).fit(recs, profs).score(questions, profs)
    np.testing.assert_allclose(plain[:, 0], plain[:, 1])
    router.save(tmp_path / "r")
    np.testing.assert_array_equal(Router.load(tmp_path / "r").score(questions, profs), router.score(questions, profs))


def test_empirical_bayes_kappa_recovers_the_interaction_spread_under_sampling_noise():
    # 12 models x 300 subjects; each model's true accuracy on a subject = subject level + its own interaction
    # (sd 0.08); profiles measure it on 30 items. kappa should be p(1-p)/tau^2 ~ 0.24/0.0064 ~ 37.5, which a
    # formula without the noise correction (~ 9) or a mean-only estimate would miss.
    rng = np.random.default_rng(0)
    m, c, n, tau = 12, 300, 30, 0.08
    truth = np.clip(0.6 + rng.normal(0, 0.1, size=(1, c)) + rng.normal(0, tau, size=(m, c)), 0.02, 0.98)
    measured = rng.binomial(n, truth) / n
    kappa = empirical_bayes_kappa(measured, np.full((m, c), n))
    expected = np.mean(measured * (1 - measured)) / tau ** 2
    assert 0.75 * expected < kappa < 1.33 * expected
    # look-alike models (no interaction at all): all of the spread is noise, the subjects are not worth reading
    same = np.tile(rng.binomial(n, np.full((1, c), 0.6)) / n, (m, 1))
    assert empirical_bayes_kappa(same, np.full((m, c), n)) == KAPPA_MAX
    # nothing to compare: one model, or one column with enough items
    assert empirical_bayes_kappa(measured[:1], np.full((1, c), n)) is None
    assert empirical_bayes_kappa(measured[:, :3], np.array([[n, 1, 1]] * m)) is None


def test_kappa_from_profiles_ignores_the_records_and_gives_tasks_their_own(tmp_path):
    recs, profs = _task_records()
    router = ProfilePrior(kappa_fit="profiles").fit(recs, profs)
    # identical subject profiles: no subject skill to read; tasks 0.9 vs 0.3 on 20 items: read them nearly raw
    assert router.kappa_ == KAPPA_MAX
    assert 0 < router.task_kappa_ < 2
    questions = ["What is 31 plus 58?", "Who ruled Portugal in the sixteenth century?"]
    assert router.route(questions, profs) == ["calc", "chron"]
    assert ProfilePrior(kappa_fit="profiles").fit(recs.iloc[:0], profs).kappa_ == KAPPA_MAX   # no records needed
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    assert loaded.task_kappa_ == router.task_kappa_
    np.testing.assert_array_equal(loaded.score(questions, profs), router.score(questions, profs))
    # a kappa given by the user holds for subjects and tasks alike
    fixed = ProfilePrior(kappa=1.0, kappa_fit="profiles").fit(recs, profs)
    assert fixed._task_kappa(fixed._kappa()) == 1.0
    with pytest.raises(ModelsatError, match="kappa_fit must be one of likelihood, profiles, candidates"):
        ProfilePrior(kappa_fit="vibes")


def test_kappa_from_the_candidates_reads_look_alikes_by_their_means(tmp_path):
    # the pool: two specialists (a large model x subject interaction, so the pool's kappa is small) and two strong
    # look-alikes whose subject differences (0.80 vs 0.85, 0.90 vs 0.80 on 20 items) are within sampling noise
    def prof(name, math, law):
        return Profile(model=name, test_version="hand-made",
                       subjects={s: SubjectScore(math, 20) for s in MATH} | {s: SubjectScore(law, 20) for s in LAW})
    pool = [prof("mathy", 0.9, 0.2), prof("lawy", 0.2, 0.9), prof("steady", 0.80, 0.90), prof("noisy", 0.85, 0.80)]
    no_records = pd.DataFrame(columns=["model", "benchmark", "item_id", "prompt", "score"])
    whole = ProfilePrior(kappa_fit="profiles").fit(no_records, pool)
    per_call = ProfilePrior(kappa_fit="candidates").fit(no_records, pool)
    assert per_call.kappa_ == whole.kappa_ < 5                        # the fit's estimate: the whole pool's
    pair = pool[2:]
    # the pool's small kappa reads the pair's noise: "noisy" wins the maths question on its 0.85
    assert whole.route([MATH_Q], pair) == ["noisy"]
    # the pair's own estimate finds no skill beyond noise and reads their means: "steady" (0.8375 vs 0.83125)
    assert per_call._candidate_kappas(pair) == (KAPPA_MAX, None)
    assert per_call.route([MATH_Q], pair) == ["steady"]
    np.testing.assert_allclose(per_call.score([MATH_Q], pair), [[0.8375, 0.83125]], atol=1e-4)
    # the whole pool as candidates gives the fit's kappa back; one candidate cannot be compared
    np.testing.assert_allclose(per_call.score([MATH_Q, LAW_Q], pool), whole.score([MATH_Q, LAW_Q], pool))
    assert per_call._candidate_kappas(pair[:1]) == (per_call.kappa_, None)
    per_call.save(tmp_path / "r")
    np.testing.assert_array_equal(Router.load(tmp_path / "r").score([MATH_Q], pair), per_call.score([MATH_Q], pair))


def test_the_task_classifiers_C_is_chosen_on_validation_items():
    recs, profs = _task_records()
    held = pd.concat([recs.assign(prompt=recs["prompt"] + " ?", item_id="a" + recs["item_id"]),    # other texts,
                      recs.assign(prompt="Tell me: " + recs["prompt"], item_id="b" + recs["item_id"])])  # same tasks
    router = ProfilePrior(kappa=1.0, C_grid=(100.0, 0.001, 1.0)).fit(recs, profs, validation=held)
    accuracy = {float(c): a for c, a in router.task_C_selection_["accuracy"].items()}
    assert sorted(accuracy) == [0.001, 1.0, 100.0] and router.task_C_selection_["validation_items"] == 80
    best = max(accuracy.values())
    assert accuracy[router.task_C_] == best and router.task_C_ == min(c for c, a in accuracy.items() if a == best)
    assert router.fit_choices()["task_C"] == router.task_C_
    assert ProfilePrior(kappa=1.0, C_grid=(100.0,)).fit(recs, profs).task_C_ == 1.0      # no validation: C


def test_profile_tasks_round_trip_and_are_validated(tmp_path):
    _, profs = _task_records()
    again = Profile.load(profs[0].save(tmp_path / "p.json"))
    assert again.tasks == profs[0].tasks
    bad = profs[0].to_dict()
    bad["tasks"]["toy/arith"]["accuracy"] = 1.5
    with pytest.raises(ModelsatError, match="task 'toy/arith' accuracy 1.5"):
        Profile.from_dict(bad)


def test_the_static_map_lets_the_prior_route_without_the_encoder(monkeypatch, tmp_path):
    from modelsat import embeddings
    assert (shipped().kind, shipped().features) == ("centroid", "minilm")     # the default
    sm = shipped("static")
    assert (sm.kind, sm.features) == ("linear", "static") and sm.subjects == shipped().subjects
    assert sm.provenance["subject_accuracy"]["test"]["top1"] > 0.6     # as written by the build script

    def no_encoder(*a, **k):
        raise AssertionError("the full MiniLM encoder ran")

    monkeypatch.setattr(embeddings, "encode", no_encoder)
    cands = [profile("mathy", MATH, LAW), profile("lawyer", LAW, MATH)]
    router = ProfilePrior(kappa=3.0, features="static")
    assert router.route([MATH_Q, LAW_Q], cands) == ["mathy", "lawyer"]
    loaded = Router.load(router.save(tmp_path / "static"))     # the map's kind and features travel with it
    assert (loaded._map().kind, loaded._map().features) == ("linear", "static")
    np.testing.assert_array_equal(loaded.score([MATH_Q], cands), router.score([MATH_Q], cands))
    with pytest.raises(ModelsatError, match="no shipped subject map"):
        shipped("bag-of-letters")


def test_a_linear_map_learns_subjects_from_questions_and_round_trips(tmp_path):
    from router_data import prompts_of
    from modelsat.embeddings import static_encode
    subjects = {"math": "high_school_mathematics", "history": "high_school_world_history", "biology": "anatomy"}
    qs = {s: prompts_of(s) for s in subjects}
    train = [(q, subjects[s]) for s in qs for q in qs[s][:15]]
    held = [(q, subjects[s]) for s in qs for q in qs[s][15:]]
    sm = SubjectMap.from_classifier(static_encode([q for q, _ in train]), [s for _, s in train], C=10.0)
    assert sm.kind == "linear" and sm.features == "static" and sm.bias.shape == (3,)
    acc, n = sm.top1_accuracy(sm.featurize([q for q, _ in held]), [s for _, s in held])
    assert n == 15 and acc == 1.0
    sm.fit_temperature(sm.featurize([q for q, _ in train]), [s for _, s in train])
    again = SubjectMap.load(sm.save(tmp_path / "linear"))
    assert (again.kind, again.features, again.temperature) == ("linear", "static", sm.temperature)
    # anchors are stored in float16; the weights agree to that precision
    np.testing.assert_allclose(again.weights([q for q, _ in held]), sm.weights([q for q, _ in held]), atol=2e-3)
    (tmp_path / "linear" / "anchors.safetensors").write_bytes(b"")    # a damaged folder is a clear error
    with pytest.raises(ModelsatError, match="not a subject map folder"):
        SubjectMap.load(tmp_path / "linear")


def test_a_centroid_map_on_full_minilm_embeddings_still_works(tmp_path):
    from modelsat.embeddings import embed
    sm = SubjectMap.from_questions(embed([MATH_Q, LAW_Q]), ["high_school_mathematics", "professional_law"])
    assert (sm.kind, sm.features) == ("centroid", "minilm")
    again = SubjectMap.load(sm.save(tmp_path / "centroid"))
    assert again.kind == "centroid" and again.bias is None
    assert [again.subjects[i] for i in again.weights([MATH_Q, LAW_Q]).argmax(1)] == sm.subjects


# ---- the learned reading of profiles (ProfilePrior(learn_steps=N), routers/_prior_learning.py) ----------------
def _misread_records() -> tuple[pd.DataFrame, list[Profile]]:
    """Arithmetic items that `a` answers and `b` fails. Their profiles have the same mean, `a` strong at high
    school and weak at elementary mathematics, `b` the other way round; the subject map reads an addition mostly
    at elementary mathematics, so the fixed prior routes the items to `b`: the records say the profile should be
    read at high school mathematics."""
    from router_data import prompts_of
    rows = [{"model": m, "benchmark": "toy", "item_id": str(i), "prompt": q, "subject": None,
             "score": float(m == "a")} for i, q in enumerate(prompts_of("math")) for m in ("a", "b")]
    hs, el = ["high_school_mathematics"], ["elementary_mathematics"]
    return pd.DataFrame(rows), [profile("a", hs, el), profile("b", el, hs)]


def test_the_learned_reading_starts_equal_to_the_fixed_prior():
    from modelsat.routers._prior_learning import LearnedReading
    for recs, profs in (_task_records(), _misread_records()):
        router = ProfilePrior().fit(recs, profs)
        questions = recs["prompt"].unique().tolist()[:12] + [MATH_Q, LAW_Q]
        fixed = router.score(questions, profs)
        d, S, T = 384, len(router._map().subjects), len(router.task_names_)
        router.learned_ = LearnedReading(np.zeros((d, S)), np.zeros(S), np.zeros((d, T)), np.zeros(T),
                                         np.array([1.0 if t in router.mmlu_like_ else 0.0 for t in router.task_names_]),
                                         router.kappa_, {})
        np.testing.assert_allclose(router.score(questions, profs), fixed, rtol=1e-6, atol=1e-9)


def test_the_learned_reading_fixes_a_wrong_prior_and_carries_to_an_unseen_model(tmp_path):
    recs, profs = _misread_records()
    sums = ["What is 31 plus 58?", "What is 7 plus 90?"]
    assert ProfilePrior().fit(recs, profs).route(sums, profs) == ["b", "b"]     # the fixed reading is wrong here
    router = ProfilePrior(learn_steps=300).fit(recs, profs)
    assert router.learned_.history["best"]["step"] > 0
    assert router.route(sums, profs) == ["a", "a"]
    # a model never in the records, with a profile of a's shape and stronger, is read the same way
    newcomer = profile("newcomer", ["high_school_mathematics"], ["elementary_mathematics"], hi=0.95, lo=0.35)
    assert router.route(sums, profs + [newcomer]) == ["newcomer", "newcomer"]
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    np.testing.assert_array_equal(loaded.score(sums, profs + [newcomer]), router.score(sums, profs + [newcomer]))


def test_routing_selection_reads_what_routes_best_on_validation_items(tmp_path):
    """`calc` answers the arithmetic items, but its profile says it is weak at the arithmetic task and strong at
    elementary mathematics; by default the prior reads the (misleading) task accuracy, and routing selection on
    validation items switches that task to the subject reading."""
    from router_data import prompts_of
    rows = []
    for copy in range(2):   # 80 validation items (selection needs >= 50)
        for bench, subject in (("toy/arith", "math"), ("toy/hist", "history")):
            for i, q in enumerate(prompts_of(subject)):
                for m in ("calc", "chron"):
                    win = (m == "calc") == (bench == "toy/arith")
                    rows.append({"model": m, "benchmark": bench, "item_id": f"{copy}-{i}", "prompt": q,
                                 "subject": None, "score": float(win)})
    recs = pd.DataFrame(rows)
    profs = [Profile(model="calc", test_version="t", subjects={"elementary_mathematics": SubjectScore(0.9, 20),
                                                               "prehistory": SubjectScore(0.5, 20)},
                     tasks={"toy/arith": SubjectScore(0.3, 20), "toy/hist": SubjectScore(0.3, 20)}),
             Profile(model="chron", test_version="t", subjects={"elementary_mathematics": SubjectScore(0.3, 20),
                                                                "prehistory": SubjectScore(0.5, 20)},
                     tasks={"toy/arith": SubjectScore(0.6, 20), "toy/hist": SubjectScore(0.9, 20)})]
    sums = ["What is 31 plus 58?", "What is 7 plus 90?"]
    plain = ProfilePrior(kappa=1.0).fit(recs, profs, validation=recs)
    assert plain.selection_ is None and plain.route(sums, profs) == ["chron", "chron"]
    router = ProfilePrior(kappa=1.0, select="routing").fit(recs, profs, validation=recs)
    assert router.selection_["by"] == "routing"
    assert router.selection_["reads_subjects"] == {"toy/arith": True, "toy/hist": False}
    assert router.selection_["routed_accuracy"] > router.selection_["likelihood_fit"]["routed_accuracy"]
    assert router.route(sums, profs) == ["calc", "calc"]
    router.save(tmp_path / "r")
    np.testing.assert_array_equal(Router.load(tmp_path / "r").score(sums, profs), router.score(sums, profs))
    # without enough validation items the likelihood fit stands, and says why
    few = ProfilePrior(kappa=1.0, select="routing").fit(recs, profs, validation=recs.iloc[:20])
    assert few.selection_["by"] == "likelihood" and "validation items" in few.selection_["reason"]
    with pytest.raises(ModelsatError, match="select must be one of"):
        ProfilePrior(select="vibes")
