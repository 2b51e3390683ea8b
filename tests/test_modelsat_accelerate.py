"""Training through Hugging Face Accelerate: several processes take the same step as one, mixed precision, and
clear errors for a device or precision this machine cannot give. Real processes (torchrun, gloo on loopback)
and tiny random models; seconds each. The GPU paths (cuda, fp16) run only where torch sees a GPU."""

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from modelsat.routers.base import RouterError
from modelsat.errors import ModelsatError
from modelsat.routers.modelsat.config import Preset, TrainConfig, tiny_preset
from modelsat.routers.modelsat.model import ModelSAT
from modelsat.routers.modelsat.train import train, training_data

sys.path.insert(0, str(Path(__file__).parent))
from test_modelsat_model import PROFILES, synthetic_records  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def preset_with(**train_overrides) -> Preset:
    base = tiny_preset(encoder="tiny", tuning="lora")
    steps = dict(stage1_steps=2, stage2_steps=4, groups_per_step=4)
    return dataclasses.replace(base, train=dataclasses.replace(base.train, **{**steps, **train_overrides}))


def flat_prior(instructions, candidates):
    return np.full((len(instructions), len(candidates)), 0.5)


def trained_state(preset: Preset, out_dir=None, log=lambda message: None) -> dict:
    data = training_data(synthetic_records(4), PROFILES, flat_prior)
    model = ModelSAT(preset.model, seed=0)
    train(model, data, preset, out_dir=out_dir, log=log, checkpoint_every=3)
    return model.trained_state()


WORKER = textwrap.dedent("""
    import dataclasses, os, sys
    import torch
    sys.path.insert(0, {tests!r})
    import test_modelsat_accelerate as t
    torch.set_num_threads(1)
    state = t.trained_state(t.preset_with(device="cpu"), out_dir={ckpt!r}, log=print)
    torch.save(state, os.path.join({out!r}, "rank" + os.environ["RANK"] + ".pt"))
""")


def test_two_processes_take_the_same_steps_as_one(tmp_path):
    """torchrun starts two CPU processes (gloo on loopback); each computes half of every step's groups and the
    gradients are summed, so both end with the weights one process gets from the whole steps."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests"), ckpt=str(tmp_path / "ckpt"), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")     # loopback, whatever the machine's hostname resolves to
    env.pop("WORLD_SIZE", None)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.count("training on 2 processes (cpu), 4 groups a step shared among them") == 1  # one voice
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    one = trained_state(preset_with(device="cpu"))
    moved = False
    for k in one:
        assert torch.equal(rank0[k], rank1[k]), k
        torch.testing.assert_close(rank0[k], one[k], rtol=1e-4, atol=1e-4)   # summation order: Adam's noise
        moved |= not torch.equal(one[k], ModelSAT(preset_with().model, seed=0).trained_state()[k])
    assert moved
    assert (tmp_path / "ckpt" / "checkpoint.pt").exists()          # written once, by the main process
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_bf16_mixed_precision_trains_fp32_weights_under_autocast():
    fp32 = trained_state(preset_with())
    bf16 = trained_state(preset_with(mixed_precision="bf16"))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in bf16.values())
    # the forward ran in bf16: the weights differ from the fp32 run's, by a little
    diffs = [float((bf16[k] - fp32[k]).abs().max()) for k in fp32]
    assert max(diffs) > 0
    assert all(d < 0.05 for d in diffs), diffs


def test_precision_and_device_this_machine_cannot_give_are_clear_errors():
    with pytest.raises(ModelsatError, match="fp16 needs a GPU"):
        TrainConfig(mixed_precision="fp16", device="cpu")
    with pytest.raises(ModelsatError, match="mixed_precision must be one of no, bf16, fp16"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ModelsatError, match="device must be one of auto, cpu, cuda"):
        TrainConfig(device="tpu")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the cuda and fp16 errors are for machines without one")
    with pytest.raises(RouterError, match="train.device is cuda but torch sees no GPU"):
        trained_state(preset_with(device="cuda"))
    with pytest.raises(RouterError, match="fp16 needs a GPU and training runs on the CPU here"):
        trained_state(preset_with(mixed_precision="fp16"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["no", "bf16", "fp16"])
def test_training_on_the_gpu_matches_the_cpu_in_kind(precision):
    state = trained_state(preset_with(device="cuda", mixed_precision=precision))
    cpu = trained_state(preset_with(device="cpu"))
    for k in cpu:
        assert state[k].device.type == "cpu" and torch.isfinite(state[k]).all()
        torch.testing.assert_close(state[k], cpu[k], rtol=0.1, atol=0.05)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_train_command_refuses_a_device_it_cannot_have_before_loading_anything(tmp_path):
    run = subprocess.run([sys.executable, "-m", "modelsat.cli", "train", "--config", str(ROOT / "configs" / "quick.yaml"),
                          "--out", str(tmp_path / "out"), "--device", "cuda"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 2
    assert "train.device is cuda but torch sees no GPU" in run.stderr + run.stdout
    assert "records:" not in run.stdout and not (tmp_path / "out").exists()
