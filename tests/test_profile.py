"""Profiles from records: core items, per-subject fallback, and the real data folder."""

import pandas as pd
import pytest
from conftest import needs_data
from test_aptitude import example_records, example_test

from modelsat.aptitude.from_records import profile_all, profile_from_records
from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError


def test_profile_on_core_items_rests_on_the_core_items():
    test = example_test()
    prof = profile_from_records(example_records(), "m1", test, label="mem")
    assert set(prof.subjects) == set(test.subject_names)
    for s in test.subjects:
        expected = sum(1.0 if 0 < int(it.item_id.split("-")[1]) % 5 else 0.0 for it in s.items) / len(s.items)
        assert prof.subjects[s.name].accuracy == pytest.approx(expected)
        assert prof.subjects[s.name].n_items == 3 and prof.subjects[s.name].basis == "core"
    assert prof.test_version == test.version and prof.provenance["fallback_subjects"] == []


def test_a_model_without_the_core_items_falls_back_to_its_items_of_the_same_subject(tmp_path):
    test = example_test()
    other = pd.DataFrame([{"model": "x", "benchmark": "mmlu", "item_id": f"anatomy/test/{i}", "prompt": "q",
                           "subject": "anatomy", "score": float(i % 2), "cost": None, "response": None}
                          for i in range(10)])
    prof = profile_from_records(other, "x", test)
    assert list(prof.subjects) == ["anatomy"]
    assert prof.subjects["anatomy"].n_items == 10 and prof.subjects["anatomy"].accuracy == 0.5
    assert prof.subjects["anatomy"].basis == "fallback"
    assert prof.provenance["fallback_subjects"] == ["anatomy"]
    assert sorted(prof.provenance["missing_subjects"]) == ["astronomy", "virology"]
    again = Profile.load(prof.save(tmp_path / "x.json"))
    assert again.subjects["anatomy"].basis == "fallback"


def test_a_model_with_nothing_of_the_tests_subjects_is_not_profiled():
    test = example_test()
    other = pd.DataFrame([{"model": "y", "benchmark": "gsm8k", "item_id": "1", "prompt": "q", "subject": None,
                           "score": 1.0, "cost": None, "response": None}])
    with pytest.raises(ModelsatError, match="cannot be profiled from these records"):
        profile_from_records(other, "y", test)
    with pytest.raises(ModelsatError, match="no records for model 'zz'"):
        profile_from_records(other, "zz", test)
    written, skipped = profile_all(pd.concat([example_records(), other]), test, "/tmp/unused-never-written")
    assert len(written) == 4 and list(skipped) == ["y"]


@pytest.mark.slow
@needs_data
def test_real_mmlu_pro_test_is_50_by_20_and_profiles_track_accuracy_outside_it():
    from modelsat import sources
    from modelsat.aptitude.core_items import build_test, distinguishability
    from modelsat.aptitude.validation import profile_vs_outside
    df = sources.load("mmlu_pro")
    test = build_test(df)
    d = distinguishability(test)
    assert len(d) == 50 and (d["items"] == 20).all()
    assert (d["min_share"] > 0).all() and (d["max_share"] < 1).all()
    assert len(test.pool) == 23
    table, rho, _ = profile_vs_outside(df, test)
    assert len(table) == 23 and rho > 0.9
    # held-out evaluation items are never chosen
    eval_ids = {it.item_id for _, it in test.items()}
    again = build_test(df, exclude=eval_ids)
    assert not eval_ids & {it.item_id for _, it in again.items()}


def test_mmlu_items_recorded_without_a_subject_get_the_nearest_one_and_are_marked_inferred():
    """LLMRouter's `llmrouter/mmlu` items carry no subject; the shipped subject map (real MiniLM) infers it."""
    from modelsat.aptitude.from_records import infer_mmlu_subjects
    questions = {
        "anatomy": "Which bone of the human skull contains the foramen magnum through which the spinal cord "
                   "passes?\nA. Occipital bone\nB. Frontal bone\nC. Parietal bone\nD. Sphenoid bone",
        "astronomy": "Why does the planet Venus show phases like the Moon when seen through a telescope?\n"
                     "A. It orbits the Sun inside Earth's orbit\nB. It has a thick atmosphere\nC. It rotates "
                     "backwards\nD. It has no moons",
        "virology": "Which viral enzyme lets a retrovirus such as HIV copy its RNA genome into DNA inside the "
                    "host cell?\nA. Reverse transcriptase\nB. Neuraminidase\nC. Protease\nD. Integrase",
    }
    rows = [{"model": "z", "benchmark": "llmrouter/mmlu", "item_id": s, "prompt": q, "subject": None,
             "score": float(i % 2), "cost": None, "response": None} for i, (s, q) in enumerate(questions.items())]
    rows.append({"model": "z", "benchmark": "llmrouter/gsm8k", "item_id": "g1", "prompt": "2+2?", "subject": None,
                 "score": 1.0, "cost": None, "response": None})
    inferred = infer_mmlu_subjects(pd.DataFrame(rows))
    mmlu = inferred[inferred["benchmark"] == "llmrouter/mmlu"]
    assert list(mmlu["subject"]) == list(questions) and mmlu["subject_inferred"].all()
    gsm = inferred[inferred["benchmark"] == "llmrouter/gsm8k"]
    assert gsm["subject"].isna().all() and not gsm["subject_inferred"].any()
    prof = profile_from_records(inferred, "z", example_test())
    assert {s: v.basis for s, v in prof.subjects.items()} == {s: "inferred" for s in questions}
    assert prof.subjects["astronomy"].accuracy == 1.0 and prof.provenance["inferred_subjects"] == sorted(questions)
    with pytest.raises(ModelsatError, match="cannot be profiled"):   # without inference: no subject at all
        profile_from_records(pd.DataFrame(rows), "z", example_test())


def test_profile_all_cli_gives_a_model_without_mmlu_items_a_per_benchmark_profile(tmp_path):
    from typer.testing import CliRunner
    from modelsat.cli import app
    from modelsat.records import write_table
    test_file = example_test().save(tmp_path / "test.json")
    other = pd.DataFrame([{"model": "y", "benchmark": "gsm8k", "item_id": str(i), "prompt": f"q{i}",
                           "subject": None, "score": float(i % 4 == 0), "cost": None, "response": None}
                          for i in range(8)])
    recs = tmp_path / "recs.parquet"
    write_table(pd.concat([example_records(), other], ignore_index=True), recs)
    args = ["profile", "--test", str(test_file), "--records", str(recs), "--all"]
    result = CliRunner().invoke(app, args + ["--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    y = Profile.load(tmp_path / "p" / "y.json")
    assert y.test_version.startswith("per-benchmark") and y.subjects["gsm8k"].accuracy == 0.25
    assert y.tasks["gsm8k"].n_items == 8
    assert Profile.load(tmp_path / "p" / "m1.json").test_version == example_test().version
    result = CliRunner().invoke(app, args + ["--out", str(tmp_path / "q"), "--no-per-benchmark-fallback"])
    assert result.exit_code == 0 and not (tmp_path / "q" / "y.json").exists() and "not profiled" in result.output
