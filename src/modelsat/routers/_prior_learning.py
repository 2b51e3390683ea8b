"""The learned reading of a profile (`ProfilePrior(learn_steps=N)`): which subjects and tasks of a candidate's
profile to read for an instruction, learned from the training records of *other* models.

The fixed prior reads subject weights from a subject map fitted to name MMLU subjects, and task probabilities
from a benchmark classifier; neither ever saw a score. Here both sets of logits get a learned linear correction
of the instruction's features, each task a learned blend between the candidate's subject prior and its task
accuracy, and the shrinkage kappa is learned too:

    subject logits  = similarities(x) / T + x·U_s + b_s          (U_s = 0, b_s = 0 at the start)
    task logits     = task classifier(x)  + x·U_t + b_t
    a_c(t, x)       = lam_t · subject prior_c(x) + (1 − lam_t) · shrunk task accuracy_c(t)   (lam_t: 1 for
                      MMLU-like tasks, 0 otherwise at the start; a candidate without task t reads its subject prior)
    prior(x, c)     = sum_t P(t | x) · a_c(t, x)   (the subject prior alone when there are no tasks)

Every parameter is shared by all models; a candidate enters only through its profile's numbers, so a model known
only by its aptitude-test profile is read like any other. At the start the learned prior equals the fixed one
(tested). The loss is what routing needs: per instruction, a softmax over the training models (the share of the
target mass on those that answered well) plus a pointwise Bernoulli term on a calibrated logit of the prior;
L2 pulls U toward zero, and the step count is chosen by the loss on a seeded validation share of the items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# learning starts from the fitted kappa, at most this: a large kappa shrinks every subject to the model's mean,
# and the subject weights then get almost no gradient (a wrong fixed reading is fitted by kappa -> infinity)
KAPPA_START_MAX = 20.0


@dataclass
class ProfileArrays:
    """A candidate set's profile numbers, as the prior reads them."""

    acc: np.ndarray          # (S, m) per-subject accuracy (the candidate's mean where it has none)
    n: np.ndarray            # (S, m) items each rests on (0 where none)
    mean: np.ndarray         # (m,) mean accuracy
    task_acc: np.ndarray     # (T, m) per-task accuracy (0 where none)
    task_n: np.ndarray       # (T, m) items each rests on
    has_task: np.ndarray     # (T, m) whether the candidate's profile measures the task


@dataclass
class LearnedReading:
    """The learned parameters (numpy; saved with the router)."""

    u_subject: np.ndarray    # (d, S)
    b_subject: np.ndarray    # (S,)
    u_task: np.ndarray       # (d, T)
    b_task: np.ndarray       # (T,)
    lam: np.ndarray          # (T,) in [0, 1]
    kappa: float
    history: dict

    def arrays(self) -> dict[str, np.ndarray]:
        return {"learned_u_subject": self.u_subject, "learned_b_subject": self.b_subject,
                "learned_u_task": self.u_task, "learned_b_task": self.b_task, "learned_lam": self.lam}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], kappa: float, history: dict) -> "LearnedReading | None":
        if "learned_u_subject" not in arrays:
            return None
        return cls(arrays["learned_u_subject"], arrays["learned_b_subject"], arrays["learned_u_task"],
                   arrays["learned_b_task"], arrays["learned_lam"], float(kappa), dict(history or {}))


def _f64(a):
    import torch
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def forward(feats, subject_logits, task_logits, arrays: ProfileArrays, params: dict):
    """(n, m) prior probabilities (torch tensors in and out); `params` holds u_subject, b_subject, u_task, b_task,
    lam and log_kappa. `subject_logits` (n, S) and `task_logits` (n, T) are the fixed prior's."""
    import torch
    t = _f64
    kappa = params["log_kappa"].exp()
    mean = t(arrays.mean)
    w = torch.softmax(subject_logits + feats @ params["u_subject"] + params["b_subject"], dim=1)
    n = t(arrays.n)
    shrunk = (n * t(arrays.acc) + kappa * mean) / (n + kappa).clamp_min(1e-9)
    subject_prior = w @ shrunk
    if task_logits.shape[1] == 0:
        return subject_prior
    p = torch.softmax(task_logits + feats @ params["u_task"] + params["b_task"], dim=1)
    tn = t(arrays.task_n)
    task_shrunk = (tn * t(arrays.task_acc) + kappa * mean) / (tn + kappa).clamp_min(1e-9)   # (T, m)
    has = t(arrays.has_task)
    lam = params["lam"].clamp(0.0, 1.0)[:, None]
    out = torch.zeros_like(subject_prior)
    for k in range(task_logits.shape[1]):
        blend = lam[k] * subject_prior + (1 - lam[k]) * task_shrunk[k]
        a = has[k] * blend + (1 - has[k]) * subject_prior
        out = out + p[:, [k]] * a
    return out


def score(feats: np.ndarray, subject_logits: np.ndarray, task_logits: np.ndarray, arrays: ProfileArrays,
          reading: LearnedReading) -> np.ndarray:
    """(n, m) the learned prior (numpy in, numpy out)."""
    import torch
    params = {"u_subject": reading.u_subject, "b_subject": reading.b_subject, "u_task": reading.u_task,
              "b_task": reading.b_task, "lam": reading.lam, "log_kappa": np.log(max(reading.kappa, 1e-9))}
    with torch.no_grad():
        out = forward(_f64(feats), _f64(subject_logits), _f64(task_logits), arrays,
                      {k: _f64(v) for k, v in params.items()})
    return out.numpy()


def learn(feats: np.ndarray, subject_logits: np.ndarray, task_logits: np.ndarray, arrays: ProfileArrays,
          scores: np.ndarray, lam0: np.ndarray, kappa0: float, steps: int, l2: float, lr: float,
          validation_fraction: float, seed: int) -> LearnedReading:
    """Fits the reading on `scores` ((n, m) items × the profiles' models, NaN = no result)."""
    import torch
    from modelsat.routers._training_data import validation_split
    d, S, T = feats.shape[1], subject_logits.shape[1], task_logits.shape[1]
    f64 = _f64
    params = {"u_subject": torch.zeros(d, S, dtype=torch.float64), "b_subject": torch.zeros(S, dtype=torch.float64),
              "u_task": torch.zeros(d, T, dtype=torch.float64), "b_task": torch.zeros(T, dtype=torch.float64),
              "lam": f64(lam0).clone(), "log_kappa": torch.tensor(float(np.log(min(max(kappa0, 1.0), KAPPA_START_MAX))),
                                            dtype=torch.float64),
              "log_alpha": torch.tensor(0.0, dtype=torch.float64), "gamma": torch.tensor(0.0, dtype=torch.float64)}
    for v in params.values():
        v.requires_grad_(True)
    x, sl, tl = f64(feats), f64(subject_logits), f64(task_logits)
    y = f64(np.nan_to_num(scores, nan=0.0))
    mask = f64(~np.isnan(scores))
    train, val = validation_split(len(feats), validation_fraction, seed)

    def loss_on(idx: np.ndarray, with_l2: bool):
        ii = torch.as_tensor(idx)
        q = forward(x[ii], sl[ii], tl[ii], arrays, params).clamp(1e-4, 1 - 1e-4)
        # a positive slope: the calibration may sharpen or flatten the prior, never turn it upside down
        z = params["log_alpha"].exp() * torch.log(q / (1 - q)) + params["gamma"]
        yy, mm = y[ii], mask[ii]
        bce = (torch.nn.functional.binary_cross_entropy_with_logits(z, yy, reduction="none") * mm).sum() / mm.sum()
        mass = (yy * mm).sum(1)
        keep = (mass > 0) & (mass < mm.sum(1))          # items the models do not all pass or all fail
        logp = torch.log_softmax(z.masked_fill(mm == 0, -1e9), dim=1)
        target = yy * mm / mass.clamp_min(1e-9)[:, None]
        listwise = -(target * logp).sum(1)[keep].mean() if bool(keep.any()) else torch.zeros((), dtype=torch.float64)
        total = listwise + bce
        if with_l2:
            total = total + l2 * (params["u_subject"].pow(2).sum() + params["u_task"].pow(2).sum())
        return total, float(listwise.detach()), float(bce.detach())

    opt = torch.optim.Adam(list(params.values()), lr=lr)
    with torch.no_grad():
        _, best_list, best_bce = loss_on(val, False)
    start = best = {"step": 0, "val_listwise": best_list, "val_bce": best_bce}
    best_state = {k: v.detach().clone() for k, v in params.items()}
    for step in range(1, steps + 1):
        opt.zero_grad()
        total, _, _ = loss_on(train, True)
        total.backward()
        opt.step()
        with torch.no_grad():
            params["lam"].clamp_(0.0, 1.0)
            if step % 10 == 0 or step == steps:
                _, vl, vb = loss_on(val, False)
                if vl + vb < best["val_listwise"] + best["val_bce"]:
                    best = {"step": step, "val_listwise": vl, "val_bce": vb}
                    best_state = {k: v.detach().clone() for k, v in params.items()}
    s = {k: v.numpy() for k, v in best_state.items()}
    history = {"start": start, "best": best, "steps": steps, "l2": l2, "lr": lr,
               "train_items": int(len(train)), "validation_items": int(len(val))}
    return LearnedReading(s["u_subject"], s["b_subject"], s["u_task"], s["b_task"], np.clip(s["lam"], 0, 1),
                          float(np.exp(s["log_kappa"])), history)
