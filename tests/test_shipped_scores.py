"""The shipped router scores a fixed set of instructions against the default zoo exactly as recorded in
tests/data/shipped_scores.json: a change to the Model-SAT code or configuration that moves the shipped router's
scores fails here. Regenerate the file only on purpose (a newly trained shipped router):
`python tests/test_shipped_scores.py --write`."""

import json
import sys
from pathlib import Path

import numpy as np

from modelsat.aptitude.profile import Profile
from modelsat.routers.modelsat.router import SHIPPED_LM_NAME, shipped_router, shipped_router_dir

FIXTURE = Path(__file__).parent / "data" / "shipped_scores.json"
ZOO = shipped_router_dir(SHIPPED_LM_NAME).parent / "default_zoo"

INSTRUCTIONS = [
    "What is the derivative of x^3 * sin(x)?",
    "Which enzyme unwinds the DNA double helix during replication?\nA. Ligase\nB. Helicase\nC. Primase\nD. Polymerase",
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "Under the Fourth Amendment, when may police search a car without a warrant?",
    "Translate into French: 'The library closes at eight tonight.'",
    "A firm's marginal cost rises while price stays fixed. What happens to its profit-maximising output?",
    "Explain Kant's categorical imperative in two sentences.",
    "hi",
]


def zoo_profiles() -> list[Profile]:
    """The default zoo's profiles in file-name order."""
    return [Profile.load(p) for p in sorted(ZOO.glob("*.json"))]


def current_scores() -> dict:
    profiles = zoo_profiles()
    scores = shipped_router(SHIPPED_LM_NAME).score(INSTRUCTIONS, profiles)
    return {"instructions": INSTRUCTIONS, "models": [p.model for p in profiles],
            "scores": [[float(v) for v in row] for row in scores]}


def test_the_shipped_router_scores_the_default_zoo_as_recorded():
    expected = json.loads(FIXTURE.read_text())
    profiles = zoo_profiles()
    assert [p.model for p in profiles] == expected["models"]
    scores = shipped_router(SHIPPED_LM_NAME).score(expected["instructions"], profiles)
    np.testing.assert_allclose(scores, np.array(expected["scores"]), rtol=0, atol=1e-6)


if __name__ == "__main__" and "--write" in sys.argv:
    FIXTURE.write_text(json.dumps(current_scores(), indent=1) + "\n")
    print(f"wrote {FIXTURE}")
