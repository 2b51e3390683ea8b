"""Shared pieces of the policy tests (no tests here): a router whose P(good answer) is a fixed table, so which
model a policy picks is certain, not lucky; and the prices that make the expensive model the best by a hair.

On MATH: alpha (dear) P = 0.90, beta (cheap) P = 0.88, gamma (no price) P = 0.40. Max-quality takes alpha;
threshold δ = 0.03 and tradeoff λ = 100 take beta (alpha costs ~$0.003 more a request: λ·Δcost ≈ 0.3 > 0.02);
tradeoff λ = 1 keeps alpha (1 · 0.003 < 0.02).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.routers.base import Router, register

MATH = "Solve this math problem: x^2 = 4"
HISTORY = "Which empire fell in 476?"
P_TABLE = {"math": {"alpha": 0.90, "beta": 0.88, "gamma": 0.40},
           "history": {"alpha": 0.60, "beta": 0.30, "gamma": 0.95}}
PRICES = {"alpha": 10.0, "beta": 0.1}        # USD per million tokens, in and out; gamma has none


@register
class FixedProbabilityRouter(Router):
    """P(good answer) from a table: the first topic word of `table` found in the instruction (else `default`)."""
    name = "test-fixed-p"
    scores_are_probabilities = True
    columns_independent = True

    def __init__(self, table: dict | None = None, default: float = 0.5):
        self.table = P_TABLE if table is None else table
        self.default = default

    def fit(self, records, profiles):
        return self

    def score(self, instructions, candidates):
        rows = []
        for text in instructions:
            topic = next((t for t in self.table if t in text.lower()), None)
            rows.append([self.table[topic].get(c.model, self.default) if topic else self.default
                         for c in candidates])
        return np.array(rows, dtype=float)


def write_zoo(folder: Path, prices: dict = PRICES) -> Path:
    """A zoo YAML with profiles of alpha, beta, gamma (prices from `prices`), for `modelsat route --zoo`."""
    folder.mkdir(parents=True, exist_ok=True)
    models = []
    for name in P_TABLE["math"]:
        Profile(name, "test", {"math": SubjectScore(0.5, 20)}).save(folder / f"{name}.json")
        models.append({"name": name, "profile": f"{name}.json",
                       **({"price": prices[name]} if name in prices else {})})
    import yaml
    (folder / "zoo.yaml").write_text(yaml.safe_dump({"name": "policy-test", "models": models}))
    return folder / "zoo.yaml"


def cost(name: str, prompt_tokens: int, output_tokens: int = 300) -> float:
    """The expected USD of a request to `name` at PRICES."""
    return (prompt_tokens + output_tokens) * PRICES[name] / 1e6
