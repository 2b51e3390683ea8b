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
the kNN router's evidence (`routers/knn.py`) folded into the prior the LM reads and corrects. With
`model.prior_records_gate` the grid's best setting is kept only when its gain over no update, item by item on
the selection items, has a 95 % interval above zero: the smallest of 20 losses on a few hundred items is partly
luck, and an update that is not shown to help only moves the prior.

Optionally (`model.prior_records_category`) a coarser neighbourhood comes first: the training items of the
instruction's predicted label (the records' category, else benchmark, else subject, as `per-category` picks it;
a logistic regression on the same features predicts it). The chain is profile → label → nearest items:

    p1 = (Σ results over the label's training items + κc·p) / (their count + κc),   p' = the update above of p1

so a RouterDC-style zoo, whose benchmarks each have their own best model, reads that per-benchmark evidence
(thousands of items) and the k neighbours refine it. κc is chosen with k and κ by the same likelihood; its
largest value means "no label update". The selection items' labels are predicted by a classifier fitted
without them.

With `model.prior_records_residual` the k nearest move the prior by their residuals instead: each neighbour n
holds, besides every model's result y_n, the profile prior p_n the router gave it (its own subjects and task), and

    p' = p + Σ (y_n − p_n) / (number of neighbours with a result + κ)

so a neighbour from another benchmark (a GSM8K item near a maths-flavoured MMLU item) says how a model did against
what its prior expected there, not how good the model is at GSM8K; within one benchmark, where p_n ≈ p, it is the
update above. κ and k are chosen as above.

The neighbours are found on MiniLM embeddings, or (`model.prior_records_features: static`) on the static
features centred on the training items, which need no encoder forward but find neighbours too loosely: on the
shipped preset that routed worse than no update (README, "What was tried", row 23).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile

K_GRID = (20, 40, 80, 160)
STRENGTH_GRID = (10.0, 30.0, 100.0, 300.0, 1e9)   # κ: how many neighbour results the profile prior weighs as
CATEGORY_STRENGTH_GRID = (30.0, 300.0, 3000.0, 1e9)  # κc: how many of the label's results the profile weighs as
SELECTION_ITEMS = 600                             # training items the leave-one-out likelihood is taken over
LIKELIHOOD_FLOOR = 0.02


def text_key(text: str) -> str:
    """A short digest of an instruction (the router keeps digests of its training prompts, not the prompts)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def encode(texts: Sequence[str], features: str, center: np.ndarray | None = None) -> np.ndarray:
    """(n, d) unit-norm features of `texts`: MiniLM embeddings, or static ones less `center`."""
    if features == "minilm":
        from modelsat.embeddings import embed
        return embed(list(texts))
    from modelsat.embeddings import static_encode
    return _unit(static_encode(list(texts)) - center)


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


def paired_gain(without: np.ndarray, with_: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of the per-item loss reduction `without − with_`, a normal 95 % interval."""
    d = np.asarray(without, dtype=np.float64) - np.asarray(with_, dtype=np.float64)
    if len(d) < 2:
        return float(d.mean()) if len(d) else 0.0, -np.inf, np.inf
    half = 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean()) - half, float(d.mean()) + half


class RecordsPrior:
    """The training items' embeddings and every training model's results on them, with the chosen k and κ."""

    def __init__(self, embeddings: np.ndarray, scores: np.ndarray, models: Sequence[str], keys: Sequence[str],
                 k: int, strength: float, features: str = "minilm", center: np.ndarray | None = None,
                 labels: np.ndarray | None = None, label_coef: np.ndarray | None = None,
                 label_intercept: np.ndarray | None = None, category_strength: float = 1e9, bits: int = 32,
                 expected: np.ndarray | None = None):
        # C order: safetensors writes the raw buffer, and a column selection can come back in Fortran order
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.bits = int(bits)
        self.codes = None
        if self.bits < 32:        # the rows as they are kept (`model.prior_records_bits`), results in float16
            self.codes = quantize(self.embeddings, self.bits)
            self.embeddings = dequantize(self.codes)
            scores = np.asarray(scores, dtype=np.float16)
            expected = None if expected is None else np.asarray(expected, dtype=np.float16)
        self.features = features
        self.center = None if center is None else np.ascontiguousarray(center, dtype=np.float32)
        self.scores = np.ascontiguousarray(scores, dtype=np.float32)   # (n_items, n_models), NaN = no result
        # residual mode (`model.prior_records_residual`): the profile prior at each training item, same shape
        self.expected = None if expected is None else np.ascontiguousarray(expected, dtype=np.float32)
        if self.expected is not None and self.expected.shape != self.scores.shape:
            raise ValueError(f"expected {self.expected.shape} does not match scores {self.scores.shape}")
        self._nearest_scores = self.scores if self.expected is None else self.scores - self.expected
        self.models, self.keys = list(models), list(keys)
        self.k, self.strength = int(k), float(strength)
        self._rows: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            self._rows.setdefault(key, []).append(i)
        self.category_strength = float(category_strength)
        self.labels = None if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
        self.label_coef = None if label_coef is None else np.ascontiguousarray(label_coef, dtype=np.float32)
        self.label_intercept = (None if label_intercept is None
                                else np.ascontiguousarray(label_intercept, dtype=np.float32))
        if self.labels is not None:
            n_labels = int(self.labels.max()) + 1
            known, filled = ~np.isnan(self.scores), np.nan_to_num(self.scores, nan=0.0)
            self._label_sums = np.stack([filled[self.labels == c].sum(axis=0) for c in range(n_labels)])
            self._label_counts = np.stack([known[self.labels == c].sum(axis=0) for c in range(n_labels)])

    @property
    def residual(self) -> bool:
        """Whether the k nearest move the prior by their residuals (y − the prior at the neighbour)."""
        return self.expected is not None

    def _nearest_update(self, sums: np.ndarray, counts: np.ndarray, kappa: float, base: np.ndarray) -> np.ndarray:
        """`base` updated by the k nearest's (sums, counts) with weight κ: the Beta update, or in residual mode
        the base moved by the residuals' sum over (count + κ)."""
        if self.residual:
            return base + sums / (counts + kappa)
        return (sums + kappa * base) / (counts + kappa)

    @property
    def uses_labels(self) -> bool:
        """Whether the label update is on (fitted with labels and a finite κc)."""
        return self.labels is not None and self.category_strength < CATEGORY_STRENGTH_GRID[-1]

    @classmethod
    def fit(cls, records: pd.DataFrame, profiles: Sequence[Profile],
            base_prior: Callable[[Sequence[str], Sequence[Profile]], np.ndarray], seed: int = 0,
            features: str = "minilm", category: bool = False,
            balanced: bool = False, gate: bool = False, bits: int = 32,
            residual: bool = False) -> tuple["RecordsPrior", dict]:
        """The records prior of `records` (training items only) with k and κ chosen by leave-one-out
        model-contrastive likelihood on at most SELECTION_ITEMS of them; returns it and what the choice saw.
        `features`: "minilm" (MiniLM embeddings) or "static" (`embeddings.static_encode`, centred on the
        training items: a bag of word vectors shares one large direction, which would otherwise decide the
        neighbours). `category`: also weigh the label update (κc chosen with k and κ; the module's docstring).
        `balanced`: the selection items are drawn evenly from each benchmark (`selection_rows`). `gate`: keep the
        profile prior (no update) unless the chosen update's likelihood gain over it, item by item on the
        selection items, has a 95 % interval above zero: the smallest loss of 20 or 80 settings is partly luck,
        and an update that is not shown to help only moves the prior. `bits` < 32: the training items' features
        are rounded (`quantize`) before anything is chosen on them, so the saved prior is the fitted one.
        `residual`: the k nearest move the prior by their residuals against `base_prior` at each training item
        (the module's docstring), which is computed here for every training item."""
        from modelsat.routers._training_data import item_table
        table = item_table(records, "modelsat prior_records")
        by_name = {p.model: p for p in profiles}
        cols = [j for j, m in enumerate(table.models) if m in by_name]
        models = [table.models[j] for j in cols]
        center = None
        if features == "static":
            from modelsat.embeddings import static_encode
            raw = static_encode(table.prompts)
            center = raw.mean(axis=0)
            feats = _unit(raw - center)
        else:
            feats = encode(table.prompts, features)
        rng = np.random.default_rng(seed + 17)
        rows = selection_rows(table.benchmark, rng, balanced)
        labels = coef = intercept = None
        label_info: dict = {}
        if category:
            from modelsat.routers.per_category import choose_labels
            label_used, names = choose_labels(table, "auto")
            label_names = sorted(set(names))
            if len(label_names) > 1:
                labels = np.array([label_names.index(v) for v in names])
                # each selection item's label is predicted by a classifier fitted without it (two random
                # folds: the items come in benchmark order, so halves in order would each lack labels)
                selection_labels = np.empty(len(rows), dtype=np.int64)
                for fold in np.array_split(rng.permutation(len(rows)), 2):
                    rest = np.setdiff1d(np.arange(len(labels)), rows[fold])
                    held_coef, held_intercept = _fit_labels(feats[rest], labels[rest], len(label_names), seed)
                    selection_labels[fold] = np.argmax(feats[rows[fold]] @ held_coef.T + held_intercept, axis=1)
                coef, intercept = _fit_labels(feats, labels, len(label_names), seed)
                label_info = {"label": label_used, "labels": label_names,
                              "label_accuracy": round(float(np.mean(selection_labels == labels[rows])), 4)}
        cands = [by_name[m] for m in models]
        expected = None
        if residual:      # the prior each training item had, for each model (NaN where the model has no result)
            expected = np.asarray(base_prior(table.prompts, cands), dtype=np.float64)
            expected = np.where(np.isnan(table.scores[:, cols]), np.nan, expected)
        prior = cls(feats, table.scores[:, cols], models, [text_key(t) for t in table.prompts], K_GRID[0],
                    STRENGTH_GRID[-1], features=features, center=center, labels=labels, label_coef=coef,
                    label_intercept=intercept, bits=bits, expected=expected)
        prompts = [table.prompts[i] for i in rows]
        base, truth = np.asarray(base_prior(prompts, cands), dtype=np.float64), prior.scores[rows]
        label_grid = CATEGORY_STRENGTH_GRID if labels is not None else CATEGORY_STRENGTH_GRID[-1:]
        firsts = {}
        if labels is not None:
            label_sums, label_counts = prior._label_neighbours(prompts, selection_labels)
        for kappa_c in label_grid:
            firsts[kappa_c] = (base if kappa_c >= CATEGORY_STRENGTH_GRID[-1]
                               else (label_sums + kappa_c * base) / (label_counts + kappa_c))
        losses: dict[tuple, np.ndarray] = {}
        for k in K_GRID:
            prior.k = k
            sums, counts = prior._neighbours(prompts, feats[rows])     # the selection items' own features
            for kappa_c, first in firsts.items():
                for kappa in STRENGTH_GRID:
                    losses[(k, kappa, kappa_c)] = contrastive_log_losses(
                        prior._nearest_update(sums, counts, kappa, first), truth)
        loss = {kk: _mean_loss(v) for kk, v in losses.items()}
        order = lambda kk: (loss[kk], -kk[2], -kk[1], kk[0])                                  # noqa: E731
        chosen = min(loss, key=order)
        gate_info: dict = {}
        if gate:
            none = min((kk for kk in loss if kk[1] >= STRENGTH_GRID[-1] and kk[2] >= CATEGORY_STRENGTH_GRID[-1]),
                       key=order)
            gain, low, high = paired_gain(losses[none], losses[chosen])
            kept = chosen == none or low > 0
            gate_info = {"gate": {"best": _loss_key(*chosen, labels is not None), "gain": round(float(gain), 5),
                                  "low": round(float(low), 5), "high": round(float(high), 5),
                                  "update": bool(kept and chosen != none)}}
            chosen = chosen if kept else none
        (prior.k, prior.strength, prior.category_strength) = chosen
        info = {"by": "leave-one-out model-contrastive likelihood", "items": len(rows),
                **({"bits": bits} if bits < 32 else {}),
                **({"selection": "balanced by benchmark"} if balanced else {}),
                **({"residual": True} if residual else {}), "k": prior.k,
                "strength": prior.strength, "features": features, **label_info, **gate_info,
                "log_loss": {_loss_key(k, kappa, kappa_c, labels is not None): round(v, 5)
                             for (k, kappa, kappa_c), v in loss.items()}}
        if labels is not None:
            info["category_strength"] = prior.category_strength
        return prior, info

    def _label_neighbours(self, instructions: Sequence[str], predicted: np.ndarray | None = None,
                          x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sums, counts) of every model's results over the training items of each instruction's predicted
        label (`predicted`, else the classifier's on features `x`, else on `encode(instructions)`), an
        instruction's own item (same text) left out."""
        if predicted is None:
            x = self.encode(instructions) if x is None else x
            predicted = np.argmax(x @ self.label_coef.T + self.label_intercept, axis=1)
        sums = self._label_sums[predicted].astype(np.float64)
        counts = self._label_counts[predicted].astype(np.float64)
        for i, text in enumerate(instructions):
            for row in self._rows.get(text_key(text), ()):
                if self.labels[row] == predicted[i]:
                    sums[i] -= np.nan_to_num(self.scores[row], nan=0.0)
                    counts[i] -= ~np.isnan(self.scores[row])
        return sums, counts

    def _evidence(self, instructions: Sequence[str]) -> tuple[tuple | None, tuple | None]:
        """((sums, counts) over each instruction's label, (sums, counts) over its k nearest), each None when
        that update is off; every model's columns."""
        x = self.encode(instructions)                 # once per call, for both
        by_label = self._label_neighbours(instructions, x=x) if self.uses_labels else None
        nearest = self._neighbours(instructions, x) if self.strength < STRENGTH_GRID[-1] else None
        return by_label, nearest

    def _chain(self, evidence: tuple, base: np.ndarray, columns: Sequence[int]) -> np.ndarray:
        """(n, len(columns)) `base` (the prior of the models at `columns`) updated by the label's results, then
        by the k nearest items' (`evidence` from `_evidence`)."""
        out = np.asarray(base, dtype=np.float64)
        by_label, nearest = evidence
        if by_label is not None:
            sums, counts = by_label
            out = (sums[:, columns] + self.category_strength * out) / (counts[:, columns] + self.category_strength)
        if nearest is not None:
            sums, counts = nearest
            out = self._nearest_update(sums[:, columns], counts[:, columns], self.strength, out)
        return out

    def _neighbours(self, instructions: Sequence[str],
                    x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(sums, counts) of every model's results over each instruction's k nearest training items (on
        features `x`, else `encode(instructions)`), an instruction's own item (same text) left out."""
        from modelsat.routers.knn import neighbour_sums
        exclude = [self._rows.get(text_key(t), ()) for t in instructions]
        x = self.encode(instructions) if x is None else x
        return neighbour_sums(x, self.embeddings, self._nearest_scores, self.k, exclude=exclude)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) unit-norm features of `texts`, as the training items' were made."""
        return encode(texts, self.features, self.center)

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
        if not len(instructions) or (self.strength >= STRENGTH_GRID[-1] and not self.uses_labels):
            return out
        new = [j for j, c in enumerate(candidates) if c.model not in self.models]
        if not cols and (base_known is None or not new):
            return out
        evidence = self._evidence(instructions)
        if cols:
            js, col_ids = [j for j, _ in cols], [col for _, col in cols]
            out[:, js] = self._chain(evidence, out[:, js], col_ids)
        if new and base_known is not None:
            known = np.clip(np.asarray(base_known, dtype=np.float64), LIKELIHOOD_FLOOR, 1 - LIKELIHOOD_FLOOR)
            moved = np.clip(self._chain(evidence, known, list(range(len(self.models)))),
                            LIKELIHOOD_FLOOR, 1 - LIKELIHOOD_FLOOR)
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
        if self.center is not None:
            arrays["center"] = self.center
        if self.expected is not None:
            arrays["expected"] = self.expected.astype(np.float16) if self.bits < 32 else self.expected
        if self.labels is not None:
            arrays.update(labels=self.labels, label_coef=self.label_coef, label_intercept=self.label_intercept)
        return (arrays, {"models": self.models, "keys": self.keys, "k": self.k, "strength": self.strength,
                         "features": self.features, "category_strength": self.category_strength,
                         "bits": self.bits, "dims": int(self.embeddings.shape[1])})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], extra: dict) -> "RecordsPrior":
        features = extra.get("features", "minilm")
        if features == "static" and "center" not in arrays:
            raise KeyError("center (static features need the training items' mean)")
        bits = int(extra.get("bits", 32))
        embeddings = arrays["embeddings"]
        if bits < 32:             # codes → the unit rows they round (quantizing those again gives the codes)
            codes = embeddings if bits == 8 else unpack4(embeddings, int(extra["dims"]))
            embeddings = dequantize(codes)
        return cls(embeddings, arrays["scores"], extra["models"], extra["keys"], extra["k"],
                   extra["strength"], features=features, bits=bits, center=arrays.get("center"), labels=arrays.get("labels"),
                   label_coef=arrays.get("label_coef"), label_intercept=arrays.get("label_intercept"),
                   category_strength=extra.get("category_strength", 1e9), expected=arrays.get("expected"))


def selection_rows(benchmarks: Sequence[str], rng: np.random.Generator, balanced: bool = False) -> np.ndarray:
    """The sorted rows the leave-one-out likelihood is taken over: all when there are at most SELECTION_ITEMS,
    else SELECTION_ITEMS at random; `balanced` draws them evenly from each benchmark (all of a smaller one, the
    rest shared among the larger), so that a benchmark of 300 items weighs in the choice as one of 4,000 does in
    the benchmark's mean over benchmarks. With one benchmark both draws are the same."""
    n = len(benchmarks)
    names = sorted(set(benchmarks))
    if n <= SELECTION_ITEMS:
        return np.arange(n)
    if not balanced or len(names) == 1:
        return np.sort(rng.choice(n, SELECTION_ITEMS, replace=False))
    column = np.asarray(benchmarks, dtype=object)
    by_name = {b: np.flatnonzero(column == b) for b in names}
    quota, left, picked = {}, SELECTION_ITEMS, []
    for b in sorted(names, key=lambda b: len(by_name[b])):          # smallest first: they may give all they have
        quota[b] = min(len(by_name[b]), left // (len(names) - len(quota)))
        left -= quota[b]
    for b in names:
        picked.append(rng.choice(by_name[b], quota[b], replace=False))
    return np.sort(np.concatenate(picked))


def _fit_labels(x: np.ndarray, y: np.ndarray, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef, intercept) of the label classifier (per-category's logistic regression) on features `x`."""
    from modelsat.routers.per_category import fit_logistic
    coef, intercept = fit_logistic(np.asarray(x, dtype=np.float64), y, n_labels, seed=seed)
    return coef.astype(np.float32), intercept.astype(np.float32)


def _loss_key(k: int, kappa: float, kappa_c: float, labelled: bool) -> str:
    key = f"k={k},kappa={kappa:g}"
    return key + f",kappa_c={kappa_c:g}" if labelled else key
