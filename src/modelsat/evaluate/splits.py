"""Item splits (train / validation / test), fixed and seeded, written beside the results so a run can be repeated
on exactly the same items.

An item is (benchmark, item_id); every model's record of an item lands in the same split. Sources with their own
split (a `split` column: RouterDC, RouterBench, LLMRouter) keep it: their test items stay test, and a seeded share
of their training items becomes validation; a benchmark with test items only (RouterDC's out-of-domain sets) stays
all test. Sources without one, or whose split holds no training item at all (MMLU-Pro; RouteLLM, whose files are
all evaluation sets), are split by item, per benchmark, 70 / 10 / 20 by default.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from modelsat.errors import ModelsatError

SPLITS = ("train", "validation", "test", "unused")   # unused: training items a quick run leaves out
COLUMNS = ["benchmark", "item_id", "split"]


def _rng(seed: int, benchmark: str) -> np.random.Generator:
    # a per-benchmark stream, so adding a benchmark never reshuffles another's items
    digest = hashlib.sha256(f"{seed}:{benchmark}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def assign_splits(records: pd.DataFrame, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
                  exclude_from_test: set | None = None) -> pd.DataFrame:
    """One row per item: benchmark, item_id, split (train / validation / test).

    `fractions` = (train, validation, test) for items without a source split; for items with one, the source's
    `test` stays test and `validation` takes fractions[1] / (fractions[0] + fractions[1]) of its training items.
    `exclude_from_test`: (benchmark, item_id) pairs never put in test (RouteLLM's contaminated prompts); they
    join train.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ModelsatError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    cols = ["benchmark", "item_id"] + (["split"] if "split" in records.columns else [])
    items = records[cols].drop_duplicates(["benchmark", "item_id"]).sort_values(["benchmark", "item_id"])
    exclude_from_test = exclude_from_test or set()
    # a source split is kept only when it holds training items somewhere (RouteLLM marks everything `test`)
    use_own = "split" in items.columns and (items["split"] == "train").any()
    out = []
    for bench, group in items.groupby("benchmark", sort=True):
        ids = group["item_id"].astype(str).to_numpy()
        rng = _rng(seed, str(bench))
        split = np.empty(len(ids), dtype=object)
        own = group["split"].to_numpy() if "split" in group.columns else np.array([None] * len(ids))
        has_own = pd.notna(own) & np.isin(own.astype(str), ["train", "test", "validation"])
        if use_own and has_own.all():
            split[:] = own
            train_idx = np.flatnonzero(split == "train")
            n_val = int(round(len(train_idx) * fractions[1] / max(fractions[0] + fractions[1], 1e-12)))
            split[rng.permutation(train_idx)[:n_val]] = "validation"
        else:
            order = rng.permutation(len(ids))
            n_test = int(round(len(ids) * fractions[2]))
            n_val = int(round(len(ids) * fractions[1]))
            split[order[:n_test]] = "test"
            split[order[n_test:n_test + n_val]] = "validation"
            split[order[n_test + n_val:]] = "train"
        if exclude_from_test:
            bad = np.array([(bench, i) in exclude_from_test for i in ids]) & (split == "test")
            split[bad] = "train"
        out.append(pd.DataFrame({"benchmark": bench, "item_id": ids, "split": split}))
    if not out:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(out, ignore_index=True)


def apply_splits(records: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """The records with an `eval_split` column from `splits` (items absent from `splits` get None)."""
    key = splits.set_index(["benchmark", "item_id"])["split"]
    idx = pd.MultiIndex.from_arrays([records["benchmark"].astype(str), records["item_id"].astype(str)])
    return records.assign(eval_split=key.reindex(idx).to_numpy())


def write_splits(splits: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Writes the split table as CSV (benchmark,item_id,split), atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    splits[COLUMNS].to_csv(tmp, index=False)
    os.replace(tmp, p)
    return p


def read_splits(path: str | os.PathLike) -> pd.DataFrame:
    """A split table written by `write_splits` (or by hand); errors name the file and the row."""
    p = Path(path)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise ModelsatError(f"{p}: cannot read split CSV ({exc})") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ModelsatError(f"{p}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    bad = ~df["split"].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ModelsatError(f"{p}: row {row + 2}, field 'split': {df['split'].iloc[row]!r} is not one of "
                            f"{', '.join(SPLITS)}")
    return df[COLUMNS]
