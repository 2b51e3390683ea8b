"""Zoo files: the built-in zoos as issue 11 lists them, and clear errors for bad files."""

import pytest

from modelsat.errors import ModelsatError
from modelsat.evaluate.zoos import adhoc_zoo, builtin_zoos, load_zoo, resolve_zoos


def test_the_papers_five_mmlu_pro_zoos_ship_with_their_models():
    zoos = builtin_zoos()
    small = ["Phi-3-mini-4k-instruct", "Meta-Llama-3_1-8B", "gemma-7b", "Mistral-7B-v0.1", "Qwen1.5-7B-Chat"]
    assert zoos["smaller-scale"].model_names == small
    assert zoos["smaller-mixed"].model_names == small + ["Llama-2-7b-hf", "Yi-6B", "Mistral-7B-Instruct-v0.1"]
    middle = small + ["Mixtral-8x7B-Instruct-v0.1", "c4ai-command-r-v01"]
    assert zoos["middle-mixed"].model_names == middle
    assert zoos["larger-mixed"].model_names == middle + ["Meta-Llama-3_1-70B-Instruct", "Qwen1.5-110B",
                                                         "Llama-2-70b-hf"]
    assert sorted(zoos["high-performance"].model_names) == sorted(
        ["Meta-Llama-3_1-70B-Instruct", "Qwen1.5-110B", "gemini-1.5-pro-002", "Meta-Llama-3_1-70B"])
    assert {zoos[z].family for z in ("smaller-scale", "larger-mixed", "high-performance")} == {"mmlu_pro"}


def test_other_families_ship_with_their_model_counts():
    zoos = builtin_zoos()
    assert len(zoos["routerdc-in-domain"].models) == 7
    assert zoos["routerdc-out-of-domain"].scenario == "out_of_domain"
    assert zoos["routerdc-out-of-domain"].selects_benchmark("routerdc/javascript")
    assert not zoos["routerdc-in-domain"].selects_benchmark("routerdc/javascript")
    assert len(zoos["routerbench"].models) == 11
    assert len(zoos["llmrouter"].models) == 9
    assert zoos["llmrouter"].selects_benchmark("llmrouter/gsm8k")
    assert zoos["routellm-pair"].strong == "gpt-4-1106-preview"


def test_a_zoo_file_with_a_typo_names_the_file_and_the_key(tmp_path):
    p = tmp_path / "z.yaml"
    p.write_text("name: z\nmodles: [a]\n")
    with pytest.raises(ModelsatError, match=r"z\.yaml: missing key 'models'"):
        load_zoo(p)
    p.write_text("name: z\nmodels: [a, b]\nstrong: c\n")
    with pytest.raises(ModelsatError, match="'strong' model 'c'"):
        load_zoo(p)


def test_serving_fields_are_read_and_keys_are_only_named(tmp_path):
    p = tmp_path / "z.yaml"
    p.write_text("name: z\nmodels:\n  - {name: a, url: 'http://x/v1', api_key_env: A_KEY, price_per_mtok: 0.5}\n"
                 "  - b\n")
    zoo = load_zoo(p)
    assert zoo.model_names == ["a", "b"]
    assert zoo.models[0].api_key_env == "A_KEY" and zoo.models[0].price_per_mtok == 0.5


def test_models_option_and_zoo_selection():
    assert adhoc_zoo(["x", "y"]).model_names == ["x", "y"]
    assert [z.name for z in resolve_zoos("smaller-scale,routerbench")] == ["smaller-scale", "routerbench"]
    with pytest.raises(ModelsatError, match="unknown zoo 'nope'"):
        resolve_zoos("nope")
