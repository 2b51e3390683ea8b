"""Training the Model-SAT model, top to bottom (paper, "Tuning Recipe"; design.md, "Where we depart").

1. Items × models table from the records; each training model's profile; the prior for every pair.
2. Groups, by configuration:
   - model-contrastive (3 of 4 groups with `objective: modelsat`, none with `paper`): one instruction and every
     training model with a result on it (one packed forward). This is what teaches the router to tell models
     apart (issue 13's measurement).
   - item-contrastive (the paper's homogeneous in-batch negatives): one model, 1 item it answered, k−1 it failed.
   Stronger models are sampled more (weight ∝ accuracy), and distinguishing items more (weight ∝ p(1−p),
   p = share of models right on the item).
3. Loss: cross-entropy over the group's scores with the positive's index (eq. 5; several positives: −log of
   their softmax mass), plus BCE_WEIGHT · pointwise BCE with `objective: modelsat`.
4. Stage 1 trains the connector and the head; stage 2 adds φ's LoRA adapters (or all of φ), with a larger
   learning rate on W (and ψ when trained).
5. Optionally (`average_last`), the kept state is the running mean over the last steps (tail averaging), not the
   last step's state.
6. Atomic checkpoints every CHECKPOINT_EVERY steps; `resume=True` continues a stopped run from the last one
   (the same steps as an uninterrupted run, since the sampler's state and the running mean are saved too).
7. Diagnostics on held-out items: between-model score correlation, spread, pick counts, within-item AUC.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from modelsat.aptitude.profile import Profile
from modelsat.routers.modelsat.config import Preset, TrainConfig
from modelsat.routers.modelsat.model import ModelSAT

BCE_WEIGHT = 0.5           # objective modelsat: eq. 5 + this · pointwise BCE
MAX_GRAD_NORM = 1.0
CHECKPOINT_EVERY = 50      # steps between checkpoints when training has an out_dir (and at the last step)
LOG_EVERY = 10             # steps between log lines (and history entries)


@dataclass
class TrainingData:
    """What training reads: prompts, the items × models score matrix, profiles and priors, all aligned."""

    prompts: list[str]
    scores: np.ndarray        # (n_items, n_models) in [0, 1]; NaN = no result
    profiles: list[Profile]   # one per column
    priors: np.ndarray        # (n_items, n_models)

    @property
    def models(self) -> list[str]:
        return [p.model for p in self.profiles]


def training_data(records, profiles: Sequence[Profile], prior_fn: Callable, max_items: int | None = None,
                  seed: int = 0, name: str = "modelsat") -> TrainingData:
    """Pivot records to items × models, keep the models that have a profile, compute the prior once."""
    from modelsat.routers._training_data import item_table, profiles_by_model
    table = item_table(records, name=name)
    profs = profiles_by_model(profiles, table.models, name)
    keep = np.arange(len(table.prompts))
    if max_items is not None and len(keep) > max_items:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_items, replace=False))
    prompts = [table.prompts[i] for i in keep]
    scores = table.scores[keep]
    return TrainingData(prompts, scores, profs, np.asarray(prior_fn(prompts, profs), dtype=np.float64))


# ---- groups ---------------------------------------------------------------------------------------------------
class GroupSampler:
    """Draws groups (items, models, labels; the positive first) with the configured mix and weights."""

    def __init__(self, data: TrainingData, cfg: TrainConfig):
        self.cfg = cfg
        self.y = np.nan_to_num(data.scores, nan=-1.0)          # −1 = unknown, never sampled
        right, wrong = self.y >= 0.5, (self.y >= 0) & (self.y < 0.5)
        self.right, self.wrong = right, wrong
        share = right.sum(1) / np.maximum((right | wrong).sum(1), 1)
        self.item_w = share * (1 - share)
        model_acc = right.sum(0) / np.maximum((right | wrong).sum(0), 1)
        self.model_w = np.maximum(model_acc, 1e-3)
        self.mixed_items = np.flatnonzero(right.any(1) & wrong.any(1))
        self.usable_models = np.flatnonzero(right.any(0) & wrong.any(0))
        if not len(self.mixed_items) and not len(self.usable_models):
            from modelsat.routers.base import RouterError
            raise RouterError("modelsat: no training item was answered by one model and failed by another, and no "
                              "model both answered and failed items; nothing to learn from these records")
        self.rng = np.random.default_rng(cfg.seed)

    def _pick(self, idx: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
        w = w[idx] + 1e-9
        return self.rng.choice(idx, size=min(n, len(idx)), replace=False, p=w / w.sum())

    def model_contrastive(self):
        """One instruction and every model with a result on it (right ones first)."""
        i = int(self._pick(self.mixed_items, self.item_w, 1)[0])
        models = np.concatenate([np.flatnonzero(self.right[i]), np.flatnonzero(self.wrong[i])])
        return "model", np.full(len(models), i), models, self.right[i, models].astype(np.float32)

    def item_contrastive(self):
        """The paper's group: one model; one item it answered, k−1 it failed (distinguishing ones favoured)."""
        k = self.cfg.group_size
        m = int(self._pick(self.usable_models, self.model_w, 1)[0])
        pos = self._pick(np.flatnonzero(self.right[:, m]), self.item_w, 1)
        neg = self._pick(np.flatnonzero(self.wrong[:, m]), self.item_w, k - 1)
        items = np.concatenate([pos, neg])
        return "item", items, np.full(len(items), m), (np.arange(len(items)) == 0).astype(np.float32)

    def group(self):
        if len(self.mixed_items) and (self.rng.random() < self.cfg.model_contrastive_frac
                                      or not len(self.usable_models)):
            return self.model_contrastive()
        return self.item_contrastive()


def group_scores(model: ModelSAT, data: TrainingData, kind: str, items: np.ndarray, models: np.ndarray):
    """The group's k scores (with gradients). Model-contrastive groups share their one instruction's KV."""
    caps = [model.capability_input(data.profiles[m]) for m in models]
    priors = torch.as_tensor(data.priors[items, models], dtype=torch.float32, device=model.device)
    if kind == "model":
        return model.score_shared(data.prompts[int(items[0])], caps, priors)
    return model.score_pairs([data.prompts[i] for i in items], caps, priors)


def group_loss(scores: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Eq. 5 and/or pointwise BCE on the same scores. Eq. 5 is the cross-entropy of the softmax over the group
    with the positive's index; with several positives (a model-contrastive group) it is −log of the softmax mass
    on them, which is eq. 5 exactly when there is one."""
    loss = scores.new_zeros(())
    if cfg.loss in ("group", "group+bce"):
        pos = labels >= 0.5
        loss = loss + torch.logsumexp(scores, 0) - torch.logsumexp(scores[pos], 0)
    if cfg.loss in ("bce", "group+bce"):
        w = 1.0 if cfg.loss == "bce" else BCE_WEIGHT
        loss = loss + w * torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)
    return loss


# ---- tail averaging -------------------------------------------------------------------------------------------
class TailAverage:
    """The running mean of the trained state over the steps it is given (on the model's device, in float32)."""

    def __init__(self, model: ModelSAT):
        self.names = list(model.trained_state())
        self.mean: dict[str, torch.Tensor] = {}
        self.n = 0

    def update(self, model: ModelSAT) -> None:
        current = model.state_dict()
        self.n += 1
        for name in self.names:
            x = current[name].detach().float()
            if self.n == 1:
                self.mean[name] = x.clone()
            else:
                self.mean[name] += (x - self.mean[name]) / self.n

    def state(self) -> dict:
        return {"n": self.n, "mean": {k: v.cpu() for k, v in self.mean.items()}}

    def restore(self, saved: dict | None, model: ModelSAT) -> None:
        if saved:
            self.n, self.mean = saved["n"], {k: v.to(model.device) for k, v in saved["mean"].items()}

    def apply(self, model: ModelSAT) -> None:
        """Loads the mean into the model (each tensor in its own dtype; load_state_dict copies it to the device)."""
        current = model.state_dict()
        model.load_trained_state({k: v.to(current[k].dtype) for k, v in self.mean.items()})


# ---- checkpoints ------------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: ModelSAT, opt, step: int, sampler: GroupSampler, history: list,
                    average: TailAverage | None = None, scaler=None) -> None:
    """Writes the checkpoint to a temporary file and renames it into place (never a half-written file);
    `scaler`: fp16's loss scaler, whose scale a resumed run continues from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "state": model.trained_state(), "opt": opt.state_dict() if opt else None,
                "sampler_rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "history": history, "average": average.state() if average and average.n else None,
                "scaler": scaler.state_dict() if scaler is not None else None}, tmp)
    os.replace(tmp, path)


def stage_of(step: int, cfg: TrainConfig) -> int:
    return 1 if step < cfg.stage1_steps else 2


def make_optimizer(model: ModelSAT, stage: int, cfg: TrainConfig):
    groups = model.set_stage(stage, cfg.lr_connector, cfg.lr_lm)
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, weight_decay=0.0) if groups else None


# ---- devices, processes and precision (Hugging Face Accelerate) ----------------------------------------------------
def _on_cpu(cfg: TrainConfig) -> bool:
    return cfg.device == "cpu" or not torch.cuda.is_available()


def check_device(cfg: TrainConfig) -> None:
    """Raises RouterError where this machine cannot give `cfg.device` or `cfg.mixed_precision`."""
    from modelsat.routers.base import RouterError
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RouterError("modelsat: train.device is cuda but torch sees no GPU (this torch is "
                          f"{torch.__version__}); use device: auto or cpu")
    if _on_cpu(cfg) and cfg.mixed_precision == "fp16":
        raise RouterError("modelsat: train.mixed_precision fp16 needs a GPU and training runs on the CPU here; "
                          "use bf16 or no")


def process_state(cfg: TrainConfig):
    """Accelerate's view of this process for `cfg.device` (index, count, is it the main one). Call it before
    anything else asks Accelerate: the first call decides whether launched CPU processes join (gloo)."""
    from accelerate import PartialState
    return PartialState(cpu=_on_cpu(cfg))


def make_accelerator(cfg: TrainConfig):
    """The Accelerator for `cfg.device` and `cfg.mixed_precision`. Under `accelerate launch` / `torchrun` it joins
    the launched processes (one GPU each, or CPU processes over gloo); alone it is one process. Accelerate keeps one
    shared state per process; a lone process that trains several routers (the benchmark, tests) gets a fresh one
    for each, so each run's own precision and device hold."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    check_device(cfg)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        AcceleratorState._reset_state(reset_partial_state=True)   # a lone process: nothing to keep in sync with
    return Accelerator(cpu=_on_cpu(cfg), mixed_precision=cfg.mixed_precision)


def _sum_gradients(params: list, accelerator) -> None:
    """Sums the gradients of `params` over the processes, in one flat all-reduce (a parameter this process's
    groups did not reach counts as zero). Each process computed its share of the step's groups, each group's
    loss already divided by the step's group count, so the sum is the single-process gradient. Not DDP's wrapper:
    it syncs only through `forward` and only the parameters trainable when it wraps the model, and ours score
    through other methods and change what trains between stages."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = accelerator.reduce(torch.cat([g.reshape(-1).float() for g in grads]), reduction="sum")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
        offset += n


def _broadcast_trained_state(model: ModelSAT, accelerator) -> None:
    """Every process starts from the main process's trained state (the seeded inits agree; this makes sure)."""
    from accelerate.utils import broadcast
    names = set(model.trained_state())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in names:
                p.copy_(broadcast(p.detach().clone(), from_process=0))


def _optimizer_step(opt, accelerator) -> None:
    """opt.step(), through the loss scaler under fp16 (a step with inf/NaN gradients is skipped)."""
    if accelerator.scaler is not None:
        accelerator.scaler.step(opt)
        accelerator.scaler.update()
    else:
        opt.step()


# ---- the loop -----------------------------------------------------------------------------------------------------
def train(model: ModelSAT, data: TrainingData, preset: Preset, out_dir: str | Path | None = None,
          resume: bool = False, log: Callable[[str], None] = print,
          checkpoint_every: int = CHECKPOINT_EVERY) -> list:
    """Trains `model` in place for preset.train.total_steps; returns the history (one dict per logged step).
    The model is moved to the training device (`train.device`) and stays there. With several processes
    (`accelerate launch`), every process draws the same groups and computes every Nth of them; the gradients are
    summed, so a step is the same step as in one process, and only the main process logs and writes checkpoints."""
    cfg = preset.train
    torch.manual_seed(cfg.seed)
    accelerator = make_accelerator(cfg)
    rank, n_proc, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    if not main:
        log = lambda message: None  # noqa: E731 (one voice)
    model.place(accelerator.device)
    if n_proc > 1:
        _broadcast_trained_state(model, accelerator)
        log(f"training on {n_proc} processes ({accelerator.device.type}), {cfg.groups_per_step} groups a step "
            f"shared among them")
    sampler = GroupSampler(data, cfg)
    ckpt = Path(out_dir) / "checkpoint.pt" if out_dir else None
    start, history = 0, []
    opt = make_optimizer(model, stage_of(0, cfg), cfg) if cfg.total_steps else None
    average = TailAverage(model) if cfg.averaged_steps else None
    if resume and ckpt is not None and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False, map_location=accelerator.device)
        model.load_trained_state(saved["state"])
        start, history = saved["step"], saved["history"]
        if average is not None:
            average.restore(saved.get("average"), model)
        opt = make_optimizer(model, stage_of(start, cfg), cfg) if start < cfg.total_steps else None
        if opt is not None and saved["opt"] is not None and stage_of(start - 1, cfg) == stage_of(start, cfg):
            opt.load_state_dict(saved["opt"])
        sampler.rng.bit_generator.state = saved["sampler_rng"]
        torch.set_rng_state(saved["torch_rng"].cpu())
        if accelerator.scaler is not None and saved.get("scaler"):
            accelerator.scaler.load_state_dict(saved["scaler"])
        log(f"resumed from {ckpt} at step {start}")
    model.train()
    t0, running = time.time(), []
    for step in range(start, cfg.total_steps):
        if step == cfg.stage1_steps and step > 0 and step != start:
            opt = make_optimizer(model, 2, cfg)
            log(f"step {step}: stage 2 ({model.cfg.tuning}; lr W {cfg.lr_connector:g}, lr φ {cfg.lr_lm:g})")
        if opt is None:
            continue
        opt.zero_grad(set_to_none=True)
        groups = [sampler.group() for _ in range(cfg.groups_per_step)]   # every process draws the same groups
        total = torch.zeros((), device=accelerator.device)
        for kind, items, models, labels in groups[rank::n_proc]:
            with accelerator.autocast():
                scores = group_scores(model, data, kind, items, models)
            loss = group_loss(scores.float(), torch.as_tensor(labels, device=scores.device), cfg) / cfg.groups_per_step
            accelerator.backward(loss)
            total += loss.detach()
        params = [p for g in opt.param_groups for p in g["params"]]
        if n_proc > 1:
            _sum_gradients(params, accelerator)
            total = accelerator.reduce(total, reduction="sum")
        accelerator.unscale_gradients(optimizer=opt)
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        _optimizer_step(opt, accelerator)
        running.append(float(total))
        done = step + 1
        if average is not None and done > cfg.total_steps - cfg.averaged_steps:
            average.update(model)
        if done % LOG_EVERY == 0 or done == cfg.total_steps:
            rec = {"step": done, "stage": stage_of(step, cfg), "loss": float(np.mean(running)),
                   "gate": float(model.lm_gate.detach()), "prior_scale": float(model.prior_scale.detach()),
                   "s_per_step": (time.time() - t0) / max(done - start, 1)}
            history.append(rec)
            running = []
            log(f"step {done}/{cfg.total_steps} stage {rec['stage']} loss {rec['loss']:.4f} gate {rec['gate']:.3f} "
                f"prior×{rec['prior_scale']:.3f} ({rec['s_per_step']:.2f} s/step)")
        if ckpt is not None and checkpoint_every and (done % checkpoint_every == 0 or done == cfg.total_steps):
            if main:
                save_checkpoint(ckpt, model, opt, done, sampler, history, average, accelerator.scaler)
            accelerator.wait_for_everyone()
    if average is not None and average.n:
        average.apply(model)
        log(f"kept the mean of the trained state over the last {average.n} steps (average_last {cfg.average_last:g})")
    model.set_stage(0)
    model.eval()
    return history


# ---- diagnostics (issue 13) -------------------------------------------------------------------------------------
def evaluate(model: ModelSAT, data: TrainingData, n_items: int | None = None, seed: int = 0) -> dict:
    """Scores `n_items` held-out items against every model and returns diagnostics() of the result."""
    idx = np.arange(len(data.prompts))
    if n_items and len(idx) > n_items:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n_items, replace=False))
    s = model.score_matrix([data.prompts[i] for i in idx], data.profiles, data.priors[idx])
    out = diagnostics(s, data.scores[idx], data.models)
    out["prior"] = diagnostics(data.priors[idx], data.scores[idx], data.models)
    return out


def diagnostics(scores: np.ndarray, truth: np.ndarray, models: Sequence[str]) -> dict:
    """The figures that caught the item-difficulty failure (issue 13):
    - mean between-model correlation of scores across items (0.999 = the router only sees item difficulty);
    - spread of per-model means vs spread of per-item means;
    - how often each model is picked; routed accuracy vs the best single model and the oracle;
    - within-item AUC with each model's mean score removed (item-specific skill beyond overall strength)."""
    from modelsat.evaluate.metrics import within_item_auc
    y = np.nan_to_num(truth, nan=0.0)
    s = np.asarray(scores, dtype=np.float64)
    c = np.corrcoef(s.T) if s.shape[0] > 1 and s.shape[1] > 1 else np.ones((1, 1))
    off = c[~np.eye(len(c), dtype=bool)]
    picks = np.bincount(s.argmax(1), minlength=s.shape[1])
    return {"n_items": int(len(s)),
            "between_model_corr": float(np.nanmean(off)) if len(off) else float("nan"),
            "spread_between_models": float(s.mean(0).std()), "spread_between_items": float(s.mean(1).std()),
            "within_item_auc_centred": within_item_auc(s, y)[0],
            "routed_accuracy": float(y[np.arange(len(y)), s.argmax(1)].mean()) if len(y) else float("nan"),
            "best_single_accuracy": float(y.mean(0).max()) if len(y) else float("nan"),
            "best_single_model": models[int(y.mean(0).argmax())] if len(y) else None,
            "oracle_accuracy": float(y.max(1).mean()) if len(y) else float("nan"),
            "picks": {models[j]: int(picks[j]) for j in np.argsort(-picks) if picks[j] > 0}}


def format_diagnostics(d: dict) -> str:
    lines = []
    for label, x in (("router", d), ("prior alone", d.get("prior"))):
        if not x:
            continue
        lines.append(f"[{label}] items {x['n_items']}: routed {x['routed_accuracy']:.3f} | best single "
                     f"{x['best_single_accuracy']:.3f} ({x['best_single_model']}) | oracle {x['oracle_accuracy']:.3f} | "
                     f"within-item AUC (model mean removed) {x['within_item_auc_centred']:.3f} | between-model corr "
                     f"{x['between_model_corr']:.3f} | spread models {x['spread_between_models']:.3f} vs items "
                     f"{x['spread_between_items']:.3f} | picks {x['picks']}")
    return "\n".join(lines)
