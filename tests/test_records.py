"""The records contract: every validation error names file, row and field; formats round-trip; writes are atomic."""

import json
from pathlib import Path

import pandas as pd
import pytest

from modelsat import records
from modelsat.records import RecordsError


def small_records() -> pd.DataFrame:
    """Three valid records of two models, with every optional column the contract names."""
    return pd.DataFrame({
        "model": ["alpha", "beta", "alpha"],
        "benchmark": ["mmlu", "mmlu", "gsm8k"],
        "item_id": ["anatomy/test/0", "anatomy/test/0", "test/7"],
        "prompt": ["What is the largest organ?\nA. skin\nB. liver", "What is the largest organ?\nA. skin\nB. liver",
                   "Tom has 3 apples, gives 1 away. How many are left?"],
        "subject": ["anatomy", "anatomy", None],
        "score": [1.0, 0.0, 0.6],
        "cost": [0.0012, None, 0.5],
        "response": ["A", None, "2, «deux», 二"],
        "split": ["test", "test", "test"],
        "category": ["biology", "biology", None],
        "choices": [["skin", "liver"], ["skin", "liver"], None],
        "answer": ["A", "A", "2"],
        "source": ["unit-test", "unit-test", "unit-test"],
        "cost_is_estimate": [False, False, True],
    })


def write_csv(tmp_path: Path, df: pd.DataFrame, name: str = "records.csv") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


# --- validation errors name the file, the row and the field -------------------------------------------------

def test_missing_column_is_named_with_the_file(tmp_path):
    path = write_csv(tmp_path, small_records().drop(columns=["score"]))
    with pytest.raises(RecordsError) as err:
        records.read(path)
    assert str(path) in str(err.value) and "missing column(s) score" in str(err.value)


def test_score_that_is_not_a_number_names_row_and_field(tmp_path):
    df = small_records()
    df["score"] = df["score"].astype(object)
    df.loc[1, "score"] = "high"
    path = write_csv(tmp_path, df)
    with pytest.raises(RecordsError) as err:
        records.read(path)
    message = str(err.value)
    assert str(path) in message and "row 2" in message and "field 'score'" in message and "'high'" in message


def test_boolean_score_is_refused(tmp_path):
    df = small_records().assign(score=[True, False, True])
    path = tmp_path / "records.jsonl"
    df.to_json(path, orient="records", lines=True)
    with pytest.raises(RecordsError, match=r"row 1, field 'score': expected a number"):
        records.read(path)


def test_missing_text_field_names_row_and_field(tmp_path):
    df = small_records()
    df.loc[2, "prompt"] = None
    path = tmp_path / "records.jsonl"
    df.to_json(path, orient="records", lines=True)
    with pytest.raises(RecordsError) as err:
        records.read(path)
    message = str(err.value)
    assert str(path) in message and "row 3" in message and "field 'prompt'" in message


def test_cost_that_is_not_a_number_names_row_and_field(tmp_path):
    df = small_records()
    df["cost"] = df["cost"].astype(object)
    df.loc[0, "cost"] = "cheap"
    path = write_csv(tmp_path, df)
    with pytest.raises(RecordsError, match=r"row 1, field 'cost'"):
        records.read(path)


@pytest.mark.parametrize("bad_score", [1.5, -0.1])
def test_score_outside_unit_interval_names_row_and_field(tmp_path, bad_score):
    df = small_records()
    df.loc[2, "score"] = bad_score
    path = tmp_path / "records.parquet"
    df.assign(choices=df["choices"].map(json.dumps)).to_parquet(path)
    with pytest.raises(RecordsError) as err:
        records.read(path)
    message = str(err.value)
    assert str(path) in message and "row 3" in message and "field 'score'" in message and "outside [0, 1]" in message


def test_duplicate_key_names_both_rows_and_the_key(tmp_path):
    df = pd.concat([small_records(), small_records().iloc[[2]]], ignore_index=True)
    path = write_csv(tmp_path, df)
    with pytest.raises(RecordsError) as err:
        records.read(path)
    message = str(err.value)
    assert str(path) in message and "row 4 duplicates row 3" in message
    assert "item_id='test/7'" in message and "must be unique" in message


def test_zero_byte_file_is_reported_empty(tmp_path):
    path = tmp_path / "records.parquet"
    path.write_bytes(b"")
    with pytest.raises(RecordsError, match="is empty") as err:
        records.read(path)
    assert str(path) in str(err.value)


def test_file_with_header_only_holds_no_records(tmp_path):
    path = write_csv(tmp_path, small_records().iloc[0:0])
    with pytest.raises(RecordsError, match="holds no records") as err:
        records.read(path)
    assert str(path) in str(err.value)


def test_parquet_cut_in_half_is_reported_unreadable(tmp_path):
    path = tmp_path / "records.parquet"
    records.write(small_records(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordsError) as err:
        records.read(path)
    message = str(err.value)
    assert str(path) in message and "cannot read as parquet" in message and "truncated" in message


def test_jsonl_cut_mid_line_is_reported_unreadable(tmp_path):
    path = tmp_path / "records.jsonl"
    records.write(small_records(), path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) - 40], encoding="utf-8")
    with pytest.raises(RecordsError, match="cannot read as jsonl") as err:
        records.read(path)
    assert str(path) in str(err.value)


def test_unknown_suffix_says_which_formats_work(tmp_path):
    with pytest.raises(RecordsError, match=r"use \.parquet, \.csv or \.jsonl"):
        records.read(tmp_path / "records.xlsx")


def test_absent_file_is_named(tmp_path):
    with pytest.raises(RecordsError, match="no such file"):
        records.read(tmp_path / "absent.csv")


# --- round trip --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["records.parquet", "records.csv", "records.jsonl", "records.csv.gz",
                                  "records.jsonl.gz"])
def test_every_format_round_trips(tmp_path, name):
    expected = records.validate(small_records())
    written = records.write(small_records(), tmp_path / name)
    back = records.read(written)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert json.loads(back.loc[0, "choices"]) == ["skin", "liver"]
    assert back["cost_is_estimate"].tolist() == [False, False, True]


# --- atomic writes -----------------------------------------------------------------------------------------

def test_successful_write_leaves_no_temporary_file(tmp_path):
    records.write(small_records(), tmp_path / "records.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["records.parquet"]


def test_invalid_table_keeps_the_old_file(tmp_path):
    path = tmp_path / "records.csv"
    records.write(small_records(), path)
    before = path.read_bytes()
    broken = small_records()
    broken.loc[0, "score"] = 7.0
    with pytest.raises(RecordsError):
        records.write(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["records.csv"]


def test_failure_while_writing_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "records.parquet"
    records.write(small_records(), path)
    before = path.read_bytes()
    unwritable = small_records().assign(extra=[1, "two", {"three": 3}])   # pyarrow cannot store mixed types
    with pytest.raises(Exception):
        records.write(unwritable, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["records.parquet"]


def test_question_table_is_written_without_score_checks(tmp_path):
    questions = small_records().assign(model=None, score=float("nan"))
    path = records.write_table(questions, tmp_path / "questions.jsonl")
    assert len(pd.read_json(path, lines=True)) == 3
