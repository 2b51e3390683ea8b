"""Small pieces shared by the loaders: prompt rendering and reading (possibly gzipped) JSON."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

LETTERS = "ABCDEFGHIJ"


def multiple_choice_prompt(question: str, options: list[str]) -> str:
    """The question followed by lettered options, one per line (the form MMLU prompts take)."""
    lines = [question.strip()]
    lines += [f"{LETTERS[i]}. {str(opt).strip()}" for i, opt in enumerate(options)]
    return "\n".join(lines)


def read_json(path: Path):
    """JSON from a file, gunzipped when its name ends in .gz."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
