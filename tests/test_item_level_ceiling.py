"""experiments/item_level_ceiling.py: the bound on item-level skill, on results with a planted structure."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "item_level_ceiling.py"


def planted(rank: int, n: int, seed: int) -> np.ndarray:
    """(n, 12) 0/1 results drawn from strength + difficulty + a rank-`rank` model-by-item structure."""
    rng = np.random.default_rng(seed)
    models = np.random.default_rng(1)                     # the same 12 models in every draw
    a, v = models.normal(scale=0.5, size=12), models.normal(scale=1.5, size=(12, max(rank, 1)))
    u = rng.normal(size=(n, max(rank, 1))) * (rank > 0)
    logits = a + rng.normal(scale=0.5, size=(n, 1)) + u @ v.T
    return (rng.random((n, 12)) < 1 / (1 + np.exp(-logits))).astype(float)


def test_a_planted_structure_is_found_and_strength_and_difficulty_alone_give_a_half():
    script = load_script("item_level_ceiling")
    train, test = planted(1, 3000, 0), planted(1, 600, 2)
    assert np.mean(script.ceiling(train, test, rank=0, halvings=2)) == 0.5
    # the true log-odds would give ~0.7 on a half; six 0/1 results an item estimate its trait roughly
    assert np.mean(script.ceiling(train, test, rank=1, halvings=2)) > 0.58
    flat_train, flat_test = planted(0, 3000, 0), planted(0, 600, 2)
    assert abs(np.mean(script.ceiling(flat_train, flat_test, rank=1, halvings=2)) - 0.5) < 0.03


def test_it_refuses_bad_ranks():
    for ranks in ("x", "-1", ""):
        done = subprocess.run([sys.executable, str(SCRIPT), "--ranks", ranks], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and "--ranks" in done.stderr, done.stderr
