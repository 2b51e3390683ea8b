"""Loaders: score rules and naming on small files the tests write, and the reference figures of
../shared/data/README.md reproduced from the real data (skipped when the data folder is absent)."""

import gzip
import json
import shutil

import pandas as pd
import pytest

from conftest import needs_data
from modelsat import records, sources
from modelsat.errors import ModelsatError
from modelsat.paths import data_dir
from modelsat.sources import llmrouter, routerdc


def percent(df: pd.DataFrame, model: str, **where) -> float:
    """Mean score (%) of `model` over the rows matching `where`, rounded to two decimals as the README."""
    mask = df["model"] == model
    for column, value in where.items():
        mask &= df[column] == value
    assert mask.any(), f"no rows for {model} {where}"
    return round(100 * df.loc[mask, "score"].mean(), 2)


def write_json_gz(path, value):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(value, f)


# --- behaviour on small files written here -----------------------------------------------------------------

@pytest.mark.parametrize("stem, expected", [
    ("mmlu_test", ("mmlu", "test")), ("gsm8k-train", ("gsm8k", "train")), ("arc_challenge_test", ("arc_challenge", "test")),
    ("MATH_prealgebra", ("MATH_prealgebra", "test")), ("ceval", ("ceval", "test")), ("mbpp_train", ("mbpp", "train")),
])
def test_routerdc_file_names_give_dataset_and_split(stem, expected):
    assert routerdc.dataset_and_split(stem) == expected


def test_routerdc_probability_files_count_any_positive_score_as_correct(tmp_path):
    write_json_gz(tmp_path / "split2_model7__arc_easy_test.json.gz", [
        {"question": "Q1", "scores": {"m1": 0.31, "m2": 0}},
        {"question": "Q2", "scores": {"m1": 0, "m2": 0.99}}])
    df = routerdc.load(tmp_path)
    assert set(df["benchmark"]) == {"routerdc/arc_easy"} and set(df["split"]) == {"test"}
    assert df.set_index(["model", "item_id"])["score"].to_dict() == {
        ("m1", "test/0"): 1.0, ("m1", "test/1"): 0.0, ("m2", "test/0"): 0.0, ("m2", "test/1"): 1.0}


def test_routerdc_multi_attempt_files_keep_the_fraction_passed(tmp_path):
    write_json_gz(tmp_path / "split2_model7__humaneval_train.json.gz", [{"question": "def f():", "scores": {"m1": 0.3}}])
    df = routerdc.load(tmp_path)
    assert df["score"].tolist() == [0.3] and df["item_id"].tolist() == ["train/0"]


def test_routerdc_repeated_question_keeps_two_items(tmp_path):
    write_json_gz(tmp_path / "split2_model7__mbpp.json.gz", [
        {"question": "same", "scores": {"m1": 1.0}}, {"question": "same", "scores": {"m1": 0.0}}])
    df = records.validate(routerdc.load(tmp_path))
    assert df["item_id"].tolist() == ["test/0", "test/1"]


def test_routerdc_unknown_dataset_is_refused_with_the_file(tmp_path):
    write_json_gz(tmp_path / "split2_model7__squad_test.json.gz", [{"question": "Q", "scores": {"m1": 0.5}}])
    with pytest.raises(ModelsatError, match="split2_model7__squad_test.json.gz.*unknown RouterDC dataset 'squad'"):
        routerdc.load(tmp_path)


def test_routerbench_empty_scores_are_dropped_and_counted(tmp_path):
    pd.DataFrame({
        "": [10, 11], "sample_id": ["s.1", "s.1"], "prompt": ["['p1']", "['p2']"], "eval_name": ["x", "x"],
        "gpt-4": [1.0, None], "claude": [0.0, 1.0],
        "gpt-4|model_response": ["A", "B"], "claude|model_response": ["C", "D"],
        "gpt-4|total_cost": [0.01, 0.02], "claude|total_cost": [0.03, 0.04], "oracle_model_to_route_to": ["gpt-4"] * 2,
    }).to_csv(tmp_path / "routerbench_zs__winograde_test.csv.gz", index=False)
    df = routerdc.load(tmp_path)
    assert df.attrs["dropped"]["missing_score"] == 1
    assert set(df["benchmark"]) == {"routerbench/winogrande"}
    row = df[(df["model"] == "claude") & (df["item_id"] == "test/11")].iloc[0]
    assert (row["score"], row["cost"], row["response"]) == (1.0, 0.04, "D")


def test_llmrouter_cost_estimate_uses_four_characters_per_token_and_metric_output_length():
    assert llmrouter.input_tokens("x" * 401) == 101
    assert llmrouter.output_tokens("em_mc") < llmrouter.output_tokens("GSM8K")
    assert llmrouter.output_tokens("unknown metric") == llmrouter.DEFAULT_OUTPUT_TOKENS


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(ModelsatError, match="known: mmlu, mmlu_pro, routerdc, routellm, llmrouter"):
        sources.load("helm")


# --- reference figures from the real data (module-scoped: each source loaded once, without the cache) ------

@pytest.fixture(scope="module")
def mmlu_questions():
    return sources.load("mmlu", cache=False)


@pytest.fixture(scope="module")
def mmlu_pro():
    return sources.load("mmlu_pro", cache=False)


@pytest.fixture(scope="module")
def routerdc_records():
    return sources.load("routerdc", cache=False)


@pytest.fixture(scope="module")
def routellm_records():
    return sources.load("routellm", cache=False)


@pytest.fixture(scope="module")
def llmrouter_records():
    return sources.load("llmrouter", cache=False)


@needs_data
def test_mmlu_test_has_14042_questions_in_57_subjects(mmlu_questions):
    test = mmlu_questions[mmlu_questions["split"] == "test"]
    assert len(test) == 14042 and test["subject"].nunique() == 57
    assert (mmlu_questions["split"] == "dev").sum() == 285


@needs_data
def test_mmlu_pro_reference_figures(mmlu_pro):
    assert mmlu_pro["model"].nunique() == 23
    gemini = mmlu_pro[mmlu_pro["model"] == "gemini-1.5-pro-002"]
    assert len(gemini) == 12020 and percent(mmlu_pro, "gemini-1.5-pro-002") == 70.25
    assert percent(mmlu_pro, "Llama-2-7b-hf") == 18.34
    assert (mmlu_pro["model"] == "DeepSeek-Coder-V2").sum() == 10351


@needs_data
def test_routellm_mmlu_reference_figures(routellm_records):
    assert percent(routellm_records, "gpt-4-1106-preview", benchmark="routellm/mmlu") == 80.58
    assert percent(routellm_records, "mistralai/Mixtral-8x7B-Instruct-v0.1", benchmark="routellm/mmlu") == 68.08


@needs_data
def test_routellm_gsm8k_reference_figures(routellm_records):
    gsm8k = routellm_records[routellm_records["benchmark"] == "routellm/gsm8k"]
    assert gsm8k["item_id"].nunique() == 1319 and gsm8k["response"].notna().all()
    assert percent(gsm8k, "gpt-4-1106-preview") == 85.67
    assert percent(gsm8k, "mistralai/Mixtral-8x7B-Instruct-v0.1") == 63.84


@needs_data
def test_routellm_mmlu_items_are_the_official_mmlu_test_ids(routellm_records, mmlu_questions):
    routellm_ids = set(routellm_records.loc[routellm_records["benchmark"] == "routellm/mmlu", "item_id"])
    official = set(mmlu_questions.loc[mmlu_questions["split"] == "test", "item_id"])
    assert routellm_ids == official


@needs_data
def test_routellm_contaminated_prompts_are_marked(routellm_records):
    marked = routellm_records[routellm_records["contaminated"]].drop_duplicates(["benchmark", "item_id"])
    assert marked["benchmark"].value_counts().to_dict() == {"routellm/gsm8k": 12, "routellm/mmlu": 5}


@needs_data
def test_routerdc_mmlu_reference_figures(routerdc_records):
    test = routerdc_records[(routerdc_records["benchmark"] == "routerdc/mmlu") & (routerdc_records["split"] == "test")]
    assert test["item_id"].nunique() == 4213
    assert percent(test, "meta-llama/Meta-Llama-3-8B") == 64.59
    assert test.groupby("item_id")["model"].nunique().eq(7).all()


@needs_data
def test_routerdc_mmlu_subjects_are_recovered_for_every_item(routerdc_records):
    items = routerdc_records[routerdc_records["benchmark"] == "routerdc/mmlu"]
    assert items["subject"].notna().all() and items["subject"].nunique() == 57
    assert routerdc_records.attrs["unmatched_mmlu_items"] == 0


@needs_data
def test_routerdc_gsm8k_reference_figures(routerdc_records):
    gsm8k = routerdc_records[routerdc_records["benchmark"] == "routerdc/gsm8k"]
    assert percent(gsm8k, "cognitivecomputations/dolphin-2.9-llama3-8b", split="test") == 69.81
    assert percent(gsm8k, "meta-math/MetaMath-Mistral-7B", split="test") == 69.63
    assert percent(gsm8k, "meta-math/MetaMath-Mistral-7B", split="train") == 82.41


@needs_data
def test_routerdc_out_of_domain_sets_are_test_only(routerdc_records):
    for name, items in {"routerdc/ceval": 1346, "routerdc/MATH_prealgebra": 871, "routerdc/mbpp": 500,
                        "routerdc/javascript": 164}.items():
        subset = routerdc_records[routerdc_records["benchmark"] == name]
        assert set(subset["split"]) == {"test"} and subset["item_id"].nunique() == items, name
    assert percent(routerdc_records, "meta-llama/Meta-Llama-3-8B", benchmark="routerdc/ceval") == 52.01


@needs_data
def test_routerbench_reference_figures(routerdc_records):
    arc = routerdc_records[(routerdc_records["benchmark"] == "routerbench/arc_challenge")]
    assert percent(arc, "gpt-4-1106-preview", split="test") == 95.67
    assert percent(arc, "claude-v2", split="train") == 57.03
    assert percent(routerdc_records, "gpt-4-1106-preview", benchmark="routerbench/winogrande", split="test") == 85.53
    assert routerdc_records.attrs["dropped"]["missing_score"] == 154
    assert arc["cost"].gt(0).all() and arc["response"].notna().all()


@needs_data
def test_llmrouter_reference_figures(llmrouter_records):
    train = llmrouter_records[llmrouter_records["split"] == "train"]
    test = llmrouter_records[llmrouter_records["split"] == "test"]
    assert train["item_id"].nunique() == 5608 and train["category"].nunique() == 14
    assert test["item_id"].nunique() == 500 and test["category"].nunique() == 10
    assert percent(train, "llama-3.1-nemotron-51b-instruct") == 62.13
    assert percent(test, "llama-3.1-nemotron-51b-instruct") == 56.26
    assert percent(train, "gemma-2-9b-it", benchmark="llmrouter/mmlu") == 82.40
    per_task = train.drop_duplicates("item_id")["category"].value_counts()
    assert (per_task["gpqa"], per_task["openbook_qa"], per_task["arc_challenge"]) == (448, 496, 498)


@needs_data
def test_llmrouter_costs_are_marked_estimates(llmrouter_records):
    assert llmrouter_records["cost"].gt(0).all() and llmrouter_records["cost_is_estimate"].all()


@needs_data
@pytest.mark.parametrize("fixture", ["routerdc_records", "routellm_records", "llmrouter_records"])
def test_loader_output_meets_the_records_contract(request, fixture):
    records.validate(request.getfixturevalue(fixture), source=fixture)


@needs_data
def test_benchmarks_of_different_sources_never_collide(mmlu_pro, routerdc_records, routellm_records,
                                                       llmrouter_records):
    keys = pd.concat([df[records.KEY] for df in (mmlu_pro, routerdc_records, routellm_records, llmrouter_records)])
    assert not keys.duplicated().any()
    prefixes = set(keys["benchmark"].str.split("/").str[0])
    assert prefixes == {"mmlu_pro", "routerdc", "routerbench", "routellm", "llmrouter"}


@needs_data
def test_cache_returns_the_same_records_and_is_rebuilt_when_a_file_changes(tmp_path, monkeypatch,
                                                                           llmrouter_records):
    monkeypatch.setenv("MODELSAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELSAT_NO_CACHE", raising=False)
    copy = tmp_path / "data" / "llmrouter"
    shutil.copytree(data_dir() / "llmrouter", copy)
    first = sources.load("llmrouter", path=copy)
    cached = sources.load("llmrouter", path=copy)
    pd.testing.assert_frame_equal(records.normalize(cached), records.normalize(llmrouter_records), check_dtype=False)
    assert len(list((tmp_path / "cache" / "sources").glob("llmrouter-*.parquet"))) == 1
    (copy / "llm_candidates__default_llm.json").write_text(json.dumps(
        {m: {"input_price": 1000.0, "output_price": 1000.0} for m in first["model"].unique()}))
    repriced = sources.load("llmrouter", path=copy)
    assert repriced["cost"].mean() > 100 * first["cost"].mean()
