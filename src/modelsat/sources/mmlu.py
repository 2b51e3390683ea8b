"""Official MMLU questions (Hendrycks et al.): dev and test, 57 subjects. No model results.

Files: <folder>/{dev,test}/<subject>_<split>.csv with header question,choice0..choice3,answer (index 0-3).
Returns a question table with the records columns (model and score empty) so it lists and exports like one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.sources._common import LETTERS, multiple_choice_prompt

BENCHMARK = "mmlu"


def item_id(subject: str, split: str, index: int) -> str:
    """The stable id of an official MMLU question: `<subject>/<split>/<row index>`."""
    return f"{subject}/{split}/{index}"


def questions(path: str | Path, splits: tuple[str, ...] = ("dev", "test")) -> pd.DataFrame:
    """One row per question: item_id, subject, split, question, choices (list), answer (letter), prompt."""
    folder = Path(path)
    rows = []
    for split in splits:
        files = sorted((folder / split).glob(f"*_{split}.csv"))
        for f in files:
            subject = f.name[: -len(f"_{split}.csv")]
            try:
                df = pd.read_csv(f, dtype=str, keep_default_na=False)
            except Exception as exc:
                raise ModelsatError(f"{f}: cannot read MMLU CSV ({exc})") from exc
            expected = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
            if list(df.columns) != expected:
                raise ModelsatError(f"{f}: expected columns {expected}, found {list(df.columns)}")
            for i, r in enumerate(df.itertuples(index=False)):
                choices = [r.choice0, r.choice1, r.choice2, r.choice3]
                rows.append({"item_id": item_id(subject, split, i), "subject": subject, "split": split,
                             "question": r.question, "choices": choices,
                             "answer": LETTERS[int(r.answer)],
                             "prompt": multiple_choice_prompt(r.question, choices)})
    if not rows:
        raise ModelsatError(f"{folder}: no MMLU files found (expected dev/*_dev.csv and test/*_test.csv)")
    return pd.DataFrame(rows)


def load(path: str | Path) -> pd.DataFrame:
    """The questions in records columns (model and score empty: MMLU here carries no model results)."""
    q = questions(path)
    return pd.DataFrame({
        "model": None, "benchmark": BENCHMARK, "item_id": q["item_id"], "prompt": q["prompt"],
        "subject": q["subject"], "score": float("nan"), "cost": None, "response": None,
        "split": q["split"], "choices": q["choices"].map(lambda c: json.dumps(c, ensure_ascii=False)),
        "answer": q["answer"], "source": "mmlu"})
