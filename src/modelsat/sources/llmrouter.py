"""LLMRouter's per-item scores (ulab-uiuc/LLMRouter `data/`): 9 candidates over 14 tasks, with estimated costs.

- Scores: `dcrouter_preprocessed__{train,test}.json.gz`, a list of `{"question", "scores": {model: float}}`; the
  score is the task's metric in [0, 1] (exact match, F1, pass@1, coverage), used as is.
- Task: joined from `query_data__default_query_{train,test}.jsonl.gz` on `query == question`. Six train
  questions appear under two tasks there; the first line in file order wins (as LLMRouter's figures count).
- benchmark `llmrouter/<task_name>` (e.g. `llmrouter/mmlu`), item_id `<split>/<index in the scores file>`,
  `category` the task name, `answer` the ground truth, `choices` the option texts where the task has them,
  `subject` None (LLMRouter gives no MMLU subject).
- Cost, marked `cost_is_estimate=True`: the source has no responses and no token counts, so
  input tokens = ceil(len(question) / 4) (about 4 characters per token) and output tokens = a typical answer
  length for the task's metric (`OUTPUT_TOKENS_BY_METRIC`: a letter for multiple choice, a short phrase for QA,
  a chain of thought for math, a function for code); USD = (input x input_price + output x output_price) / 1e6
  with the per-million-token prices of `llm_candidates__default_llm.json`. A model without a price gets cost None.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.policies import prompt_tokens
from modelsat.sources._common import read_json, read_jsonl

SPLITS = ("train", "test")
OUTPUT_TOKENS_BY_METRIC = {
    "em_mc": 8,                 # a letter, perhaps with its option text
    "f1_score": 16,             # a short answer phrase (natural_qa, trivia_qa)
    "GSM8K": 256,               # a chain of thought ending in a number
    "MATH": 384,                # a longer derivation
    "code_eval": 256,           # a function body
    "commongen_coverage": 48,   # one or two sentences
}
DEFAULT_OUTPUT_TOKENS = 64


def input_tokens(text: str) -> int:
    """The estimated number of input tokens of `text` (about 4 characters per token: `policies.prompt_tokens`)."""
    return prompt_tokens(text)


def output_tokens(metric: str | None) -> int:
    """The estimated number of output tokens for an item scored by `metric`."""
    return OUTPUT_TOKENS_BY_METRIC.get(metric or "", DEFAULT_OUTPUT_TOKENS)


def prices(path: Path) -> dict[str, tuple[float, float]]:
    """model -> (input, output) USD per million tokens, from llm_candidates__default_llm.json."""
    if not path.exists():
        return {}
    candidates = read_json(path)
    return {name: (float(c["input_price"]), float(c["output_price"]))
            for name, c in candidates.items() if "input_price" in c and "output_price" in c}


def _choice_texts(value) -> str | None:
    """The option texts of a query's `choices` field (a Python-literal dict) as a JSON list, or None."""
    if not value:
        return None
    try:
        parsed = ast.literal_eval(value) if isinstance(value, str) else value
    except (ValueError, SyntaxError):
        return None
    texts = parsed.get("text") if isinstance(parsed, dict) else None
    return json.dumps([str(t) for t in texts], ensure_ascii=False) if texts else None


def query_metadata(path: Path) -> dict[str, dict]:
    """query text -> its first query_data line (task_name, metric, ground_truth, choices)."""
    first: dict[str, dict] = {}
    for line in read_jsonl(path):
        first.setdefault(line["query"], line)
    return first


def load_split(folder: Path, split: str, model_prices: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Records of one split: scores joined to task names, with estimated costs."""
    scores_path = folder / f"dcrouter_preprocessed__{split}.json.gz"
    queries_path = folder / f"query_data__default_query_{split}.jsonl.gz"
    if not scores_path.exists():
        return pd.DataFrame()
    if not queries_path.exists():
        raise ModelsatError(f"{queries_path}: missing; it names the task of each question in {scores_path.name}")
    entries = read_json(scores_path)
    meta = query_metadata(queries_path)
    unjoined = [i for i, e in enumerate(entries) if e["question"] not in meta]
    if unjoined:
        raise ModelsatError(f"{scores_path}: entry {unjoined[0]} (and {len(unjoined) - 1} more) has a question "
                            f"found in no 'query' of {queries_path.name}")
    items = pd.DataFrame({
        "item_id": [f"{split}/{i}" for i in range(len(entries))],
        "prompt": [e["question"] for e in entries],
        "category": [meta[e["question"]]["task_name"] for e in entries],
        "metric": [meta[e["question"]].get("metric") for e in entries],
        "answer": [meta[e["question"]].get("ground_truth") for e in entries],
        "choices": [_choice_texts(meta[e["question"]].get("choices")) for e in entries],
    })
    scores = pd.DataFrame([e["scores"] for e in entries])
    wide = pd.concat([items, scores], axis=1)
    long = wide.melt(id_vars=list(items.columns), var_name="model", value_name="score")
    long = long[long["score"].notna()].reset_index(drop=True)
    n_in = long["prompt"].map(input_tokens)
    n_out = long["metric"].map(output_tokens)
    price_in = long["model"].map(lambda m: model_prices.get(m, (np.nan, np.nan))[0])
    price_out = long["model"].map(lambda m: model_prices.get(m, (np.nan, np.nan))[1])
    long["cost"] = (n_in * price_in + n_out * price_out) / 1e6
    long["cost_is_estimate"] = long["cost"].notna()
    long["benchmark"] = "llmrouter/" + long["category"]
    long["split"] = split
    long["subject"] = None
    long["response"] = None
    long["source"] = scores_path.name
    return long.drop(columns=["metric"])


def load(path: str | Path) -> pd.DataFrame:
    """Records of LLMRouter's train and test scores in `path`, tasks joined, costs estimated."""
    folder = Path(path)
    model_prices = prices(folder / "llm_candidates__default_llm.json")
    frames = [f for f in (load_split(folder, s, model_prices) for s in SPLITS) if len(f)]
    if not frames:
        raise ModelsatError(f"{folder}: no LLMRouter files (expected dcrouter_preprocessed__{{train,test}}.json.gz "
                            "and query_data__default_query_{train,test}.jsonl.gz)")
    df = pd.concat(frames, ignore_index=True)
    unpriced = sorted(set(df["model"]) - set(model_prices))
    df.attrs["unpriced_models"] = unpriced
    return df
