"""`mf`: matrix factorisation in the style of RouteLLM's `mf` router and EmbedLLM.

Each training model has a learned embedding v_m; the instruction's MiniLM embedding x is projected by a
learned linear map W into the same space; P(correct) = sigmoid(w · (normalize(v_m) ⊙ W x) + b_m). This is
RouteLLM's MFModel (normalised model embedding, bias-free text projection, bias-free classifier) scored
pointwise as in EmbedLLM, plus a per-model bias b_m, trained with binary cross-entropy on every
(training item, training model) pair. A model has an embedding only if it was in training, so an unseen
model is refused (`needs_seen_models`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import DIM, embed
from modelsat.routers._training_data import item_table, load_torch_state, pointwise_pairs, torch_state
from modelsat.routers.base import Router, register


def build_mf(n_models: int, dim: int):
    import torch
    import torch.nn as nn

    class MFModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.model_embedding = nn.Embedding(n_models, dim)
            self.model_bias = nn.Embedding(n_models, 1)
            nn.init.zeros_(self.model_bias.weight)
            self.text_proj = nn.Linear(DIM, dim, bias=False)
            self.classifier = nn.Linear(dim, 1, bias=False)

        def forward(self, x, model_ids):
            v = torch.nn.functional.normalize(self.model_embedding(model_ids), dim=-1)
            return self.classifier(v * self.text_proj(x)).squeeze(-1) + self.model_bias(model_ids).squeeze(-1)

    return MFModel()


@register
class MatrixFactorizationRouter(Router):
    """Learned model embeddings × projected instruction embedding → P(correct); refuses unseen models."""

    name = "mf"
    scores_are_probabilities = True
    uses_embeddings = True
    needs_seen_models = True

    def __init__(self, dim: int = 64, epochs: int = 10, batch_size: int = 512, lr: float = 3e-3,
                 weight_decay: float = 1e-5, max_pairs: int | None = None, seed: int = 0):
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_pairs = max_pairs
        self.seed = seed

    @classmethod
    def for_tests(cls) -> "MatrixFactorizationRouter":
        return cls(dim=16, epochs=40, batch_size=32, lr=1e-2)

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "MatrixFactorizationRouter":
        import torch
        table = item_table(records, self.name)
        self.models_ = table.models
        x = embed(table.prompts)
        items, models = pointwise_pairs(len(x), len(self.models_), self.max_pairs, self.seed)
        y = table.scores[items, models]
        keep = ~np.isnan(y)
        xs = torch.from_numpy(x[items[keep]].astype(np.float32))
        ms = torch.from_numpy(models[keep].astype(np.int64))
        target = torch.from_numpy(y[keep].astype(np.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = build_mf(len(self.models_), self.dim)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            gen = torch.Generator().manual_seed(self.seed)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            for _ in range(self.epochs):
                order = torch.randperm(len(target), generator=gen)
                for start in range(0, len(order), self.batch_size):
                    b = order[start:start + self.batch_size]
                    opt.zero_grad()
                    loss = loss_fn(net(xs[b], ms[b]), target[b])
                    loss.backward()
                    opt.step()
        self.net_ = net.eval()
        self.train_loss_ = float(loss.item())
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        import torch
        self.check_fitted("net_")
        self.check_candidates(candidates, self.models_)
        x = torch.from_numpy(embed(list(instructions)).astype(np.float32))
        n, m = len(instructions), len(candidates)
        ids = torch.tensor([self.models_.index(c.model) for c in candidates], dtype=torch.int64)
        with torch.inference_mode():
            logits = self.net_(x.repeat_interleave(m, dim=0), ids.repeat(n))
        return torch.sigmoid(logits).numpy().reshape(n, m).astype(np.float64)

    def _get_state(self):
        return torch_state(self.net_), {"models": self.models_}

    def _set_state(self, arrays, extra):
        self.models_ = list(extra["models"])
        self.net_ = build_mf(len(self.models_), self.dim)
        load_torch_state(self.net_, arrays)
        self.net_.eval()
