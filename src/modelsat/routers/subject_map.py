"""Instruction -> weights over the 57 MMLU subjects: a softmax over per-subject scores of the instruction's features.

The profile prior (design.md, "Where we depart from the paper") reads a candidate's profile at the
instruction's subjects; this module says which subjects those are. Two maps ship (scripts/build_default_zoo.py):

- **centroid on MiniLM** (`shipped()`, the default): features are full all-MiniLM-L6-v2 embeddings (disk-cached;
  a live instruction costs one encoder forward, 27-35 ms on 2 cores), scores the cosine to each subject's anchor
  (the unit-norm centroid of its questions' embeddings, blended with its five aptitude keywords).
- **linear on static features** (`shipped("static")`): features are `embeddings.static_encode` (the mean of
  MiniLM's input token vectors, no transformer layers, ~0.5 ms a text), scores a multinomial logistic regression.
  It names MMLU subjects as well (top-1 on MMLU-Pro ori_mmlu items val 0.66 / test 0.70 vs 0.64 / 0.69) and
  makes routing fast enough for issue 13's latency targets, but as the prior's input it routes worse on the
  high-performance zoo: on the 7,423 MMLU-Pro training items no profile reads (kappa fitted on validation items)
  the profile prior is -2.81 [-3.67, -1.97] points vs the best single model there, against -0.46 [-1.05, +0.15]
  with the centroid map; the other four zoos differ by less than 0.5.

Weights are `softmax(score / temperature)`; the temperature is fitted by maximum likelihood of the true
subject on MMLU-Pro *training* items whose MMLU subject is known (`fit_temperature`).

Leakage: both maps are built from question text only, never a model's result, so no score leaks into a router
through them. MMLU test questions reappear in other evaluation sets (MMLU-Pro's `ori_mmlu` items, RouterDC's
and RouteLLM's MMLU files), so the shipped maps leave out every MMLU-Pro item (same normalised question text);
their subject accuracy on MMLU-Pro is then not inflated by having seen the question. On RouterDC/RouteLLM MMLU
items they *have* seen the question text: subject identification there is easier than on unseen text (scores
still do not leak).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from modelsat.aptitude.profile import write_json_atomic
from modelsat.errors import ModelsatError

SHIPPED_DIRS = {"minilm": "subject_map", "static": "subject_map_static"}   # features -> package folder
FEATURES = tuple(SHIPPED_DIRS)   # what a map can read: "minilm" (full encoder) or "static"


@dataclass
class SubjectMap:
    """Per-subject vectors ((S, 384): unit-norm anchors, or a linear classifier's rows with `bias`), the features
    they read ("minilm": full MiniLM embeddings; "static": `embeddings.static_encode`) and the softmax
    temperature over their scores."""

    subjects: list[str]
    anchors: np.ndarray
    temperature: float = 0.05
    provenance: dict = field(default_factory=dict)
    bias: np.ndarray | None = None       # None: a centroid map (cosine scores); else (S,) intercepts
    features: str = "minilm"

    def __post_init__(self) -> None:
        self.anchors = np.asarray(self.anchors, dtype=np.float32)
        if self.anchors.shape != (len(self.subjects), self.anchors.shape[1] if self.anchors.ndim == 2 else -1):
            raise ModelsatError(f"subject map: {len(self.subjects)} subjects but anchors of shape "
                                f"{self.anchors.shape}")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float32).reshape(-1)
            if len(self.bias) != len(self.subjects):
                raise ModelsatError(f"subject map: {len(self.subjects)} subjects but {len(self.bias)} intercepts")
        if not self.temperature > 0:
            raise ModelsatError(f"subject map: temperature must be > 0, got {self.temperature}")
        if self.features not in FEATURES:
            raise ModelsatError(f"subject map: unknown features {self.features!r}; expected one of {FEATURES}")

    @property
    def kind(self) -> str:
        return "centroid" if self.bias is None else "linear"

    # ---- scoring ------------------------------------------------------------------------------------------
    def featurize(self, instructions: Sequence[str]) -> np.ndarray:
        """(n, 384) the features this map reads: MiniLM embeddings (disk-cached) or static token-vector means."""
        from modelsat.embeddings import embed, static_encode
        texts = list(instructions)
        return static_encode(texts) if self.features == "static" else embed(texts)

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, S) per-subject scores of instruction features: cosine to the anchors, or the classifier's logits."""
        s = np.asarray(embeddings, dtype=np.float32) @ self.anchors.T
        return s if self.bias is None else s + self.bias

    def weights_from_embeddings(self, embeddings: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """(n, S) subject weights (rows sum to 1) from instruction embeddings."""
        return softmax(self.similarities(embeddings), temperature or self.temperature)

    def weights(self, instructions: Sequence[str]) -> np.ndarray:
        """(n, S) subject weights (rows sum to 1) of each instruction."""
        return self.weights_from_embeddings(self.featurize(instructions))

    def top_subjects(self, instruction: str, k: int = 3) -> list[tuple[str, float]]:
        """The k heaviest subjects of one instruction with their weights."""
        w = self.weights([instruction])[0]
        order = np.argsort(-w)[:k]
        return [(self.subjects[i], float(w[i])) for i in order]

    # ---- fitting ------------------------------------------------------------------------------------------
    def fit_temperature(self, embeddings: np.ndarray, true_subjects: Sequence[str]) -> "SubjectMap":
        """Sets the temperature that maximises the likelihood of each item's true subject; returns self.

        Items whose subject is not one of `self.subjects` are ignored (MMLU-Pro's non-MMLU categories).
        """
        from scipy.optimize import minimize_scalar
        index = {s: i for i, s in enumerate(self.subjects)}
        keep = [i for i, s in enumerate(true_subjects) if s in index]
        if len(keep) < 10:
            raise ModelsatError(f"fit_temperature: only {len(keep)} items have a known MMLU subject; need >= 10")
        sims = self.similarities(np.asarray(embeddings)[keep]).astype(np.float64)
        y = np.array([index[true_subjects[i]] for i in keep])

        def nll(log_t: float) -> float:
            z = sims / np.exp(log_t)
            z -= z.max(1, keepdims=True)
            return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())

        # cosines (centroid map) need T in (1e-3, 1); a classifier's logits may need it above 1. The search
        # bracket moves the optimum found at the 1e-5 level, so each kind keeps its own.
        top = 1.0 if self.bias is None else 100.0
        res = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(top)), method="bounded")
        self.temperature = float(np.exp(res.x))
        self.provenance["temperature_fit"] = {"n_items": len(keep), "mean_nll": float(res.fun)}
        return self

    def top1_accuracy(self, embeddings: np.ndarray, true_subjects: Sequence[str]) -> tuple[float, int]:
        """(share of items whose heaviest subject is the true one, number of items with a known subject)."""
        index = {s: i for i, s in enumerate(self.subjects)}
        keep = [i for i, s in enumerate(true_subjects) if s in index]
        if not keep:
            return float("nan"), 0
        pred = self.similarities(np.asarray(embeddings)[keep]).argmax(1)
        y = np.array([index[true_subjects[i]] for i in keep])
        return float((pred == y).mean()), len(keep)

    # ---- building -----------------------------------------------------------------------------------------
    @classmethod
    def from_questions(cls, embeddings: np.ndarray, subjects: Sequence[str],
                       keyword_embeddings: dict[str, np.ndarray] | None = None, keyword_weight: float = 0.0,
                       provenance: dict | None = None) -> "SubjectMap":
        """Anchors = unit-norm centroid of each subject's question embeddings, blended with its keyword line.

        `keyword_weight` is the keyword embedding's share of the anchor (0 = questions only); subjects with no
        question get the keyword embedding alone.
        """
        subjects = np.asarray(subjects)
        names = sorted(set(subjects.tolist()) | set(keyword_embeddings or {}))
        emb = np.asarray(embeddings, dtype=np.float32)
        anchors = np.zeros((len(names), emb.shape[1]), dtype=np.float32)
        for i, s in enumerate(names):
            rows = emb[subjects == s]
            centroid = _unit(rows.mean(0)) if len(rows) else None
            kw = _unit(keyword_embeddings[s]) if keyword_embeddings and s in keyword_embeddings else None
            if centroid is None and kw is None:
                raise ModelsatError(f"subject {s!r} has neither questions nor keywords")
            if centroid is None:
                anchors[i] = kw
            elif kw is None or keyword_weight <= 0:
                anchors[i] = centroid
            else:
                anchors[i] = _unit((1 - keyword_weight) * centroid + keyword_weight * kw)
        return cls(subjects=names, anchors=anchors, provenance=dict(provenance or {}))

    @classmethod
    def from_classifier(cls, features: np.ndarray, subjects: Sequence[str], C: float = 10.0,
                        feature_kind: str = "static", seed: int = 0, provenance: dict | None = None) -> "SubjectMap":
        """A linear map: multinomial logistic regression of each question's subject on its features."""
        from modelsat.routers.per_category import fit_logistic
        subjects = np.asarray(subjects)
        names = sorted(set(subjects.tolist()))
        y = np.searchsorted(names, subjects)
        coef, intercept = fit_logistic(np.asarray(features, dtype=np.float64), y, len(names), C, seed)
        return cls(subjects=names, anchors=coef, bias=intercept, temperature=1.0, features=feature_kind,
                   provenance=dict(provenance or {}))

    # ---- files --------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Writes anchors.safetensors (float16; + bias for a linear map) + subject_map.json (subjects, kind,
        features, temperature, provenance) into `directory`."""
        from safetensors.numpy import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ".anchors.safetensors.tmp"
        tensors = {"anchors": np.ascontiguousarray(self.anchors.astype(np.float16))}
        if self.bias is not None:
            tensors["bias"] = np.ascontiguousarray(self.bias.astype(np.float32))
        save_file(tensors, str(tmp))
        tmp.chmod(0o644)
        tmp.replace(d / "anchors.safetensors")
        write_json_atomic({"subjects": self.subjects, "kind": self.kind, "features": self.features,
                           "temperature": self.temperature, "provenance": self.provenance}, d / "subject_map.json")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "SubjectMap":
        """The subject map stored in `directory` by `save`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        d = Path(directory)
        try:
            meta = json.loads((d / "subject_map.json").read_text())
            tensors = load_file(str(d / "anchors.safetensors"))
            anchors = tensors["anchors"].astype(np.float32)
        except (OSError, json.JSONDecodeError, KeyError, SafetensorError) as exc:
            raise ModelsatError(f"{d}: not a subject map folder (expected subject_map.json and "
                                f"anchors.safetensors): {exc}") from exc
        kind = meta.get("kind", "centroid")
        if kind == "linear" and "bias" not in tensors:
            raise ModelsatError(f"{d}: a linear subject map without its bias tensor")
        if kind == "centroid":   # stored in float16: renormalise so cosines stay exact to ~1e-3
            anchors /= np.linalg.norm(anchors, axis=1, keepdims=True).clip(1e-12)
        return cls(subjects=list(meta["subjects"]), anchors=anchors, temperature=float(meta["temperature"]),
                   provenance=dict(meta.get("provenance") or {}),
                   bias=tensors.get("bias") if kind == "linear" else None,
                   features=meta.get("features", "minilm"))


def shipped_dir(features: str = "minilm") -> Path:
    """The package folder of the shipped subject map reading `features` (modelsat/shipped/subject_map*)."""
    if features not in SHIPPED_DIRS:
        raise ModelsatError(f"no shipped subject map reads {features!r} features; choose one of "
                            f"{sorted(SHIPPED_DIRS)}")
    return Path(str(resources.files("modelsat") / "shipped" / SHIPPED_DIRS[features]))


def shipped(features: str = "minilm") -> SubjectMap:
    """A subject map that ships with the package (built by scripts/build_default_zoo.py): "minilm" (centroid
    map, the default) or "static" (linear map on static features, no encoder per instruction)."""
    d = shipped_dir(features)
    if not (d / "subject_map.json").exists():
        raise ModelsatError(f"{d}: the shipped subject map is missing; rebuild it with "
                            "`python scripts/build_default_zoo.py` or reinstall modelsat")
    return SubjectMap.load(d)


def softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of x / temperature."""
    z = np.asarray(x, dtype=np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)
