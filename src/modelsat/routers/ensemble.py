"""The `ensemble` router: one registered router trained with several seeds, routing by their averaged
probabilities. A router trained by gradient lands on a different point each seed (and each machine); the
mean of a few is steadier than any one of them (docs/experiments/figures-that-hold.md measures it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, write_json_atomic
from modelsat.routers.base import Router, RouterError, get, model_card, register


def as_probabilities(scores: np.ndarray, are_probabilities: bool) -> np.ndarray:
    """Scores as probabilities: as they are when they already are (clipped to [0, 1]), else read as log-odds
    (Model-SAT's learned score is one)."""
    s = np.asarray(scores, dtype=float)
    return np.clip(s, 0.0, 1.0) if are_probabilities else 1.0 / (1.0 + np.exp(-s))


def average_probabilities(per_member_scores: Sequence[np.ndarray], are_probabilities: bool) -> np.ndarray:
    """The members' probabilities averaged: what an ensemble of seeds routes by."""
    return np.mean([as_probabilities(s, are_probabilities) for s in per_member_scores], axis=0)


def member_probabilities(router: Router, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
    """(n, m) one member's probabilities: `predict_proba` where it has a calibrator, else its scores read by
    `as_probabilities`."""
    if getattr(router, "calibrator_", None) is not None:
        return router.predict_proba(instructions, candidates)
    return as_probabilities(router._checked_scores(instructions, candidates), router.scores_are_probabilities)


@register
class EnsembleRouter(Router):
    """`router` fitted once per seed in `seeds` (its other hyper-parameters in `params`); `score` is the mean
    over the members of each one's probability of a good answer."""

    name = "ensemble"
    benchmark_default = False      # the benchmark reports NAME-ensemble rows from its own seeds
    scores_are_probabilities = True
    tunes_on_validation = True

    def __init__(self, router: str = "modelsat", seeds: Sequence[int] = (0, 1, 2), params: dict | None = None):
        self.router = router
        self.seeds = list(seeds)
        self.params = dict(params or {})

    @classmethod
    def for_tests(cls) -> "EnsembleRouter":
        return cls(router="modelsat", seeds=(0, 1), params={"preset": "tiny"})

    @classmethod
    def of(cls, members: Sequence[Router]) -> "EnsembleRouter":
        """An ensemble of routers already fitted (of one registered kind, e.g. `modelsat train --seeds`)."""
        if not members:
            raise RouterError("an ensemble needs at least one fitted router")
        kinds = {m.name for m in members}
        if len(kinds) != 1:
            raise RouterError(f"an ensemble's members are one router trained with several seeds, got {sorted(kinds)}")
        out = cls(router=members[0].name, seeds=[getattr(m, "seed", k) for k, m in enumerate(members)])
        out.members_ = list(members)
        return out

    @property
    def uses_embeddings(self) -> bool:          # the benchmark embeds prompts first for a member that reads them
        return get(self.router).uses_embeddings

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile],
            validation: pd.DataFrame | None = None) -> "EnsembleRouter":
        if not self.seeds:
            raise RouterError("ensemble: seeds is empty")
        klass = get(self.router)
        members = []
        for seed in self.seeds:
            member = klass(**{**self.params, "seed": seed})
            kwargs = {"validation": validation} if member.tunes_on_validation and validation is not None else {}
            members.append(member.fit(records, profiles, **kwargs))
        self.members_ = members
        return self

    def prepare(self, candidates: Sequence[Profile]) -> None:
        self.check_fitted("members_")
        for member in self.members_:
            member.prepare(candidates)

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        self.check_fitted("members_")
        instructions, candidates = list(instructions), list(candidates)
        return np.mean([member_probabilities(m, instructions, candidates) for m in self.members_], axis=0)

    def fit_choices(self) -> dict:
        return {f"seed {getattr(m, 'seed', k)}": m.fit_choices() for k, m in enumerate(getattr(self, "members_", []))}

    def save(self, directory: str | Path, card: dict | None = None) -> Path:
        """config.json naming the members, each member's own folder (member-0, member-1, ...), README.md."""
        self.check_fitted("members_")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        folders = []
        for k, member in enumerate(self.members_):
            member.save(d / f"member-{k}", card=card)
            folders.append(f"member-{k}")
        write_json_atomic({"router": self.name, "params": self.get_params(), "members": folders}, d / "config.json")
        self.save_calibration(d)
        (d / "README.md").write_text(model_card(self, card or {}))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "EnsembleRouter":
        d = Path(directory)
        try:
            config = json.loads((d / "config.json").read_text())
            folders = list(config["members"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RouterError(f"{d}: not an ensemble router folder (config.json with 'members'): {exc}") from exc
        if config.get("router") != cls.name:
            raise RouterError(f"{d} holds router {config.get('router')!r}, not {cls.name!r}")
        out = cls(**config.get("params", {}))
        out.members_ = [Router.load(d / f) for f in folders]
        out.load_calibration(d)
        return out
