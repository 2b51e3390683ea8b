"""The project's item split: a seeded hash of item_id decides train / validation / test (seed 0, 70/10/20), so
every process, every router and the benchmark agree on which items are never trained on."""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

FRACTIONS = (0.7, 0.1, 0.2)


def item_fraction(item_id: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by (seed, item_id)."""
    digest = hashlib.sha1(f"{seed}:{item_id}".encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def item_split(item_ids: Iterable[str], seed: int = 0, fractions: tuple[float, float, float] = FRACTIONS) -> np.ndarray:
    """Array of "train" / "val" / "test", one per item id."""
    a, b = fractions[0], fractions[0] + fractions[1]
    u = np.array([item_fraction(str(i), seed) for i in item_ids])
    return np.where(u < a, "train", np.where(u < b, "val", "test"))
