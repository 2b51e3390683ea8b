"""Core-item selection, the aptitude-test file, exclusion, keywords and capability text."""

import json

import pandas as pd
import pytest

from modelsat.aptitude.capability import capability_text
from modelsat.aptitude.core_items import (AptitudeTest, build_test, distinguishability, load_test,
                                          read_exclude_file, subject_keywords)
from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.errors import ModelsatError

MODELS = ["m1", "m2", "m3", "m4"]
SUBJECTS = ["anatomy", "astronomy", "virology"]


def example_records(n_items: int = 8) -> pd.DataFrame:
    """4 models x 3 MMLU subjects x n_items items; item j is answered right by the first j % 5 models
    (so shares 0, .25, .5, .75, 1, 0, ...), options A-D, answer letter cycling."""
    rows = []
    for s in SUBJECTS:
        for j in range(n_items):
            item_id = f"{s}-{j}"
            options = [f"{s} option {k} of item {j}" for k in range(4)]
            question = f"Question {j} about {s}?"
            prompt = "\n".join([question] + [f"{'ABCD'[k]}. {o}" for k, o in enumerate(options)])
            for mi, m in enumerate(MODELS):
                rows.append({"model": m, "benchmark": "mmlu_pro", "item_id": item_id, "prompt": prompt,
                             "subject": s, "score": 1.0 if mi < j % 5 else 0.0, "cost": None, "response": None,
                             "choices": json.dumps(options), "answer": "ABCD"[j % 4],
                             "source": f"ori_mmlu-{s}"})
    return pd.DataFrame(rows)


def example_test(per_subject: int = 3, n_items: int = 8) -> AptitudeTest:
    return build_test(example_records(n_items), n_subjects=3, per_subject=per_subject)


def test_core_items_are_never_answered_by_all_or_none_of_the_pool():
    test = example_test()
    shares = [it.pool_share for _, it in test.items()]
    assert len(shares) == 9
    assert all(0 < s < 1 for s in shares)


def test_items_closest_to_half_the_pool_come_first():
    test = build_test(example_records(), n_subjects=3, per_subject=1)
    assert [it.pool_share for _, it in test.items()] == [0.5, 0.5, 0.5]


def test_the_spread_rule_measures_easy_and_hard_items_too():
    # eligible shares per subject: .25, .25, .5, .5, .75; the distinguishing rule takes both .5 items first
    near = build_test(example_records(), n_subjects=3, per_subject=3)
    spread = build_test(example_records(), n_subjects=3, per_subject=3, rule="spread")
    assert sorted(it.pool_share for it in near.subjects[0].items)[1:] == [0.5, 0.5]
    assert [sorted(it.pool_share for it in s.items) for s in spread.subjects] == [[0.25, 0.5, 0.75]] * 3
    assert spread.version != near.version and "evenly spaced" in spread.selection["rule"]
    drawn = build_test(example_records(), n_subjects=3, per_subject=3, rule="random", seed=1)
    assert all(0 < it.pool_share < 1 for _, it in drawn.items()) and len(list(drawn.items())) == 9
    assert drawn.version == build_test(example_records(), n_subjects=3, per_subject=3, rule="random",
                                       seed=1).version
    # mixed, 4 a subject: the two .5 items closest to half, then evenly spaced ranks of the rest (.25, .25, .75)
    mixed = build_test(example_records(), n_subjects=3, per_subject=4, rule="mixed")
    assert [sorted(it.pool_share for it in s.items) for s in mixed.subjects] == [[0.25, 0.5, 0.5, 0.75]] * 3
    assert "half the items closest to 0.5" in mixed.selection["rule"]
    with pytest.raises(ModelsatError, match="item rule must be one of distinguishing, spread, mixed, random"):
        build_test(example_records(), n_subjects=3, per_subject=3, rule="hardest")


def test_excluded_items_are_never_chosen():
    exclude = {"anatomy-2", ("mmlu_pro", "astronomy-2")}
    test = build_test(example_records(), exclude=exclude, n_subjects=3, per_subject=3)
    ids = {it.item_id for _, it in test.items()}
    assert "anatomy-2" not in ids and "astronomy-2" not in ids and "virology-2" in ids
    assert test.selection["excluded_items"] == 2


def test_too_few_distinguishing_items_is_a_clear_error():
    with pytest.raises(ModelsatError, match="only 0 MMLU subjects have 6 distinguishing items"):
        build_test(example_records(), n_subjects=3, per_subject=6)


def test_unknown_pool_model_is_refused():
    with pytest.raises(ModelsatError, match="pool model"):
        build_test(example_records(), pool=["m1", "nope"], n_subjects=1, per_subject=1)


def test_test_file_round_trips_with_a_content_hash_version(tmp_path):
    test = example_test()
    path = test.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["version"] == test.version and len(data["version"]) == 12
    assert set(data["subjects"][0]) == {"name", "keywords", "items"}
    assert set(data["subjects"][0]["items"][0]) >= {"item_id", "question", "options", "answer"}
    assert data["subjects"][0]["items"][0]["question"].startswith("Question")   # options stripped from it
    again = load_test(path)
    assert again.version == test.version and again.pool == MODELS
    other = build_test(example_records(), pool=["m1", "m2", "m3"], n_subjects=3, per_subject=2)
    assert other.version != test.version


def test_malformed_aptitude_files_are_refused_with_the_reason(tmp_path):
    good = example_test().to_dict()
    cases = {
        "notjson.json": ("{not json", "cannot read aptitude-test JSON"),
        "other.json": (json.dumps({"hello": 1}), "not a modelsat aptitude test"),
        "nosubjects.json": (json.dumps({k: v for k, v in good.items() if k != "subjects"}), "malformed"),
    }
    edited = json.loads(json.dumps(good))
    edited["subjects"][0]["items"][0]["answer"] = "B" if edited["subjects"][0]["items"][0]["answer"] != "B" else "C"
    cases["edited.json"] = (json.dumps(edited), "does not match its version")
    bad_letter = json.loads(json.dumps(good))
    bad_letter["subjects"][1]["items"][0]["answer"] = "H"
    bad_letter.pop("version")
    cases["badletter.json"] = (json.dumps(bad_letter), r"subjects\[1\].*answer 'H' is not one of the 4")
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ModelsatError, match=message):
            load_test(tmp_path / name)
    with pytest.raises(ModelsatError, match="no such aptitude-test file"):
        load_test(tmp_path / "absent.json")


def test_exclude_file_accepts_text_csv_and_json(tmp_path):
    (tmp_path / "a.txt").write_text("# eval split\nmmlu_pro,12\n13\n")
    (tmp_path / "b.csv").write_text("benchmark,item_id,extra\nmmlu_pro,12,x\n,13,y\n")
    (tmp_path / "c.json").write_text(json.dumps([{"benchmark": "mmlu_pro", "item_id": 12}, "13"]))
    for name in ("a.txt", "b.csv", "c.json"):
        assert read_exclude_file(tmp_path / name) == {("mmlu_pro", "12"), "13"}


def test_keywords_cover_all_57_mmlu_subjects_with_five_each():
    kw = subject_keywords()
    assert len(kw) == 57 and all(len(v) == 5 for v in kw.values())


def test_distinguishability_reports_mean_min_max_share_per_subject():
    d = distinguishability(example_test())
    assert list(d.columns) == ["subject", "items", "mean_share", "min_share", "max_share"]
    assert (d["min_share"] > 0).all() and (d["max_share"] < 1).all()


def _profile(test, notes=None):
    return Profile("m", test.version, {"anatomy": SubjectScore(0.85, 20), "virology": SubjectScore(0.4, 20)},
                   notes=notes or {})


def test_capability_text_has_the_papers_form():
    test = example_test()
    text = capability_text(_profile(test), test)
    kw = subject_keywords()
    assert text == (f'The model achieves accuracy 85% on the task of "{", ".join(kw["anatomy"])}", '
                    f'accuracy 40% on the task of "{", ".join(kw["virology"])}".')


def test_capability_text_seed_shuffles_deterministically_and_notes_are_appended():
    test = example_test()
    prof = _profile(test, notes={"languages": ["English", "French"], "context_length": 4096,
                                 "price_per_mtok": {"input": 0.5, "output": 1.5}})
    texts = {capability_text(prof, test, seed=s) for s in range(8)}
    assert len(texts) == 2                                       # both orders of the two tasks occur
    assert capability_text(prof, test, seed=3) == capability_text(prof, test, seed=3)
    assert capability_text(prof, test).endswith(
        "The model supports these languages: English, French. Its context length is 4096 tokens. "
        "It costs $0.5 per million input tokens and $1.5 per million output tokens.")


def test_capability_text_refuses_a_profile_of_another_test_version():
    test = example_test()
    prof = _profile(test)
    prof.test_version = "0123456789ab"
    with pytest.raises(ModelsatError, match="is for aptitude test 0123456789ab"):
        capability_text(prof, test)
