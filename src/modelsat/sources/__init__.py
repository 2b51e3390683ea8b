"""One loader per folder of the data directory; each `load(path) -> records DataFrame`."""

from __future__ import annotations

import importlib
import os

import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.paths import data_dir

SOURCES = ["mmlu", "mmlu_pro", "routerdc", "routellm", "llmrouter"]


def load(name: str, path: str | os.PathLike | None = None, data: str | os.PathLike | None = None) -> pd.DataFrame:
    """Records of source `name`, read from `path` (its folder) or from `<data dir>/<name>`."""
    if name not in SOURCES:
        raise ModelsatError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
    folder = path if path is not None else data_dir(data) / name
    if not os.path.isdir(folder):
        raise ModelsatError(f"source {name!r}: no folder at {folder}")
    module = importlib.import_module(f"modelsat.sources.{name}")
    return module.load(folder)
