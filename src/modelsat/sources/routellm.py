"""RouteLLM's per-item eval results (lm-sys/RouteLLM `routellm/evals`): MMLU and GSM8K, two models.

- `mmlu/mmlu_<subject>.csv` -> benchmark `routellm/mmlu`. Columns `prompt` (question, `A. ...` options,
  `Answer:`) and one True/False column per model. The rows are the official MMLU test questions in the official
  order, so item_id is the official MMLU id `<subject>/test/<index>` (`modelsat.sources.mmlu.item_id`): a
  routellm/mmlu record joins a `mmlu` question on item_id. The order is checked against the official questions
  when the sibling `mmlu/` folder is present (a mismatch is an error naming file and row).
- `gsm8k/gsm8k_responses.csv` -> benchmark `routellm/gsm8k`, item_id `test/<row>` (the GSM8K test order);
  responses from `<model>_response`.
- `*/contaminated_prompts.jsonl`: eval prompts RouteLLM found (near-)duplicated in its router-training data.
  The column `contaminated` (bool) marks those items, matched on the whitespace-normalised prompt text, so an
  evaluation can exclude them as RouteLLM does.

Score 1.0 for `True`, 0.0 for `False`. `subject` is the MMLU subject (None for GSM8K); `source` the file name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.sources import mmlu

_ANSWER_CUE = re.compile(r"\s*Answer:\s*$")
_BOOL = {"True": 1.0, "False": 0.0}


def _normalise_text(text: str) -> str:
    return " ".join(str(text).split())


def contaminated_prompts(path: Path) -> set[str]:
    """Whitespace-normalised `eval_prompt`s of a contaminated_prompts.jsonl (empty when the file is absent)."""
    if not path.exists():
        return set()
    prompts = set()
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                prompts.add(_normalise_text(json.loads(line)["eval_prompt"]))
            except (ValueError, KeyError) as exc:
                raise ModelsatError(f"{path}: line {line_number}: expected JSON with 'eval_prompt' ({exc})") from exc
    return prompts


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for a damaged CSV; name the file instead
        raise ModelsatError(f"{path}: cannot read RouteLLM CSV ({type(exc).__name__}: {exc})") from exc


def _scores(raw: pd.DataFrame, model: str, path: Path) -> pd.Series:
    scores = raw[model].map(_BOOL)
    if scores.isna().any():
        row = int(np.flatnonzero(scores.isna().to_numpy())[0])
        raise ModelsatError(f"{path}: row {row + 1}, field {model!r}: expected True or False, "
                            f"found {raw[model].iloc[row]!r}")
    return scores


def _long(raw: pd.DataFrame, models: list[str], item_ids: list[str], path: Path) -> pd.DataFrame:
    frames = []
    for model in models:
        response_column = f"{model}_response"
        frames.append(pd.DataFrame({
            "model": model, "item_id": item_ids, "prompt": raw["prompt"], "score": _scores(raw, model, path),
            "response": raw[response_column] if response_column in raw.columns else None}))
    return pd.concat(frames, ignore_index=True)


def _check_official_order(raw: pd.DataFrame, subject: str, official: pd.DataFrame, path: Path) -> None:
    """Raises unless each row's prompt starts with the official MMLU test question of the same index."""
    questions = official.loc[official["subject"] == subject, "question"].tolist()
    if len(questions) != len(raw):
        raise ModelsatError(f"{path}: {len(raw)} rows, but official MMLU test has {len(questions)} "
                            f"questions for subject {subject!r}; item ids would not join")
    for row, (prompt, question) in enumerate(zip(raw["prompt"], questions)):
        if not _normalise_text(prompt).startswith(_normalise_text(question)):
            raise ModelsatError(f"{path}: row {row + 1}, field 'prompt': does not match official MMLU question "
                                f"{mmlu.item_id(subject, 'test', row)} ({question[:60]!r}...)")


def load_mmlu(folder: Path, mmlu_folder: Path | None) -> pd.DataFrame:
    """Records of RouteLLM's mmlu/mmlu_<subject>.csv files, item ids the official MMLU ids."""
    files = sorted(folder.glob("mmlu_*.csv"))
    if not files:
        return pd.DataFrame()
    official = mmlu.questions(mmlu_folder, splits=("test",)) if mmlu_folder and (mmlu_folder / "test").is_dir() \
        else None
    contaminated = contaminated_prompts(folder / "contaminated_prompts.jsonl")
    frames = []
    for path in files:
        subject = path.stem[len("mmlu_"):]
        raw = _read_csv(path)
        if official is not None:
            _check_official_order(raw, subject, official, path)
        models = [c for c in raw.columns if c != "prompt"]
        records = _long(raw, models, [mmlu.item_id(subject, "test", i) for i in range(len(raw))], path)
        records["subject"] = subject
        records["source"] = f"mmlu/{path.name}"
        frames.append(records)
    df = pd.concat(frames, ignore_index=True)
    df["benchmark"] = "routellm/mmlu"
    df["contaminated"] = df["prompt"].map(_normalise_text).isin(contaminated)
    return df


def load_gsm8k(folder: Path) -> pd.DataFrame:
    """Records of RouteLLM's gsm8k/gsm8k_responses.csv, with responses."""
    path = folder / "gsm8k_responses.csv"
    if not path.exists():
        return pd.DataFrame()
    raw = _read_csv(path)
    models = [c for c in raw.columns if c != "prompt" and not c.endswith("_response")]
    df = _long(raw, models, [f"test/{i}" for i in range(len(raw))], path)
    df["benchmark"] = "routellm/gsm8k"
    df["subject"] = None
    df["source"] = f"gsm8k/{path.name}"
    contaminated = contaminated_prompts(folder / "contaminated_prompts.jsonl")
    df["contaminated"] = df["prompt"].map(_normalise_text).isin(contaminated)
    return df


def load(path: str | Path, mmlu_folder: str | Path | None = None) -> pd.DataFrame:
    """Records of RouteLLM's MMLU and GSM8K results in `path` (official MMLU questions, for the order check,
    from `mmlu_folder`, by default the `mmlu/` folder beside `path`)."""
    folder = Path(path)
    mmlu_folder = Path(mmlu_folder) if mmlu_folder else folder.parent / "mmlu"
    frames = [f for f in (load_mmlu(folder / "mmlu", mmlu_folder), load_gsm8k(folder / "gsm8k")) if len(f)]
    if not frames:
        raise ModelsatError(f"{folder}: no RouteLLM files (expected mmlu/mmlu_<subject>.csv or "
                            "gsm8k/gsm8k_responses.csv)")
    df = pd.concat(frames, ignore_index=True)
    df["split"] = "test"
    df["cost"] = np.nan
    df.attrs["contaminated_items"] = int(df.loc[df["contaminated"], ["benchmark", "item_id"]]
                                         .drop_duplicates().shape[0])
    return df
