"""`modelsat benchmark` and `modelsat evaluate` on small real data, through the real entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_data

MODELSAT = Path(sys.executable).with_name("modelsat")
ZOO_MODELS = ["Meta-Llama-3_1-8B", "Qwen1.5-7B-Chat", "gemma-7b"]
DEFAULT_ZOO = Path(__file__).resolve().parents[1] / "src" / "modelsat" / "shipped" / "default_zoo"


def modelsat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, COLUMNS="200"))


@needs_data
def test_benchmark_of_two_routers_on_one_small_zoo_writes_its_results(tmp_path):
    r = modelsat("benchmark", "--routers", "random,best-single", "--zoos", "routellm-pair", "--test-items", "20",
                 "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "routellm-pair" in json.dumps(results)
    assert (tmp_path / "out" / "results.md").exists() and "best-single" in r.stdout


def test_benchmark_refuses_an_unknown_router_and_lists_the_known_ones(tmp_path):
    r = modelsat("benchmark", "--routers", "no-such-router", "--zoos", "routellm-pair", "--out", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no-such-router" in r.stderr and "best-single" in r.stderr


@pytest.fixture(scope="module")
def saved_router_and_records(tmp_path_factory):
    """A best-single router fitted on MMLU-Pro's training items of three models, and their test items."""
    from modelsat import records, sources
    from modelsat.aptitude.profile import Profile
    from modelsat.evaluate.splits import apply_splits, assign_splits
    from modelsat.routers import get
    folder = tmp_path_factory.mktemp("evaluate")
    df = sources.load("mmlu_pro")
    df = df[df["model"].isin(ZOO_MODELS)].assign(response=None)
    df = apply_splits(df, assign_splits(df, seed=0))
    profiles = [Profile.load(DEFAULT_ZOO / f"{m}.json") for m in ZOO_MODELS]
    get("best-single")().fit(df[df["eval_split"] == "train"].drop(columns="eval_split"), profiles).save(
        folder / "router")
    test = df[df["eval_split"] == "test"].drop(columns="eval_split")
    test = test[test["item_id"].isin(test["item_id"].drop_duplicates().sample(60, random_state=0))]
    return folder / "router", records.write(test, folder / "test.parquet")


@needs_data
def test_evaluate_a_saved_router_on_records_it_never_saw(saved_router_and_records, tmp_path):
    router, test = saved_router_and_records
    r = modelsat("evaluate", str(router), "--records", str(test), "--profiles", str(DEFAULT_ZOO),
                 "--models", ",".join(ZOO_MODELS), "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    entry = json.loads((tmp_path / "e.json").read_text())
    assert entry["n_test_items"] == 60 and "best-single" in json.dumps(entry["rows"])


@needs_data
def test_evaluate_names_a_zoo_model_without_a_profile(saved_router_and_records, tmp_path):
    router, test = saved_router_and_records
    r = modelsat("evaluate", str(router), "--records", str(test), "--profiles", str(DEFAULT_ZOO),
                 "--models", "Meta-Llama-3_1-8B,no-such-model")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no profile for zoo model(s) no-such-model" in r.stderr
