"""What the baseline routers read from a records table: one row per item, one column per training model.

Kept private (leading underscore: the registry's discovery skips it) because it is shared only by the
routers in this folder; the records contract itself lives in `modelsat.records`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.routers.base import RouterError


@dataclass
class ItemTable:
    """Training items (one per (benchmark, item_id)) with their prompt, labels and every model's score."""

    prompts: list[str]
    scores: np.ndarray          # (n_items, n_models) float64; NaN where a model has no result for the item
    models: list[str]
    benchmark: list[str]
    subject: list[str | None]
    category: list[str | None]

    @property
    def filled_scores(self) -> np.ndarray:
        """Scores with missing results counted as wrong (0), as the evaluation counts them."""
        return np.nan_to_num(self.scores, nan=0.0)


def item_table(records: pd.DataFrame, name: str = "router") -> ItemTable:
    """The records pivoted to items × models (models in sorted order, items in (benchmark, item_id) order)."""
    if records is None or len(records) == 0:
        raise RouterError(f"{name}: fit needs a non-empty records table (columns model, benchmark, item_id, "
                          "prompt, score, ...)")
    missing = [c for c in ("model", "benchmark", "item_id", "prompt", "score") if c not in records.columns]
    if missing:
        raise RouterError(f"{name}: records lack column(s) {', '.join(missing)}")
    df = records.copy()
    df["item_id"] = df["item_id"].astype(str)
    key = ["benchmark", "item_id"]
    pivot = df.pivot_table(index=key, columns="model", values="score", aggfunc="mean")
    pivot = pivot.sort_index().reindex(sorted(pivot.columns), axis=1)
    cols = ["prompt"] + [c for c in ("subject", "category") if c in df.columns]
    meta = df.drop_duplicates(key).set_index(key)[cols].reindex(pivot.index)

    def column(c):
        if c not in meta.columns:
            return [None] * len(meta)
        return [v if isinstance(v, str) else None for v in meta[c].tolist()]

    return ItemTable(prompts=[str(p) for p in meta["prompt"].tolist()],
                     scores=pivot.to_numpy(dtype=np.float64), models=[str(m) for m in pivot.columns],
                     benchmark=[str(b) for b in pivot.index.get_level_values(0)],
                     subject=column("subject"), category=column("category"))


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index arrays; validation holds `fraction` of n (at least 1 when n > 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * fraction))), n - 1) if n > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def routed_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean true score of the model each row's prediction ranks first."""
    return float(truth[np.arange(len(truth)), np.argmax(pred, axis=1)].mean()) if len(truth) else 0.0


def macro_routed_accuracy(pred: np.ndarray, truth: np.ndarray, groups: Sequence[str]) -> float:
    """Routed accuracy averaged over groups (benchmarks), as the evaluation reports it."""
    from modelsat.evaluate.metrics import macro_mean
    return macro_mean(truth[np.arange(len(truth)), np.argmax(pred, axis=1)], np.asarray(groups))


def held_out_table(validation: pd.DataFrame | None, models: Sequence[str], min_items: int,
                   name: str = "router") -> ItemTable | None:
    """The item table of `validation` records of `models` (held-out items a router tunes on), or None when it
    holds fewer than `min_items` items."""
    if validation is None or len(validation) == 0:
        return None
    v = validation[validation["model"].isin(set(models))]
    if v[["benchmark", "item_id"]].drop_duplicates().shape[0] < min_items:
        return None
    return item_table(v, name)


def subject_order(profiles: Sequence[Profile]) -> list[str]:
    """The sorted union of the profiles' subjects: the fixed order of profile vectors."""
    return sorted({s for p in profiles for s in p.subjects})


def profile_vectors(profiles: Sequence[Profile], subjects: list[str]) -> np.ndarray:
    """(n_profiles, n_subjects) accuracies; a subject a profile lacks gets that profile's mean accuracy."""
    return np.array([p.accuracy_vector(subjects) for p in profiles], dtype=np.float32).reshape(
        len(profiles), len(subjects))


def profiles_by_model(profiles: Sequence[Profile], models: Sequence[str], name: str) -> list[Profile]:
    """The profile of each training model, in `models` order; a clear error names the models lacking one."""
    by_name = {p.model: p for p in profiles}
    missing = [m for m in models if m not in by_name]
    if missing:
        raise RouterError(f"{name}: no profile for training model(s) {', '.join(missing)}; pass the "
                          "Profile of every model in the records to fit")
    return [by_name[m] for m in models]


def stable_seed(*parts) -> int:
    """A 64-bit seed from text parts, the same in every process (Python's hash() is salted)."""
    import hashlib
    digest = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "little")


def pointwise_pairs(n_items: int, n_models: int, max_pairs: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(item index, model index) of every training pair, or a seeded sample of `max_pairs` of them."""
    items, models = np.meshgrid(np.arange(n_items), np.arange(n_models), indexing="ij")
    items, models = items.ravel(), models.ravel()
    if max_pairs is not None and len(items) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(items), size=max_pairs, replace=False))
        items, models = items[keep], models[keep]
    return items, models


def torch_state(module) -> dict[str, np.ndarray]:
    """A torch module's parameters as numpy arrays (for safetensors), keyed by their state-dict names."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_torch_state(module, arrays: dict[str, np.ndarray], prefix: str = "") -> None:
    """Loads arrays written by `torch_state` (keys optionally prefixed) into `module`."""
    import torch
    state = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}
    module.load_state_dict(state)
