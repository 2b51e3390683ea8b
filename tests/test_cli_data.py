"""`modelsat data list | export | validate`, run as a user runs them."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import needs_data
from modelsat import records
from modelsat.cli import app
from modelsat.errors import ModelsatError
from modelsat.paths import data_dir

runner = CliRunner()
MODELSAT = Path(sys.executable).with_name("modelsat")


def invoke(*args: str):
    """The CliRunner result of `modelsat ARGS` with a wide terminal, so table cells are not folded."""
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "MODELSAT_NO_CACHE": "1"})


@pytest.fixture
def small_data_dir(tmp_path):
    """A data folder holding only the fast sources (links to the real ones): mmlu, routellm, llmrouter."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("mmlu", "routellm", "llmrouter"):
        (folder / name).symlink_to(data_dir() / name, target_is_directory=True)
    return folder


def valid_records_file(tmp_path: Path) -> Path:
    return records.write(pd.DataFrame({
        "model": ["m1", "m2"], "benchmark": ["mmlu", "mmlu"], "item_id": ["anatomy/test/0"] * 2,
        "prompt": ["Q"] * 2, "subject": ["anatomy"] * 2, "score": [1.0, 0.0], "cost": [None, None],
        "response": [None, None]}), tmp_path / "records.csv")


def test_validate_reports_a_valid_file(tmp_path):
    result = invoke("data", "validate", str(valid_records_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "2 records, 2 models, 1 benchmarks" in result.output


def test_validate_names_the_bad_row_and_field_with_exit_status_2(tmp_path):
    path = valid_records_file(tmp_path)
    path.write_text(path.read_text().replace(",1.0,", ",3.0,"))
    completed = subprocess.run([str(MODELSAT), "data", "validate", str(path)], capture_output=True, text=True)
    assert completed.returncode == 2
    assert "row 1, field 'score'" in completed.stderr and str(path) in completed.stderr
    assert "Traceback" not in completed.stderr


def test_missing_data_dir_says_where_the_public_copies_live(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MODELSAT_DATA"}
    completed = subprocess.run([str(MODELSAT), "data", "list", "--data-dir", str(tmp_path / "nowhere")],
                               capture_output=True, text=True, env=env)
    assert completed.returncode == 2
    assert f"No data folder at {tmp_path / 'nowhere'}" in completed.stderr
    assert "lm-sys/RouteLLM" in completed.stderr and "TIGER-AI-Lab/MMLU-Pro" in completed.stderr


def test_export_refuses_an_unknown_suffix_before_loading(tmp_path):
    result = invoke("data", "export", "llmrouter", "--out", str(tmp_path / "out.xlsx"))
    assert isinstance(result.exception, ModelsatError)
    assert "use .parquet, .csv or .jsonl" in str(result.exception)


def test_export_refuses_an_unknown_source(tmp_path):
    result = invoke("data", "export", "helm", "--out", str(tmp_path / "out.csv"))
    assert isinstance(result.exception, ModelsatError) and "known: mmlu, mmlu_pro" in str(result.exception)


@needs_data
def test_list_shows_each_source_and_the_reference_scores(small_data_dir):
    result = invoke("data", "list", "--data-dir", str(small_data_dir), "--scores")
    assert result.exit_code == 0, result.output
    assert "routellm" in result.output and "llmrouter" in result.output
    assert "80.58" in result.output and "68.08" in result.output     # RouteLLM MMLU, gpt-4 and Mixtral
    assert "88.55" in result.output                                  # LLMRouter arc_challenge, nemotron-51b
    assert "not in" in result.output and "mmlu_pro" in result.output  # absent sources are named


@needs_data
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_export_writes_a_records_file_that_validates(tmp_path, suffix):
    out = tmp_path / f"llmrouter{suffix}"
    result = invoke("data", "export", "llmrouter", "--out", str(out), "--path", str(data_dir() / "llmrouter"))
    assert result.exit_code == 0, result.output
    back = records.read(out)
    assert len(back) == 54972 and back["model"].nunique() == 9
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@needs_data
def test_export_reads_a_users_own_copy_of_a_source(tmp_path):
    copy = tmp_path / "my_routellm"
    (copy / "gsm8k").mkdir(parents=True)
    (copy / "gsm8k" / "gsm8k_responses.csv").write_bytes(
        (data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv").read_bytes())
    out = tmp_path / "gsm8k.jsonl"
    result = invoke("data", "export", "routellm", "--path", str(copy), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert set(records.read(out)["benchmark"]) == {"routellm/gsm8k"}


@needs_data
def test_export_of_mmlu_writes_the_question_table(tmp_path, small_data_dir):
    out = tmp_path / "mmlu.csv"
    result = invoke("data", "export", "mmlu", "--data-dir", str(small_data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    questions = pd.read_csv(out)
    assert len(questions) == 14042 + 285 and questions["answer"].isin(list("ABCD")).all()
