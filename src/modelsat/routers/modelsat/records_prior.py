"""An optional update of the profile prior by a candidate's own training records near the instruction
(`model.prior_records`).

The profile prior p reads a candidate's aptitude test at the instruction's subjects; where the router holds
records of that candidate (a training model), its results on the k training items most similar to the
instruction are further evidence. Read as a Beta(κp, κ(1−p)) prior updated by those results:

    p' = (Σ results of the k neighbours + κ·p) / (number of neighbours with a result + κ)

A candidate known only by its profile moves by the mean log-odds shift of the models the records hold (see
`update`). k and κ are chosen on the training records themselves, each item's neighbours leaving it out, by
the model-contrastive likelihood (`contrastive_log_loss`: which models got the item right, given that some
did and some did not), which rests on hundreds of items × every training model rather than a few hundred
routed validation items, and ignores what neighbours say about an item's difficulty; the largest κ in the grid
means "no update", so the records are used only where they tell models apart better than the profile. This is
the kNN router's evidence (`routers/knn.py`) folded into the prior the LM reads and corrects. The neighbours
are found on MiniLM embeddings.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile

K_GRID = (20, 40, 80, 160)
STRENGTH_GRID = (10.0, 30.0, 100.0, 300.0, 1e9)   # κ: how many neighbour results the profile prior weighs as
SELECTION_ITEMS = 600                             # training items the leave-one-out likelihood is taken over
LIKELIHOOD_FLOOR = 0.02


def text_key(text: str) -> str:
    """A short digest of an instruction (the router keeps digests of its training prompts, not the prompts)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def encode(texts: Sequence[str]) -> np.ndarray:
    """(n, d) unit-norm MiniLM embeddings of `texts`."""
    from modelsat.embeddings import embed
    return embed(list(texts))


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """(n, d) int8 codes of the rows of `x`, each row rounded to 2**(bits-1) - 1 levels of its own largest
    |value| (8 bits: -127..127, 4 bits: -7..7). Only directions matter (the neighbours are found by cosine),
    so no scale is kept: `dequantize` returns the unit rows, and quantizing those again gives the same codes."""
    levels = 2 ** (bits - 1) - 1
    scale = np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12) / levels
    return np.clip(np.rint(x / scale), -levels, levels).astype(np.int8)


def dequantize(codes: np.ndarray) -> np.ndarray:
    """The unit rows `quantize` rounded."""
    return _unit(codes.astype(np.float32))


def pack4(codes: np.ndarray) -> np.ndarray:
    """(n, ceil(d/2)) uint8: two 4-bit codes (-7..7, stored as 1..15) a byte."""
    nibbles = (codes.astype(np.int16) + 8).astype(np.uint8)
    if nibbles.shape[1] % 2:
        nibbles = np.pad(nibbles, ((0, 0), (0, 1)), constant_values=8)
    return (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]


def unpack4(packed: np.ndarray, dims: int) -> np.ndarray:
    """The (n, dims) int8 codes `pack4` packed."""
    nibbles = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.int16)
    nibbles[:, 0::2], nibbles[:, 1::2] = packed >> 4, packed & 0x0F
    return (nibbles[:, :dims] - 8).astype(np.int8)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def contrastive_log_loss(prior: np.ndarray, truth: np.ndarray) -> float:
    """How well `prior` (n, m) tells apart, item by item, the models that answered right from those that did not:
    the mean over items with both of −log softmax_j(logit prior_ij) over the right models j, among the models
    with a result (eq. 5's model-contrastive reading). What every model shares on an item (its difficulty)
    cancels in the softmax, so a neighbourhood that only says "this is hard" earns nothing: routing is a
    choice between models, not a forecast of the item."""
    return _mean_loss(contrastive_log_losses(prior, truth))


def _mean_loss(losses: np.ndarray) -> float:
    """The mean of per-item losses; 0 where no item tells models apart."""
    return float(losses.mean()) if len(losses) else 0.0


def contrastive_log_losses(prior: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """`contrastive_log_loss` item by item: one value per item of `truth` with both right and wrong models (the
    same items for every `prior`, so two priors' losses pair up)."""
    logits = np.where(np.isnan(truth), -np.inf, _logit(np.clip(prior, LIKELIHOOD_FLOOR, 1 - LIKELIHOOD_FLOOR)))
    y = np.nan_to_num(truth, nan=0.0)
    known = ~np.isnan(truth)
    right, n = (y * known).sum(axis=1), known.sum(axis=1)
    use = (right > 0) & (right < n)
    if not use.any():
        return np.zeros(0)
    logits = logits[use]
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    log_p = np.where(known[use], logits - log_norm[:, None], 0.0)
    return -(y[use] * log_p).sum(axis=1) / right[use]


class RecordsPrior:
    """The training items' embeddings and every training model's results on them, with the chosen k and κ."""

    def __init__(self, embeddings: np.ndarray, scores: np.ndarray, models: Sequence[str], keys: Sequence[str],
                 k: int, strength: float, bits: int = 32):
        # C order: safetensors writes the raw buffer, and a column selection can come back in Fortran order
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.bits = int(bits)
        self.codes = None
        if self.bits < 32:        # the rows as they are kept (`model.prior_records_bits`), results in float16
            self.codes = quantize(self.embeddings, self.bits)
            self.embeddings = dequantize(self.codes)
            scores = np.asarray(scores, dtype=np.float16)
        self.scores = np.ascontiguousarray(scores, dtype=np.float32)   # (n_items, n_models), NaN = no result
        self.models, self.keys = list(models), list(keys)
        self.k, self.strength = int(k), float(strength)
        self._rows: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            self._rows.setdefault(key, []).append(i)

    @staticmethod
    def _nearest_update(sums: np.ndarray, counts: np.ndarray, kappa: float, base: np.ndarray) -> np.ndarray:
        """`base` updated by the k nearest's (sums, counts) with weight κ: the Beta update."""
        return (sums + kappa * base) / (counts + kappa)

    @classmethod
    def fit(cls, records: pd.DataFrame, profiles: Sequence[Profile],
            base_prior: Callable[[Sequence[str], Sequence[Profile]], np.ndarray], seed: int = 0,
            bits: int = 32) -> tuple["RecordsPrior", dict]:
        """The records prior of `records` (training items only) with k and κ chosen by leave-one-out
        model-contrastive likelihood on at most SELECTION_ITEMS of them; returns it and what the choice saw.
        `bits` < 32: the training items' features are rounded (`quantize`) before anything is chosen on them, so
        the saved prior is the fitted one."""
        from modelsat.routers._training_data import item_table
        table = item_table(records, "modelsat prior_records")
        by_name = {p.model: p for p in profiles}
        cols = [j for j, m in enumerate(table.models) if m in by_name]
        models = [table.models[j] for j in cols]
        feats = encode(table.prompts)
        rng = np.random.default_rng(seed + 17)
        rows = selection_rows(len(table.prompts), rng)
        cands = [by_name[m] for m in models]
        prior = cls(feats, table.scores[:, cols], models, [text_key(t) for t in table.prompts], K_GRID[0],
                    STRENGTH_GRID[-1], bits=bits)
        prompts = [table.prompts[i] for i in rows]
        base, truth = np.asarray(base_prior(prompts, cands), dtype=np.float64), prior.scores[rows]
        loss: dict[tuple, float] = {}
        for k in K_GRID:
            prior.k = k
            sums, counts = prior._neighbours(prompts, feats[rows])     # the selection items' own features
            for kappa in STRENGTH_GRID:
                loss[(k, kappa)] = contrastive_log_loss(prior._nearest_update(sums, counts, kappa, base), truth)
        prior.k, prior.strength = min(loss, key=lambda kk: (loss[kk], -kk[1], kk[0]))
        info = {"by": "leave-one-out model-contrastive likelihood", "items": len(rows),
                **({"bits": bits} if bits < 32 else {}), "k": prior.k, "strength": prior.strength,
                "log_loss": {f"k={k},kappa={kappa:g}": round(v, 5) for (k, kappa), v in loss.items()}}
        return prior, info

    def _neighbours(self, instructions: Sequence[str],
                    x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sums, counts) of every model's results over each instruction's k nearest training items (on
        features `x`, else `encode(instructions)`), an instruction's own item (same text) left out."""
        from modelsat.routers.knn import neighbour_sums
        exclude = [self._rows.get(text_key(t), ()) for t in instructions]
        x = encode(instructions) if x is None else x
        return neighbour_sums(x, self.embeddings, self.scores, self.k, exclude=exclude)

    def update(self, instructions: Sequence[str], candidates: Sequence[Profile], base: np.ndarray,
               base_known: np.ndarray | None = None) -> np.ndarray:
        """(n, m) `base` with every candidate the records hold updated by its neighbours' results.

        `base_known` (n, len(models)): the base prior of every model the records hold. Given it, a candidate
        the records lack is moved by the mean log-odds shift the update gives those models: how much easier
        or harder the instruction's neighbourhood is than its subjects, for everyone. Without it an item
        harder than its subject would lower every trained model's prior and leave a newcomer's, so a newcomer
        would win the hard items and lose the easy ones on difficulty alone."""
        out = np.array(base, dtype=np.float64, copy=True)
        cols = [(j, self.models.index(c.model)) for j, c in enumerate(candidates) if c.model in self.models]
        if not len(instructions) or self.strength >= STRENGTH_GRID[-1]:
            return out
        new = [j for j, c in enumerate(candidates) if c.model not in self.models]
        if not cols and (base_known is None or not new):
            return out
        sums, counts = self._neighbours(instructions)

        def updated(prior: np.ndarray, columns: Sequence[int]) -> np.ndarray:
            return self._nearest_update(sums[:, columns], counts[:, columns], self.strength,
                                        np.asarray(prior, dtype=np.float64))
        if cols:
            js, col_ids = [j for j, _ in cols], [col for _, col in cols]
            out[:, js] = updated(out[:, js], col_ids)
        if new and base_known is not None:
            known = np.clip(np.asarray(base_known, dtype=np.float64), LIKELIHOOD_FLOOR, 1 - LIKELIHOOD_FLOOR)
            moved = np.clip(updated(known, list(range(len(self.models)))), LIKELIHOOD_FLOOR, 1 - LIKELIHOOD_FLOOR)
            shift = (_logit(moved) - _logit(known)).mean(axis=1)
            for j in new:
                p = np.clip(out[:, j], LIKELIHOOD_FLOOR, 1 - LIKELIHOOD_FLOOR)
                out[:, j] = 1 / (1 + np.exp(-(_logit(p) + shift)))
        return out

    # ---- files ---------------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays for safetensors, JSON-able rest)."""
        arrays = {"embeddings": self.embeddings, "scores": self.scores}
        if self.bits < 32:
            arrays = {"embeddings": self.codes if self.bits == 8 else pack4(self.codes),
                      "scores": self.scores.astype(np.float16)}
        return (arrays, {"models": self.models, "keys": self.keys, "k": self.k, "strength": self.strength,
                         "bits": self.bits, "dims": int(self.embeddings.shape[1])})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], extra: dict) -> "RecordsPrior":
        removed = [name for name in ("center", "labels", "expected") if name in arrays]
        if extra.get("features", "minilm") != "minilm" or extra.get("category_strength", 1e9) < 1e9 or removed:
            raise KeyError("a records prior saved with an option since removed (static features, a label step or "
                           "residuals; docs/experiments/removed-options.md)")
        bits = int(extra.get("bits", 32))
        embeddings = arrays["embeddings"]
        if bits < 32:             # codes → the unit rows they round (quantizing those again gives the codes)
            codes = embeddings if bits == 8 else unpack4(embeddings, int(extra["dims"]))
            embeddings = dequantize(codes)
        return cls(embeddings, arrays["scores"], extra["models"], extra["keys"], extra["k"], extra["strength"],
                   bits=bits)


def selection_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """The sorted rows the leave-one-out likelihood is taken over: all n when there are at most SELECTION_ITEMS,
    else SELECTION_ITEMS at random."""
    if n <= SELECTION_ITEMS:
        return np.arange(n)
    return np.sort(rng.choice(n, SELECTION_ITEMS, replace=False))
