"""The records table: one row per (model, item) result, the contract every stage speaks.

Columns (design.md, "Contracts"): model, benchmark, item_id, prompt, subject, score, cost, response;
optional: split, category, choices, answer, source, cost_is_estimate. (model, benchmark, item_id) is unique.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.files import atomic_path

REQUIRED = ["model", "benchmark", "item_id", "prompt", "subject", "score", "cost", "response"]
OPTIONAL = ["split", "category", "choices", "answer", "source", "cost_is_estimate"]
KEY = ["model", "benchmark", "item_id"]
_STRING = {"model", "benchmark", "item_id", "prompt"}
_NULLABLE_STRING = {"subject", "response", "split", "category", "answer", "source"}
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


class RecordsError(ModelsatError):
    """A records file or table that breaks the contract; the message names file, row and field."""


def format_of(path: str | os.PathLike) -> str:
    """'parquet', 'csv' or 'jsonl' from the file name (a trailing .gz is allowed for csv/jsonl)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in _FORMATS:
        raise RecordsError(
            f"{p}: unknown records format {''.join(p.suffixes) or '(no suffix)'}; "
            "use .parquet, .csv or .jsonl (optionally .gz)")
    return _FORMATS[suffixes[-1]]


def empty() -> pd.DataFrame:
    """An empty records table with the required columns."""
    return normalize(pd.DataFrame({c: [] for c in REQUIRED}))


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """The table with the required columns present (nullable ones filled with None) and canonical dtypes."""
    df = df.copy()
    for col in ("subject", "cost", "response"):
        if col not in df.columns:
            df[col] = None
    for col in _STRING:
        if col in df.columns:
            df[col] = df[col].astype(str)
    df["score"] = pd.to_numeric(df["score"], errors="raise").astype("float64")
    df["cost"] = pd.to_numeric(df["cost"], errors="coerce").astype("float64")
    for col in _NULLABLE_STRING & set(df.columns):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    if "cost_is_estimate" in df.columns:
        df["cost_is_estimate"] = df["cost_is_estimate"].fillna(False).astype(bool)
    if "choices" in df.columns:
        df["choices"] = df["choices"].map(_choices_to_text)
    ordered = REQUIRED + [c for c in OPTIONAL if c in df.columns]
    extra = [c for c in df.columns if c not in ordered]
    return df[ordered + extra].reset_index(drop=True)


def _choices_to_text(value):
    """Choices are stored as a JSON list in text, so every format round-trips them."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    return json.dumps(list(value), ensure_ascii=False)


def _not_text(column: pd.Series) -> pd.Series:
    """True where a value is missing or neither text nor an integer (vectorised when the column is all text)."""
    if pd.api.types.infer_dtype(column, skipna=True) == "string":
        return column.isna()
    return column.isna() | ~column.map(lambda v: isinstance(v, (str, int, np.integer)))


def _is_boolean(column: pd.Series) -> pd.Series:
    """True where a value is a bool (a score must be a number, not True/False)."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return pd.Series(True, index=column.index)
    if column.dtype != object:
        return pd.Series(False, index=column.index)
    return column.map(lambda v: isinstance(v, (bool, np.bool_)))


def validate(df: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """The table, normalized, if it meets the contract; else a RecordsError naming source, row and field."""
    if len(df) == 0:
        raise RecordsError(f"{source}: the file holds no records (expected at least one row with columns "
                           f"{', '.join(REQUIRED)})")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise RecordsError(f"{source}: missing column(s) {', '.join(missing)}; "
                           f"a records file needs {', '.join(REQUIRED)}")
    for col in sorted(_STRING):
        bad = _not_text(df[col])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise RecordsError(f"{source}: row {row + 1}, field '{col}': expected text, "
                               f"found {df[col].iloc[row]!r}")
    score = pd.to_numeric(df["score"], errors="coerce")
    bad = score.isna() | _is_boolean(df["score"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RecordsError(f"{source}: row {row + 1}, field 'score': expected a number in [0, 1], "
                           f"found {df['score'].iloc[row]!r}")
    out = (score < 0) | (score > 1)
    if out.any():
        row = int(np.flatnonzero(out.to_numpy())[0])
        raise RecordsError(f"{source}: row {row + 1}, field 'score': {score.iloc[row]} is outside [0, 1]")
    cost = pd.to_numeric(df["cost"], errors="coerce")
    bad = cost.isna() & df["cost"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RecordsError(f"{source}: row {row + 1}, field 'cost': expected a number (USD) or empty, "
                           f"found {df['cost'].iloc[row]!r}")
    keys = df[KEY].astype(str)
    dup = keys.duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(np.flatnonzero((keys == keys.iloc[row]).all(axis=1).to_numpy())[0])
        m, b, i = keys.iloc[row]
        raise RecordsError(f"{source}: row {row + 1} duplicates row {first + 1}: "
                           f"(model={m!r}, benchmark={b!r}, item_id={i!r}) must be unique")
    return normalize(df)


def read(path: str | os.PathLike) -> pd.DataFrame:
    """A validated records table from a Parquet, CSV or JSONL file."""
    p = Path(path)
    fmt = format_of(p)
    if not p.exists():
        raise RecordsError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise RecordsError(f"{p}: the file is empty")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
        elif fmt == "csv":
            df = pd.read_csv(p, dtype={"item_id": str, "model": str, "benchmark": str},
                             keep_default_na=True)
        else:
            df = pd.read_json(p, lines=True, dtype={"item_id": str, "model": str, "benchmark": str})
    except Exception as exc:  # pyarrow/pandas raise many types for a damaged file; name the file instead
        raise RecordsError(f"{p}: cannot read as {fmt} ({type(exc).__name__}: {exc}); "
                           "the file may be truncated or not a records file") from exc
    return validate(df, source=str(p))


def write(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Writes a validated table atomically (temporary file in the same folder, then rename)."""
    format_of(path)  # an unknown suffix is reported before any content problem
    return write_table(validate(df, source=str(path)), path)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Writes any table atomically in the format of its suffix, without the records checks.

    For tables that are not model results (the MMLU question table, caches); results go through `write`.
    """
    p = Path(path)
    fmt = format_of(p)
    with atomic_path(p) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        elif fmt == "csv":
            df.to_csv(tmp, index=False, compression="gzip" if p.suffix == ".gz" else None)
        else:
            df.to_json(tmp, orient="records", lines=True, force_ascii=False,
                       compression="gzip" if p.suffix == ".gz" else None)
    return p


def concat(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One records table from several (columns unioned)."""
    tables = [t for t in tables if len(t)]
    return normalize(pd.concat(tables, ignore_index=True)) if tables else empty()


def score_matrix(df: pd.DataFrame, models: list[str] | None = None) -> pd.DataFrame:
    """Items × models matrix of scores, indexed by (benchmark, item_id); NaN where a model has no result."""
    m = df.pivot_table(index=["benchmark", "item_id"], columns="model", values="score", aggfunc="first")
    if models is not None:
        missing = [x for x in models if x not in m.columns]
        if missing:
            raise RecordsError(f"no records for model(s) {', '.join(missing)}; "
                               f"known: {', '.join(sorted(m.columns))}")
        m = m[models]
    return m

