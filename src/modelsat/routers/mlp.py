"""`mlp`: a small neural net predicts P(correct) from [instruction embedding, candidate profile vector].

The profile vector is the candidate's per-subject accuracy in a fixed subject order (the sorted union of the
training profiles' subjects, kept in the state); a subject a profile lacks gets its mean accuracy. Because a
candidate enters only through its profile, it scores models never seen in training (the paper's Table 2
class of baselines). Trained with BCE on a seeded sample of (item, training model) pairs, on CPU in seconds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import embed
from modelsat.routers._training_data import (item_table, load_torch_state, pointwise_pairs, profile_vectors,
                                             profiles_by_model, subject_order, torch_state)
from modelsat.routers.base import Router, register


def build_net(n_inputs: int, hidden: int):
    import torch.nn as nn
    return nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


def pair_features(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(n, m, d_x + d_p) features of every (instruction, candidate) pair."""
    n, m = len(x), len(p)
    return np.concatenate([np.repeat(x[:, None, :], m, axis=1), np.repeat(p[None, :, :], n, axis=0)], axis=2)


@register
class MLPRouter(Router):
    """Pointwise MLP over [instruction embedding, profile accuracy vector]; scores unseen models."""

    name = "mlp"
    scores_are_probabilities = True
    uses_embeddings = True

    def __init__(self, hidden: int = 128, epochs: int = 6, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 1e-4, max_pairs: int | None = 60000, seed: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_pairs = max_pairs
        self.seed = seed

    @classmethod
    def for_tests(cls) -> "MLPRouter":
        return cls(hidden=32, epochs=20, batch_size=32)

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "MLPRouter":
        import torch
        table = item_table(records, self.name)
        self.subjects_ = subject_order(profiles)
        pvec = profile_vectors(profiles_by_model(profiles, table.models, self.name), self.subjects_)
        x = embed(table.prompts)
        items, models = pointwise_pairs(len(x), len(table.models), self.max_pairs, self.seed)
        y = table.scores[items, models]
        keep = ~np.isnan(y)
        items, models, y = items[keep], models[keep], y[keep]
        feats = torch.from_numpy(np.concatenate([x[items], pvec[models]], axis=1).astype(np.float32))
        target = torch.from_numpy(y.astype(np.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = build_net(feats.shape[1], self.hidden)
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            gen = torch.Generator().manual_seed(self.seed)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            for _ in range(self.epochs):
                order = torch.randperm(len(target), generator=gen)
                for start in range(0, len(order), self.batch_size):
                    b = order[start:start + self.batch_size]
                    opt.zero_grad()
                    loss = loss_fn(net(feats[b]).squeeze(-1), target[b])
                    loss.backward()
                    opt.step()
        self.net_ = net.eval()
        self.n_inputs_ = int(feats.shape[1])
        self.train_loss_ = float(loss.item())
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        import torch
        self.check_fitted("net_")
        feats = pair_features(embed(list(instructions)), profile_vectors(candidates, self.subjects_))
        with torch.inference_mode():
            logits = self.net_(torch.from_numpy(feats.reshape(-1, feats.shape[-1]).astype(np.float32)))
        return torch.sigmoid(logits).numpy().reshape(len(instructions), len(candidates)).astype(np.float64)

    def _get_state(self):
        return torch_state(self.net_), {"subjects": self.subjects_, "n_inputs": self.n_inputs_}

    def _set_state(self, arrays, extra):
        self.subjects_, self.n_inputs_ = list(extra["subjects"]), int(extra["n_inputs"])
        self.net_ = build_net(self.n_inputs_, self.hidden)
        load_torch_state(self.net_, arrays)
        self.net_.eval()
