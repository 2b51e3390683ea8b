"""`routerdc`: RouterDC's dual-contrastive router (Chen et al., NeurIPS 2024), on a CPU budget.

As in RouterDC's `train_router_mdeberta.py`: an instruction encoder gives h(x); each training model has a
learned embedding k_m (init N(0, 0.78²)); the score is cos(h(x), k_m) / t. Two losses:

- sample-LLM contrastive: for each of the top_k best models of an item (skipped when its score is 0), the
  softmax over [that positive, the last_k worst models] should pick the positive; a "negative" that itself
  scored > 0.5 is masked out.
- sample-sample contrastive over instruction clusters (RouterDC's `compute_cluster_loss`): for each sample, one
  sample of the same k-means cluster in the batch is the positive and H samples of other clusters the
  negatives, on cosine similarities of h(x).

Departure, said plainly: RouterDC fine-tunes the whole mDeBERTa encoder; here the encoder is the frozen
MiniLM embedding (`modelsat.embeddings`) followed by a trainable two-layer projection, so it trains on a CPU in
seconds; the projection starts from scratch, hence a larger learning rate than RouterDC's 5e-5. Batches are
drawn with each benchmark equally likely, as RouterDC samples a fixed number of items per training dataset.
Learned model embeddings: an unseen model is refused (`needs_seen_models`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile
from modelsat.embeddings import DIM, embed
from modelsat.routers._training_data import item_table, load_torch_state, torch_state
from modelsat.routers.base import Router, register


def build_routerdc(n_models: int, hidden: int, dim: int):
    import torch
    import torch.nn as nn

    class DualContrastiveRouter(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(DIM, hidden), nn.GELU(), nn.Linear(hidden, dim))
            self.embeddings = nn.Embedding(n_models, dim)
            with torch.no_grad():
                nn.init.normal_(self.embeddings.weight, mean=0.0, std=0.78)

        def forward(self, x, t: float = 1.0):
            h = self.encoder(x)
            sim = torch.nn.functional.normalize(h, dim=-1) @ torch.nn.functional.normalize(
                self.embeddings.weight, dim=-1).T
            return sim / t, h

    return DualContrastiveRouter()


def sample_llm_loss(logits, scores, top_k: int, last_k: int):
    """RouterDC's sample-LLM contrastive loss (eq. 3 of the paper; `compute_sample_llm_loss`)."""
    import torch
    loss = logits.new_zeros(())
    top_true, top_index = scores.sort(dim=-1, descending=True)
    last_true, neg_index = scores.topk(k=last_k, largest=False, dim=-1)
    last_x = torch.gather(logits, 1, neg_index)
    last_x = torch.where(last_true > 0.5, torch.full_like(last_x, float("-inf")), last_x)
    for i in range(top_k):
        mask = (top_true[:, i] > 0).to(logits.dtype)
        top_x = torch.gather(logits, 1, top_index[:, i:i + 1])
        log_p = torch.log_softmax(torch.cat([top_x, last_x], dim=-1), dim=-1)[:, 0]
        loss = loss + torch.mean(-log_p * mask)
    return loss


def cluster_loss(h, cluster_ids: np.ndarray, n_negatives: int, rng: np.random.Generator):
    """RouterDC's sample-sample contrastive loss over instruction clusters (`compute_cluster_loss`)."""
    import torch
    hn = torch.nn.functional.normalize(h, dim=-1)
    sim = hn @ hn.T
    rows = []
    for c in cluster_ids:
        pos = np.flatnonzero(cluster_ids == c)
        neg = np.flatnonzero(cluster_ids != c)
        if len(neg) < n_negatives:
            rows.append(None)
            continue
        rows.append(np.concatenate([[rng.choice(pos)], rng.choice(neg, size=n_negatives, replace=False)]))
    keep = [i for i, r in enumerate(rows) if r is not None]
    if not keep:
        return h.new_zeros(())
    index = torch.from_numpy(np.stack([rows[i] for i in keep]).astype(np.int64))
    picked = torch.gather(sim[keep], 1, index)
    return torch.mean(-torch.log_softmax(picked, dim=-1)[:, 0])


@register
class RouterDCStyleRouter(Router):
    """Dual-contrastive router: frozen MiniLM + trainable projection, learned model embeddings."""

    name = "routerdc"
    uses_embeddings = True
    needs_seen_models = True

    def __init__(self, hidden: int = 256, dim: int = 128, steps: int = 1000, batch_size: int = 64,
                 lr: float = 1e-3, top_k: int = 3, last_k: int = 3, temperature: float = 1.0,
                 cluster_loss_weight: float = 1.0, n_clusters: int = 20, n_negatives: int = 3,
                 balance_benchmarks: bool = True, seed: int = 0):
        self.hidden = hidden
        self.dim = dim
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.top_k = top_k
        self.last_k = last_k
        self.temperature = temperature
        self.cluster_loss_weight = cluster_loss_weight
        self.n_clusters = n_clusters
        self.n_negatives = n_negatives
        self.balance_benchmarks = balance_benchmarks
        self.seed = seed

    @classmethod
    def for_tests(cls) -> "RouterDCStyleRouter":
        return cls(hidden=32, dim=16, steps=150, batch_size=16, lr=3e-3, n_clusters=3)

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "RouterDCStyleRouter":
        import torch
        from sklearn.cluster import KMeans
        table = item_table(records, self.name)
        self.models_ = table.models
        m = len(self.models_)
        x = embed(table.prompts)
        scores = table.filled_scores
        n_clusters = max(1, min(self.n_clusters, len(x)))
        clusters = KMeans(n_clusters=n_clusters, n_init=3, random_state=self.seed).fit_predict(x)
        bench = np.array(table.benchmark)
        if self.balance_benchmarks:
            counts = pd.Series(bench).value_counts()
            weights = 1.0 / counts[bench].to_numpy()
        else:
            weights = np.ones(len(x))
        weights = weights / weights.sum()
        top_k, last_k = max(1, min(self.top_k, m - 1)), max(1, min(self.last_k, m - 1))
        xs, ss = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(scores.astype(np.float32))
        rng = np.random.default_rng(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = build_routerdc(m, self.hidden, self.dim)
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr)
            for _ in range(self.steps):
                b = rng.choice(len(x), size=min(self.batch_size, len(x)), replace=False, p=weights)
                opt.zero_grad()
                logits, h = net(xs[b], self.temperature)
                loss = sample_llm_loss(logits, ss[b], top_k, last_k)
                if self.cluster_loss_weight:
                    loss = loss + self.cluster_loss_weight * cluster_loss(h, clusters[b], self.n_negatives, rng)
                loss.backward()
                opt.step()
        self.net_ = net.eval()
        self.train_loss_ = float(loss.item())
        return self

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        import torch
        self.check_fitted("net_")
        self.check_candidates(candidates, self.models_)
        cols = [self.models_.index(c.model) for c in candidates]
        with torch.inference_mode():
            logits, _ = self.net_(torch.from_numpy(embed(list(instructions)).astype(np.float32)),
                                  self.temperature)
        return logits.numpy()[:, cols].astype(np.float64)

    def _get_state(self):
        return torch_state(self.net_), {"models": self.models_}

    def _set_state(self, arrays, extra):
        self.models_ = list(extra["models"])
        self.net_ = build_routerdc(len(self.models_), self.hidden, self.dim)
        load_torch_state(self.net_, arrays)
        self.net_.eval()
