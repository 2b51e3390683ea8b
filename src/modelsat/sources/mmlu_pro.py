"""MMLU-Pro per-item outputs (TIGER-AI-Lab/MMLU-Pro eval_results), read from the zips as released.

Score 1 if `pred == answer` else 0 (missing pred = 0). `subject` is the MMLU subject for ori_mmlu-* items,
else the category; `category` is kept for all. Non-dict entries (stray strings in some files) are skipped.
"""

from __future__ import annotations

import json
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.sources._common import multiple_choice_prompt

BENCHMARK = "mmlu_pro"
_NAME = re.compile(r"model_outputs_(.+)_5shots\.zip$")


def model_name(zip_path: Path) -> str:
    m = _NAME.search(zip_path.name)
    return m.group(1) if m else zip_path.stem


def _options(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:   # some files store options as the repr of a list
        import ast
        return [str(v) for v in ast.literal_eval(value)]
    except (ValueError, SyntaxError):
        return [str(value)]


def _read_zip(zip_path: Path) -> pd.DataFrame:
    model = model_name(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = [n for n in z.namelist() if n.endswith(".json")]
            if not names:
                raise ModelsatError(f"{zip_path}: no JSON file inside")
            entries = json.loads(z.read(names[0]))
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as exc:
        raise ModelsatError(f"{zip_path}: cannot read MMLU-Pro outputs ({exc})") from exc
    rows = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        src = str(e.get("src", ""))
        category = e.get("category")
        subject = src[len("ori_mmlu-"):] if src.startswith("ori_mmlu-") else category
        options = _options(e.get("options", []))
        pred = e.get("pred")
        answer = e.get("answer")
        response = e.get("generated_text", e.get("model_outputs"))
        rows.append({"model": model, "benchmark": BENCHMARK, "item_id": str(e["question_id"]),
                     "prompt": multiple_choice_prompt(str(e.get("question", "")), options),
                     "subject": subject, "score": 1.0 if pred is not None and pred == answer else 0.0,
                     "cost": None, "response": response, "category": category,
                     "choices": json.dumps(options, ensure_ascii=False), "answer": answer, "source": src})
    return pd.DataFrame(rows)


def load(path: str | Path) -> pd.DataFrame:
    """Records of every model_outputs_*_5shots.zip in `path`."""
    zips = sorted(Path(path).glob("model_outputs_*_5shots.zip"))
    if not zips:
        raise ModelsatError(f"{path}: no model_outputs_<model>_5shots.zip files")
    with ThreadPoolExecutor(max_workers=2) as pool:
        frames = list(pool.map(_read_zip, zips))
    return pd.concat(frames, ignore_index=True)
