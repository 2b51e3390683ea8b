"""`modelsat aptitude show | build | stats | correlate` and the aptitude test that ships in the package."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_data
from modelsat.aptitude.core_items import load_test
from modelsat.aptitude.shipped import shipped_profile_version, shipped_test, shipped_test_path

MODELSAT = Path(sys.executable).with_name("modelsat")
MODELS = ["Meta-Llama-3_1-8B", "Mistral-7B-v0.1", "gemma-7b", "Qwen1.5-7B-Chat", "Phi-3-mini-4k-instruct"]
SUBJECTS = ["high_school_mathematics", "anatomy", "marketing", "professional_law"]


def modelsat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200"))


@pytest.fixture(scope="module")
def small_records(tmp_path_factory):
    """Real MMLU-Pro results of five models on four MMLU subjects, as a records file."""
    from modelsat import records, sources
    df = sources.load("mmlu_pro")
    df = df[df["model"].isin(MODELS) & df["subject"].isin(SUBJECTS)].assign(response=None)
    return records.write(df, tmp_path_factory.mktemp("records") / "small.parquet")


@pytest.fixture(scope="module")
def small_test(small_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("test") / "test.json"
    r = modelsat("aptitude", "build", "--records", str(small_records), "--out", str(out), "--subjects", "3",
                 "--per-subject", "4")
    assert r.returncode == 0, r.stderr
    return out, r


def test_the_shipped_test_is_the_one_the_shipped_profiles_were_taken_on():
    assert shipped_test().version == shipped_profile_version() == "d6f5e5aea41c"


def test_the_shipped_test_has_question_options_answer_and_subject_for_each_item():
    test = shipped_test()
    assert len(test.subjects) == 50 and len(test.items()) == 1000
    for subject, item in test.items():
        assert subject and item.question and len(item.options) >= 4 and item.answer in "ABCDEFGHIJ"


def test_the_shipped_test_states_mmlu_pros_source_and_licence_beside_it():
    source = json.loads(gzip.decompress(shipped_test_path().read_bytes()))["source"]
    assert "TIGER-AI-Lab/MMLU-Pro" in source["url"] and "Apache-2.0" in source["license"]
    readme = shipped_test_path().with_name("aptitude-test.README.md").read_text()
    assert "Apache-2.0" in readme and "MIT" in readme and "d6f5e5aea41c" in readme


@needs_data
def test_the_shipped_test_rebuilds_from_mmlu_pro_with_the_same_version():
    from modelsat.aptitude.shipped import build_shipped_test
    assert build_shipped_test().version == shipped_test().version


def test_aptitude_show_summarises_the_shipped_test():
    r = modelsat("aptitude", "show")
    assert r.returncode == 0, r.stderr
    assert "d6f5e5aea41c" in r.stdout and "50 subjects, 1000 items" in r.stdout
    assert "high_school_mathematics" in r.stdout and "Apache-2.0" in r.stdout


def test_aptitude_show_of_a_damaged_file_names_it(tmp_path):
    damaged = tmp_path / "t.json"
    text = gzip.decompress(shipped_test_path().read_bytes()).decode()
    damaged.write_text(text.replace('"answer": "B"', '"answer": "C"', 1))
    r = modelsat("aptitude", "show", str(damaged))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(damaged) in r.stderr and "does not match its version" in r.stderr


def test_profile_takes_the_shipped_test_by_default(tmp_path):
    r = modelsat("profile", "--model", "m")       # no --test: the shipped test loads, then the missing source
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "say where the profile comes from" in r.stderr


@needs_data
def test_aptitude_build_writes_a_test_of_the_asked_size(small_test):
    out, r = small_test
    test = load_test(out)
    assert len(test.subjects) == 3 and all(len(s.items) == 4 for s in test.subjects)
    assert set(test.pool) == set(MODELS) and test.version in r.stdout


@needs_data
def test_aptitude_build_refuses_an_unknown_pool_model(small_records, tmp_path):
    r = modelsat("aptitude", "build", "--records", str(small_records), "--out", str(tmp_path / "t.json"),
                 "--models", "gemma-7b,no-such-model")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no-such-model" in r.stderr
    assert not (tmp_path / "t.json").exists()


@needs_data
def test_aptitude_stats_prints_each_subjects_distinguishability(small_test):
    out, _ = small_test
    r = modelsat("aptitude", "stats", str(out))
    assert r.returncode == 0, r.stderr
    assert "3 subjects, 12 items" in r.stdout
    assert sum(s in r.stdout for s in SUBJECTS) == 3


def test_aptitude_stats_refuses_a_profile_given_as_a_test(tmp_path):
    profile = next((shipped_test_path().parent / "default_zoo").glob("*.json"))
    r = modelsat("aptitude", "stats", str(profile))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "not a modelsat aptitude test" in r.stderr


@needs_data
def test_aptitude_correlate_prints_spearman_over_the_models(small_test, small_records):
    out, _ = small_test
    r = modelsat("aptitude", "correlate", "--test", str(out), "--records", str(small_records))
    assert r.returncode == 0, r.stderr
    assert "Spearman rho" in r.stdout and f"over {len(MODELS)} models" in r.stdout


def test_aptitude_correlate_needs_records_or_a_source():
    r = modelsat("aptitude", "correlate", "--test", str(shipped_test_path()))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--records FILE or --source NAME" in r.stderr
