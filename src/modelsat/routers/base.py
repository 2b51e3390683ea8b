"""The one Router interface (scikit-learn style) and the name -> class registry.

A router scores (instruction, candidate) pairs; candidates are Profiles passed at call time, so a router
that can (the profile-based ones) scores models it never saw in training. `route` is written once, here.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, write_json_atomic
from modelsat.errors import ModelsatError

_REGISTRY: dict[str, type["Router"]] = {}
CALIBRATION_FILE = "calibration.json"     # a saved router's calibrator (`Router.calibrate`)


class RouterError(ModelsatError):
    """A router asked to do what it cannot (unseen model, missing responses, not fitted)."""


def register(cls: type["Router"]) -> type["Router"]:
    """Class decorator: makes the router available by its `name`."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Imports every module under modelsat.routers so their @register decorators run."""
    import modelsat.routers as pkg
    for mod in pkgutil.walk_packages(pkg.__path__, prefix="modelsat.routers."):
        if mod.name.split(".")[-1].startswith("_"):
            continue
        importlib.import_module(mod.name)


def available() -> list[str]:
    """Names of every registered router."""
    _discover()
    return sorted(_REGISTRY)


def benchmark_routers() -> list[str]:
    """The routers `modelsat benchmark` runs when none are named: every registered one that is not a wrapper of
    the others (`benchmark_default`)."""
    return [n for n in available() if getattr(_REGISTRY[n], "benchmark_default", True)]


def get(name: str) -> type["Router"]:
    """The router class registered under `name`."""
    _discover()
    if name not in _REGISTRY:
        raise RouterError(f"unknown router {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


class Router:
    """Base class. Hyper-parameters only in __init__ (stored as same-named attributes); fitted state ends in `_`.

    Subclasses implement `fit` and `score`; for save/load they implement `_get_state` / `_set_state`
    (arrays go to safetensors, the rest to JSON) or override `save`/`load` wholesale.
    """

    name: ClassVar[str] = ""
    needs_responses: ClassVar[bool] = False     # scores (instruction, candidate response) pairs
    needs_seen_models: ClassVar[bool] = False   # learned model ids: refuses a model absent from training
    is_upper_bound: ClassVar[bool] = False      # oracle: reads the answers; never a real router
    uses_embeddings: ClassVar[bool] = False     # reads MiniLM instruction embeddings (the benchmark precomputes them)
    # fit takes `validation=` (held-out records: never a training, profile or test item) and may choose on them
    tunes_on_validation: ClassVar[bool] = False
    # a candidate's score does not depend on the other candidates: the benchmark may score the union of a family's
    # zoos once and slice it per zoo (checked by the contract test)
    columns_independent: ClassVar[bool] = False
    # its fit depends on its seed beyond float noise (training by gradient): the benchmark trains it over several
    # seeds and reports their mean and spread
    varies_with_seed: ClassVar[bool] = False
    # its `score` is already P(good answer) in [0, 1] (a mean training score, a sigmoid trained on outcomes, a
    # profile accuracy): `predict_proba` may return it uncalibrated; otherwise it needs `calibrate` first
    scores_are_probabilities: ClassVar[bool] = False

    @classmethod
    def for_tests(cls) -> "Router":
        """A small, fast configuration for the contract test (tests/test_router_contract.py).

        The default is `cls()`; a router whose default trains for minutes overrides this to return a tiny one
        (few steps, small hidden sizes). It must still be deterministic under its seed.
        """
        return cls()

    # ---- to implement -------------------------------------------------------------------------------------
    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> "Router":
        raise NotImplementedError

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n_instructions, n_candidates) scores; higher = more likely to answer well."""
        raise NotImplementedError

    def prepare(self, candidates: Sequence[Profile]) -> None:
        """Does, once, the per-candidate work that `score` would otherwise do on its first call with these
        candidates (a server calls it at start-up, so no request pays for it). Nothing by default."""

    def fit_choices(self) -> dict:
        """What `fit` chose on data (a k, a kappa, a gate), JSON-ready, for the benchmark's results; {} if nothing."""
        return {}

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        return {}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        pass

    # ---- written once ---------------------------------------------------------------------------------------
    def route(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> list[str]:
        """The chosen model's name per instruction: the candidate with the highest score (max quality). For a
        choice that weighs cost, give `predict_proba`'s P and each call's expected cost to
        `modelsat.policies.choose` (policies tradeoff, threshold, budget)."""
        s = self._checked_scores(instructions, candidates)
        return [candidates[i].model for i in np.argmax(s, axis=1)]

    def _checked_scores(self, instructions, candidates) -> np.ndarray:
        """`score` as an (n, m) float array, with a clear error for no candidates or a wrong shape."""
        if not candidates:
            raise RouterError("no candidates to route among")
        s = np.asarray(self.score(list(instructions), list(candidates)), dtype=np.float64)
        if s.shape != (len(instructions), len(candidates)):
            raise RouterError(f"{self.name}: score returned shape {s.shape}, expected "
                              f"({len(instructions)}, {len(candidates)})")
        return s

    def predict_proba(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n, m) the probability that each candidate answers each instruction well, in [0, 1].

        The calibrated probability when the router holds a calibrator (`calibrate`, kept by save/load); else
        its own score where that already is a probability (`scores_are_probabilities`); else a RouterError.
        """
        calibrator = getattr(self, "calibrator_", None)
        if calibrator is None and not self.scores_are_probabilities:
            raise RouterError(f"router {self.name!r} gives scores, not probabilities: call "
                              f"calibrate(validation_records, profiles) on held-out items first (then save it)")
        s = self._checked_scores(instructions, candidates)
        return calibrator.predict(s) if calibrator is not None else np.clip(s, 0.0, 1.0)

    def calibrate(self, validation_records: pd.DataFrame, profiles: Sequence[Profile],
                  method: str = "auto") -> "Router":
        """Fits the map from scores to P(good answer) on validation records (never a training or test item) and
        keeps it as `calibrator_`; returns self. `method`: "platt", "isotonic" or "auto" (`modelsat.calibration`).

        Every (item, model) result whose model has a profile in `profiles` is one pair: the router's score of
        that model for that item's prompt, and the result's score (1 = answered well, partial credit allowed).
        """
        from modelsat.calibration import fit_calibrator
        scores, outcomes, items = self._calibration_pairs(validation_records, profiles)
        scale = "probability" if self.scores_are_probabilities else "log-odds"
        if self.scores_are_probabilities:       # as predict_proba reads them (kNN's tie-break can pass 1 by 1e-6)
            scores = np.clip(scores, 0.0, 1.0)
        self.calibrator_ = fit_calibrator(scores, outcomes, method=method, scale=scale, groups=items,
                                          seed=getattr(self, "seed", 0))
        return self

    def _calibration_pairs(self, records: pd.DataFrame, profiles: Sequence[Profile],
                           chunk: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, outcomes, item index) of every validation result of a model in `profiles`."""
        missing = [c for c in ("model", "prompt", "score") if c not in records.columns]
        if missing:
            raise RouterError(f"calibrate: validation records lack column(s) {', '.join(missing)}")
        by_name = {p.model: p for p in profiles}
        rec = records[records["model"].isin(by_name) & records["score"].notna()]
        if rec.empty:
            raise RouterError(f"calibrate: no validation record of a model with a profile (records hold "
                              f"{', '.join(sorted(map(str, records['model'].unique()))[:8]) or 'nothing'})")
        models = sorted(rec["model"].unique())
        key = [c for c in ("benchmark", "item_id") if c in rec.columns] or ["prompt"]
        item = rec.groupby(key, sort=False).ngroup().to_numpy()
        prompts = rec.groupby(key, sort=False)["prompt"].first().astype(str).tolist()
        cands = [by_name[m] for m in models]
        col = rec["model"].map({m: j for j, m in enumerate(models)}).to_numpy()
        matrix = np.vstack([self._checked_scores(prompts[i:i + chunk], cands) for i in range(0, len(prompts), chunk)])
        return matrix[item, col], rec["score"].to_numpy(dtype=np.float64), item

    def save_calibration(self, directory: str | Path) -> None:
        """Writes the calibrator to `directory`/calibration.json (removes a stale one when there is none); a
        router with its own `save` calls this from it."""
        path = Path(directory) / CALIBRATION_FILE
        calibrator = getattr(self, "calibrator_", None)
        if calibrator is not None:
            write_json_atomic(calibrator.to_dict(), path)
        elif path.exists():
            path.unlink()

    def load_calibration(self, directory: str | Path) -> None:
        """Restores the calibrator written by `save_calibration`, if the folder holds one; a router with its own
        `load` calls this from it."""
        from modelsat.calibration import CalibrationError, Calibrator
        path = Path(directory) / CALIBRATION_FILE
        if not path.exists():
            return
        try:
            self.calibrator_ = Calibrator.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, CalibrationError) as exc:
            raise RouterError(f"{path}: unreadable calibrator ({exc}); recalibrate and save the router again") from exc

    def check_fitted(self, attribute: str) -> None:
        """Raises a clear error when `fit` (or `load`) has not set the fitted attribute `attribute`."""
        if not hasattr(self, attribute):
            raise RouterError(f"router {self.name!r} is not fitted; call fit(records, profiles) first")

    def check_candidates(self, candidates: Sequence[Profile], seen: Sequence[str]) -> None:
        """Raises a clear error for candidates a learned-id router never saw in training."""
        unseen = [c.model for c in candidates if c.model not in set(seen)]
        if unseen:
            raise RouterError(f"router {self.name!r} learns one embedding per training model and cannot score "
                              f"unseen model(s) {', '.join(unseen)}; retrain it with their records, or use a "
                              f"profile-based router (e.g. modelsat, profile-prior, mlp)")

    def get_params(self) -> dict:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self" and hasattr(self, k)}

    def save(self, directory: str | Path, card: dict | None = None) -> Path:
        """Writes config.json + state.safetensors + state.json + README.md (model card) into `directory`."""
        from safetensors.numpy import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays, extra = self._get_state()
        write_json_atomic({"router": self.name, "params": self.get_params()}, d / "config.json")
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(d / "state.safetensors"))
        write_json_atomic(extra, d / "state.json")
        self.save_calibration(d)
        (d / "README.md").write_text(model_card(self, card or {}))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "Router":
        """A router restored from a folder written by `save` (any registered router when called on Router)."""
        from safetensors.numpy import load_file
        d = Path(directory)
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RouterError(f"{d}: not a router folder (config.json unreadable: {exc})") from exc
        klass = get(config["router"]) if cls is Router else cls
        if klass is not cls and cls is not Router:
            raise RouterError(f"{d} holds router {config['router']!r}, not {cls.name!r}")
        if klass.load.__func__ is not Router.load.__func__:
            router = klass.load(d)
            if getattr(router, "calibrator_", None) is None:
                router.load_calibration(d)
            return router
        router = klass(**config.get("params", {}))
        arrays = load_file(str(d / "state.safetensors")) if (d / "state.safetensors").exists() else {}
        extra = json.loads((d / "state.json").read_text()) if (d / "state.json").exists() else {}
        router._set_state(arrays, extra)
        router.load_calibration(d)
        return router


def model_card(router: Router, card: dict) -> str:
    """A short Markdown model card: which router, its parameters, what it was trained on, its metrics."""
    lines = [f"# modelsat router: {router.name}", "", "## Parameters", "", "```json",
             json.dumps(router.get_params(), indent=2, default=str), "```", ""]
    for title, key in (("Training data", "training_data"), ("Metrics", "metrics")):
        if key in card:
            lines += [f"## {title}", "", "```json", json.dumps(card[key], indent=2, default=str), "```", ""]
    calibrator = getattr(router, "calibrator_", None)
    if calibrator is not None:
        lines += ["## Calibration", "", f"`predict_proba` maps scores to P(good answer) by {calibrator.method} "
                  f"scaling fitted on validation items ({CALIBRATION_FILE}).", "", "```json",
                  json.dumps(calibrator.choice, indent=2, default=str), "```", ""]
    return "\n".join(lines)
