"""RouterDC's data (shuhao02/RouterDC `datasets/`): the 7-model split2_model7 files and RouterBench zero-shot.

Benchmarks are named `<dataset family>/<dataset>`, so they never collide with another source's:

- `split2_model7__<name>.json.gz` -> benchmark `routerdc/<dataset>` (e.g. `mmlu_test` -> `routerdc/mmlu`, split
  `test`; `gsm8k-test` -> `routerdc/gsm8k`, split `test`). RouterDC's out-of-distribution sets have no split in
  their name (`MATH_prealgebra`, `mbpp`, `ceval`, `javascript`) and get split `test`.
  item_id = `<split>/<index of the question in the file>`: each file holds one row per question with all seven
  scores, so the id joins the seven models; a few files repeat a question text, so the text cannot be the id.
  Score rule, as RouterDC's own `evaluation()`: "probability" files (mmlu, cmmlu, ceval, arc_challenge,
  arc_easy, MATH_prealgebra) -> 1.0 iff score > 0 else 0.0; "multi-attempt" files (gsm8k, humaneval, mbpp,
  javascript) -> the fraction of passing attempts, as is.
  For `routerdc/mmlu` the MMLU subject is recovered by matching the question text (question + `A. ...` options,
  whitespace-normalised) against the official MMLU test questions of the sibling `mmlu/` folder; the official
  id lands in the extra column `mmlu_item_id`. MMLU repeats a few questions under two subjects; such items take
  the first subject in alphabetical order and are counted in `df.attrs["ambiguous_mmlu_subject"]`.
- `routerbench_zs__<name>_<split>.csv.gz` -> benchmark `routerbench/<name>` (`winograde` files, as upstream
  spells them, -> `routerbench/winogrande`). item_id = `<split>/<RouterBench row index>` (the file's unnamed
  first column; `sample_id` repeats within a file). Scores 0/1, responses from `<model>|model_response`, real
  USD costs from `<model>|total_cost`. A (model, item) whose score is empty is dropped; the number dropped is
  logged and kept in `df.attrs["dropped"]`.

`source` holds the file name the record came from.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.sources import mmlu
from modelsat.sources._common import read_json

log = logging.getLogger(__name__)

SPLIT2_PATTERN = "split2_model7__*.json.gz"
ROUTERBENCH_PATTERN = "routerbench_zs__*.csv.gz"
PROBABILITY_DATASETS = {"mmlu", "cmmlu", "ceval", "arc_challenge", "arc_easy", "MATH_prealgebra"}
MULTI_ATTEMPT_DATASETS = {"gsm8k", "humaneval", "mbpp", "javascript"}
ROUTERBENCH_NAMES = {"winograde": "winogrande"}
_SPLIT_SUFFIX = re.compile(r"^(?P<dataset>.+?)[_-](?P<split>train|test)$")
_ROUTERBENCH_META = {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}


def dataset_and_split(stem: str) -> tuple[str, str]:
    """(dataset, split) from a file stem such as `mmlu_test`, `gsm8k-train` or `ceval` (split `test`)."""
    m = _SPLIT_SUFFIX.match(stem)
    return (m["dataset"], m["split"]) if m else (stem, "test")


def _file_stem(path: Path, prefix: str, suffix: str) -> str:
    return path.name[len(prefix): -len(suffix)]


def _normalise_text(text: str) -> str:
    return " ".join(str(text).split())


def mmlu_prompt_index(mmlu_folder: Path) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """(whitespace-normalised official MMLU test prompt -> (subject, official item_id), prompts that occur
    under more than one subject); for those the first subject in alphabetical order wins."""
    q = mmlu.questions(mmlu_folder, splits=("test",)).sort_values(["subject", "item_id"], kind="stable")
    norm = q["prompt"].map(_normalise_text)
    index: dict[str, tuple[str, str]] = {}
    subjects: dict[str, set[str]] = {}
    for prompt, subject, item in zip(norm, q["subject"], q["item_id"]):
        index.setdefault(prompt, (subject, item))
        subjects.setdefault(prompt, set()).add(subject)
    return index, {p for p, s in subjects.items() if len(s) > 1}


def _score_rule(dataset: str, path: Path):
    if dataset in PROBABILITY_DATASETS:
        return lambda values: (values > 0).astype("float64")
    if dataset in MULTI_ATTEMPT_DATASETS:
        return lambda values: values.astype("float64")
    raise ModelsatError(f"{path}: unknown RouterDC dataset {dataset!r}; known probability datasets "
                        f"{sorted(PROBABILITY_DATASETS)}, multi-attempt datasets {sorted(MULTI_ATTEMPT_DATASETS)}")


def read_split2_file(path: Path) -> pd.DataFrame:
    """Records of one split2_model7 file (all seven models), scores after RouterDC's rule."""
    dataset, split = dataset_and_split(_file_stem(path, "split2_model7__", ".json.gz"))
    rule = _score_rule(dataset, path)
    try:
        entries = read_json(path)
    except (OSError, ValueError, EOFError) as exc:
        raise ModelsatError(f"{path}: cannot read RouterDC JSON ({exc})") from exc
    questions = [str(e["question"]) for e in entries]
    scores = pd.DataFrame([e["scores"] for e in entries])
    if scores.isna().any().any():
        row, col = np.argwhere(scores.isna().to_numpy())[0]
        raise ModelsatError(f"{path}: entry {row}, model {scores.columns[col]!r}: score missing")
    wide = rule(scores)
    wide["item_id"] = [f"{split}/{i}" for i in range(len(entries))]
    wide["prompt"] = questions
    long = wide.melt(id_vars=["item_id", "prompt"], var_name="model", value_name="score")
    long["benchmark"] = f"routerdc/{dataset}"
    long["split"] = split
    long["subject"] = None
    long["cost"] = np.nan
    long["response"] = None
    long["source"] = path.name
    return long


def _attach_mmlu_subjects(df: pd.DataFrame, mmlu_folder: Path) -> pd.DataFrame:
    is_mmlu = df["benchmark"] == "routerdc/mmlu"
    if not is_mmlu.any():
        return df
    if not (mmlu_folder / "test").is_dir():
        log.warning("no MMLU questions at %s: routerdc/mmlu items keep subject None", mmlu_folder)
        df.attrs["mmlu_subjects"] = f"unavailable (no {mmlu_folder / 'test'})"
        return df
    index, ambiguous_prompts = mmlu_prompt_index(mmlu_folder)
    norm = df.loc[is_mmlu, "prompt"].map(_normalise_text)
    matched = norm.map(index)
    df["mmlu_item_id"] = None
    df.loc[is_mmlu, "subject"] = matched.map(lambda m: m[0] if isinstance(m, tuple) else None)
    df.loc[is_mmlu, "mmlu_item_id"] = matched.map(lambda m: m[1] if isinstance(m, tuple) else None)
    unmatched = int(matched.isna().sum() // max(df.loc[is_mmlu, "model"].nunique(), 1))
    ambiguous = set(norm[norm.isin(ambiguous_prompts)])
    df.attrs["unmatched_mmlu_items"] = unmatched
    df.attrs["ambiguous_mmlu_subject"] = len(ambiguous)
    if unmatched:
        log.warning("%d routerdc/mmlu items match no official MMLU test question; subject None", unmatched)
    return df


def routerbench_model_columns(columns) -> list[str]:
    """The per-model score columns of a RouterBench CSV (everything that is neither metadata nor `a|b`)."""
    return [c for c in columns
            if "|" not in c and c not in _ROUTERBENCH_META and not str(c).startswith("Unnamed")]


def read_routerbench_file(path: Path) -> tuple[pd.DataFrame, int]:
    """(records of one RouterBench CSV, number of (model, item) pairs dropped for an empty score)."""
    name, split = dataset_and_split(_file_stem(path, "routerbench_zs__", ".csv.gz"))
    try:
        raw = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for a damaged CSV; name the file instead
        raise ModelsatError(f"{path}: cannot read RouterBench CSV ({type(exc).__name__}: {exc})") from exc
    row_column = raw.columns[0]
    models = routerbench_model_columns(raw.columns)
    if not models:
        raise ModelsatError(f"{path}: no model score columns (expected columns such as 'gpt-4-1106-preview')")
    item_ids = [f"{split}/{r}" for r in raw[row_column]]
    frames = []
    for model in models:
        frames.append(pd.DataFrame({
            "model": model, "item_id": item_ids, "prompt": raw["prompt"].astype(str),
            "score": raw[model].astype("float64"),
            "cost": raw.get(f"{model}|total_cost", pd.Series(np.nan, index=raw.index)).astype("float64"),
            "response": raw.get(f"{model}|model_response", pd.Series(None, index=raw.index, dtype=object)),
        }))
    long = pd.concat(frames, ignore_index=True)
    missing = long["score"].isna()
    long = long[~missing].reset_index(drop=True)
    long["benchmark"] = f"routerbench/{ROUTERBENCH_NAMES.get(name, name)}"
    long["split"] = split
    long["subject"] = None
    long["source"] = path.name
    return long, int(missing.sum())


def load(path: str | Path, mmlu_folder: str | Path | None = None) -> pd.DataFrame:
    """Records of every split2_model7 and routerbench_zs file in `path` (MMLU questions from `mmlu_folder`,
    by default the `mmlu/` folder beside `path`)."""
    folder = Path(path)
    split2 = sorted(folder.glob(SPLIT2_PATTERN))
    routerbench = sorted(folder.glob(ROUTERBENCH_PATTERN))
    if not split2 and not routerbench:
        raise ModelsatError(f"{folder}: no RouterDC files (expected {SPLIT2_PATTERN} or {ROUTERBENCH_PATTERN})")
    frames = [read_split2_file(f) for f in split2]
    dropped = {}
    for f in routerbench:
        records, n_dropped = read_routerbench_file(f)
        frames.append(records)
        if n_dropped:
            dropped[f.name] = n_dropped
            log.info("%s: dropped %d (model, item) pairs with an empty score", f.name, n_dropped)
    df = pd.concat(frames, ignore_index=True)
    df = _attach_mmlu_subjects(df, Path(mmlu_folder) if mmlu_folder else folder.parent / "mmlu")
    df.attrs["dropped"] = {"missing_score": sum(dropped.values()), "by_file": dropped}
    return df
