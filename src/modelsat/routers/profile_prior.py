"""The profile prior: a candidate's profile accuracy at the instruction's MMLU subjects (no per-model training).

    prior(x, c) = sum_s w_s(x) * acc~_c(s),   acc~_c(s) = (n_cs * acc_cs + kappa * mean_c) / (n_cs + kappa)

w(x) comes from the subject map (a softmax over per-subject scores of the instruction's features, `subject_map.py`);
acc~ shrinks each per-subject accuracy toward the model's mean accuracy by the number of items it rests on, and
a subject the profile lacks (n = 0) falls back to the mean. Nothing is learned per model, so a model known only
by its aptitude-test profile is scored like any other (design.md, "Where we depart from the paper": the
router is an explicit prior plus a learned correction; this is the prior).

`prior_scores` is the plain function the Model-SAT model takes as an input; `ProfilePrior` is the same thing
as a registered router (`profile-prior`) whose `fit` learns only the temperature and kappa.

Tasks beyond MMLU. The aptitude test measures MMLU subjects; a zoo of specialists (RouterDC's: math, code,
Chinese) differs on what MMLU does not test. When the training records span several benchmarks and the
candidates' profiles carry per-task accuracies (`Profile.tasks`, or per-benchmark profiles), `fit` also learns
a task classifier (multinomial logistic regression of the benchmark on the subject map's features; text only,
no score) and the prior becomes

    prior(x, c) = sum_t P(t | x) * a_c(t, x),   a_c(t, x) = the subject prior above  if t is MMLU-like,
                                                             the shrunk task accuracy of c on t  otherwise,

so an instruction that looks like grade-school maths reads each candidate's maths accuracy, and one that looks
like MMLU reads its subjects. A candidate whose profile lacks task t falls back to its subject prior. Still
nothing is learned per model: a new model with the same tasks in its profile is scored like the others.

Choosing kappa. By default (`kappa_fit="likelihood"`) kappa maximises the likelihood of the fit's records under the
prior, which is sound only when the records are not the items the profiles rest on. `kappa_fit="profiles"` needs
no records: an empirical-Bayes estimate from the profiles themselves (`empirical_bayes_kappa`). `kappa_fit="candidates"`
makes the same estimate at scoring time from the candidates being compared, so a zoo of strong look-alike models,
whose subject differences are mostly sampling noise, reads them with more shrinkage than the whole pool would
(the fit's estimate stands where the candidates cannot give one: fewer than two, or no spread). Measured, it
loses on the release stream, whose six candidates are too few for the estimate (README, "What was tried", row 13). The part of a
model's per-subject accuracy that separates it from the other models (the model × subject interaction) has, across
subjects, a spread made of real differences (tau^2) plus sampling noise (p(1-p)/n); the shrinkage that best
predicts a fresh item is kappa = p(1-p) / tau^2 pseudo-items. Subjects and tasks get their own estimate (a zoo of
look-alike models can have no subject skill beyond noise yet very different maths and code accuracies).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.errors import ModelsatError
from modelsat.routers.base import Router, RouterError, register
from modelsat.routers.subject_map import SubjectMap, shipped

# fitted on MMLU-Pro validation items for aptitude-test profiles (20 items a subject; scripts/measure_profile_prior.py)
DEFAULT_KAPPA = 100.0
KAPPA_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)
SELECT = ("likelihood", "routing")
KAPPA_FITS = ("likelihood", "profiles", "candidates")
KAPPA_MAX = 1e6            # empirical Bayes: the profiles show no interaction beyond sampling noise
MIN_SELECTION_ITEMS = 50   # fewer validation items than this: routing selection falls back to the likelihood fit


def shrink(n: int, accuracy: float, mean: float, kappa: float) -> float:
    """An accuracy resting on n items, pulled toward the model's mean by kappa pseudo-items."""
    return mean if n + kappa <= 0 else (n * accuracy + kappa * mean) / (n + kappa)


def empirical_bayes_kappa(accuracy: np.ndarray, n_items: np.ndarray) -> float | None:
    """kappa (pseudo-items) from a (models, columns) table of accuracies and the item counts they rest on.

    The table is double-centred (model and column means removed): what is left is each model's own strength or
    weakness on each column. Its mean square over (m-1)(c-1) degrees of freedom estimates tau^2 + the mean
    sampling variance p(1-p)/(n-1); tau^2 is what remains after removing the latter, and kappa = p(1-p) / tau^2
    (KAPPA_MAX when nothing remains). None when there are fewer than 2 models or 2 columns with n >= 2.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    n = np.asarray(n_items, dtype=np.float64)
    keep = (n >= 2).all(axis=0)
    acc, n = acc[:, keep], n[:, keep]
    m, c = acc.shape
    if m < 2 or c < 2:
        return None
    resid = acc - acc.mean(axis=1, keepdims=True) - acc.mean(axis=0, keepdims=True) + acc.mean()
    observed = float((resid ** 2).sum() / ((m - 1) * (c - 1)))
    per_item = acc * (1 - acc)
    tau2 = observed - float(np.mean(per_item / (n - 1)))
    if tau2 <= 0:
        return KAPPA_MAX
    return float(min(KAPPA_MAX, np.mean(per_item) / tau2))


def shrunk_accuracies(candidates: Sequence[Profile], subjects: Sequence[str], kappa: float) -> np.ndarray:
    """(S, m) per-subject accuracies, each shrunk toward the candidate's mean by its item count."""
    out = np.zeros((len(subjects), len(candidates)), dtype=np.float64)
    for j, c in enumerate(candidates):     # `shrink`, one candidate's column at a time (the same float operations)
        mean = c.mean_accuracy
        found = [c.subjects.get(s) for s in subjects]
        n = np.array([0 if sc is None else sc.n_items for sc in found], dtype=np.float64)
        acc = np.array([mean if sc is None else sc.accuracy for sc in found], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, j] = np.where(n + kappa <= 0, mean, (n * acc + kappa * mean) / (n + kappa))
    return out


def prior_scores(instructions: Sequence[str], candidates: Sequence[Profile], subject_map: SubjectMap | None = None,
                 kappa: float = DEFAULT_KAPPA, weights: np.ndarray | None = None) -> np.ndarray:
    """(n, m) expected accuracy of each candidate on each instruction, read from its profile.

    `subject_map` defaults to the shipped one; pass `weights` ((n, S) from `subject_map.weights`) to reuse
    subject weights already computed (e.g. once per instruction for many candidate sets).
    """
    if not candidates:
        raise RouterError("prior_scores: no candidates")
    sm = subject_map if subject_map is not None else shipped()
    w = sm.weights(list(instructions)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(instructions), len(sm.subjects)):
        raise RouterError(f"prior_scores: weights of shape {w.shape}, expected "
                          f"({len(instructions)}, {len(sm.subjects)})")
    return w @ shrunk_accuracies(candidates, sm.subjects, kappa)


@register
class ProfilePrior(Router):
    """Routes to the candidate whose profile is strongest at the instruction's subjects; scores unseen models."""

    name = "profile-prior"
    scores_are_probabilities = True
    uses_embeddings = True
    columns_independent = True
    tunes_on_validation = True

    def __init__(self, kappa: float | None = None, temperature: float | None = None, fit_temperature: bool = True,
                 tasks: bool = True, C: float = 1.0, seed: int = 0, features: str = "minilm",
                 learn_steps: int = 0, learn_l2: float = 1e-3, learn_lr: float = 0.01,
                 learn_validation_fraction: float = 0.2, select: str = "likelihood", kappa_fit: str = "likelihood",
                 C_grid: Sequence[float] | None = None):
        self.kappa = kappa                    # None: fitted (kappa_fit; DEFAULT_KAPPA until then)
        self.temperature = temperature        # None: the subject map's (refitted on `fit` if fit_temperature)
        self.fit_temperature = fit_temperature
        self.tasks = tasks                    # learn the task classifier when records span several benchmarks
        self.C = C                            # its inverse regularisation
        self.C_grid = C_grid                  # or the C of this grid that classifies validation items best
        self.seed = seed
        self.features = features              # which shipped subject map: "minilm" (centroid) or "static"
        self.learn_steps = learn_steps        # > 0: learn how to read profiles from the records (_prior_learning)
        self.learn_l2 = learn_l2
        self.learn_lr = learn_lr
        self.learn_validation_fraction = learn_validation_fraction
        if select not in SELECT:
            raise RouterError(f"profile-prior: select must be one of {', '.join(SELECT)}, got {select!r}")
        self.select = select                  # how kappa and each task's reading are chosen (see fit)
        if kappa_fit not in KAPPA_FITS:
            raise RouterError(f"profile-prior: kappa_fit must be one of {', '.join(KAPPA_FITS)}, got {kappa_fit!r}")
        self.kappa_fit = kappa_fit            # "likelihood" of the records, or "profiles" (empirical Bayes)

    # the subject map is state, not a hyper-parameter: a fresh router starts from the shipped one
    def _map(self) -> SubjectMap:
        if getattr(self, "subject_map_", None) is None:
            self.subject_map_ = shipped(self.features)
            if self.temperature is not None:
                self.subject_map_.temperature = float(self.temperature)
        return self.subject_map_

    def _kappa(self) -> float:
        if self.kappa is not None:
            return float(self.kappa)
        return float(getattr(self, "kappa_", DEFAULT_KAPPA))

    def _task_kappa(self, kappa: float) -> float:
        """The tasks' kappa: their own empirical-Bayes estimate where one was made, else the subjects' `kappa`."""
        task_kappa = getattr(self, "task_kappa_", None)
        return kappa if task_kappa is None or self.kappa is not None else float(task_kappa)

    def _candidate_kappas(self, candidates: Sequence[Profile]) -> tuple[float, float | None]:
        """(kappa, task kappa) for scoring `candidates`: with kappa_fit "candidates", the empirical-Bayes estimates
        from these candidates' profiles, else (or where they give none) the fitted ones."""
        kappa, task_kappa = self._kappa(), None
        if self.kappa is not None or self.kappa_fit != "candidates" or len(candidates) < 2:
            return kappa, task_kappa
        arrays = self._profile_arrays(list(candidates))
        subject_kappa = empirical_bayes_kappa(arrays.acc.T, arrays.n.T)
        has = arrays.has_task.astype(bool).all(axis=1)
        if has.sum() >= 2:
            task_kappa = empirical_bayes_kappa(arrays.task_acc[has].T, arrays.task_n[has].T)
        return (kappa if subject_kappa is None else subject_kappa), task_kappa

    def fit(self, records: pd.DataFrame, profiles: Sequence[Profile],
            validation: pd.DataFrame | None = None) -> "ProfilePrior":
        """Fits the subject temperature (on records with an MMLU subject) and kappa; nothing per model.

        kappa maximises the Bernoulli log-likelihood of the records' scores under the prior, over the models
        that have a profile. Give it records the profiles were *not* built from (e.g. validation items): on
        the profiles' own items the per-subject accuracies look better than they are and kappa comes out low.
        With `kappa_fit="profiles"`, kappa (subjects) and the tasks' kappa come from `profiles` alone
        (`empirical_bayes_kappa`), and the records only train the task classifier and the temperature.

        With `select="routing"` and `validation` records (items neither the profiles nor `records` hold), kappa
        and each task's reading (the candidate's subject prior, or its accuracy on the task) are instead chosen
        by routed accuracy on those items: what routing needs, where the likelihood barely tells kappas apart.
        """
        sm = self._map()
        self.learned_, self.reads_subjects_ = None, None
        key_cols = [c for c in ("benchmark", "item_id") if c in records]
        items = records.drop_duplicates(key_cols).reset_index(drop=True)
        known = items[items["subject"].isin(sm.subjects)] if "subject" in items else items.iloc[:0]
        emb = None
        if len(items):
            emb = sm.featurize(items["prompt"].tolist())
            if self.fit_temperature and self.temperature is None and len(known) >= 10:
                pos = np.flatnonzero(items["subject"].isin(sm.subjects).to_numpy())
                sm.fit_temperature(emb[pos], items["subject"].iloc[pos].tolist())
        self._fit_tasks(items, emb, profiles, validation)
        self.kappa_, self.task_kappa_ = DEFAULT_KAPPA, None
        by_name = {p.model: p for p in profiles}
        rec = records[records["model"].isin(by_name)] if "model" in records else records.iloc[:0]
        if len(rec):
            models = sorted(rec["model"].unique())
            cands = [by_name[m] for m in models]
            col = {m: j for j, m in enumerate(models)}
            row = {k: r for r, k in enumerate(zip(*(items[c] for c in key_cols)))}
            r = np.array([row[k] for k in zip(*(rec[c] for c in key_cols))])
            j = rec["model"].map(col).to_numpy()
            y = rec["score"].to_numpy(dtype=np.float64)
        if self.kappa is None and self.kappa_fit in ("profiles", "candidates"):
            self._fit_kappa_from_profiles(profiles)
        elif self.kappa is None and len(rec):
            best = None
            for k in KAPPA_GRID:
                p = self._prior(emb, cands, k)[r, j].clip(1e-4, 1 - 1e-4)
                ll = float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
                if best is None or ll > best[1]:
                    best = (k, ll)
            self.kappa_ = float(best[0])
        self.selection_ = None
        if self.select == "routing":
            self.selection_ = self._select_by_routing(validation, by_name)
        if self.learn_steps > 0 and len(rec):
            scores = np.full((len(items), len(models)), np.nan)
            scores[r, j] = y
            self.learned_ = self._learn(emb, cands, scores)
        self.fitted_ = True
        return self

    def _fit_kappa_from_profiles(self, profiles: Sequence[Profile]) -> None:
        """kappa_ over the subject map's subjects and task_kappa_ over the tasks, by empirical Bayes on the profiles
        (DEFAULT_KAPPA / the subjects' kappa where a table has fewer than two models or columns)."""
        arrays = self._profile_arrays(list(profiles))
        subject_kappa = empirical_bayes_kappa(arrays.acc.T, arrays.n.T)
        self.kappa_ = DEFAULT_KAPPA if subject_kappa is None else subject_kappa
        has = arrays.has_task.astype(bool).all(axis=1)          # tasks every profile measures
        self.task_kappa_ = empirical_bayes_kappa(arrays.task_acc[has].T, arrays.task_n[has].T)

    def _select_by_routing(self, validation: pd.DataFrame | None, by_name: dict[str, Profile]) -> dict:
        """Chooses kappa (KAPPA_GRID) and per-task readings by macro-averaged routed accuracy on `validation`,
        by coordinate ascent from the likelihood fit; a change is kept only when it routes strictly better."""
        from modelsat.routers._training_data import held_out_table, macro_routed_accuracy
        table = held_out_table(validation, list(by_name), MIN_SELECTION_ITEMS, self.name)
        if table is None:
            return {"by": "likelihood", "reason": f"fewer than {MIN_SELECTION_ITEMS} validation items (routing "
                                                  "selection needs them)"}
        truth = table.filled_scores
        emb = self._map().featurize(table.prompts)
        cands = [by_name[m] for m in table.models]

        def routed(kappa: float, reads: list[bool]) -> float:
            return macro_routed_accuracy(self._prior(emb, cands, kappa, reads), truth, table.benchmark)

        start_kappa, start_reads = self._kappa(), self._reads_subjects()
        start = best = (routed(start_kappa, start_reads), start_kappa, start_reads)
        for kappa in (KAPPA_GRID if self.kappa is None else (start_kappa,)):
            reads = best[2] if kappa == best[1] else start_reads
            cur = (routed(kappa, reads), kappa, reads)
            for t in range(len(self.task_names_)):
                flipped = [r if i != t else not r for i, r in enumerate(cur[2])]
                acc = routed(kappa, flipped)
                if acc > cur[0]:
                    cur = (acc, kappa, flipped)
            if cur[0] > best[0]:
                best = cur
        self.kappa_, self.reads_subjects_ = float(best[1]), list(best[2])
        return {"by": "routing", "validation_items": int(len(truth)), "routed_accuracy": best[0],
                "likelihood_fit": {"kappa": start_kappa, "routed_accuracy": start[0]},
                "kappa": self.kappa_, "reads_subjects": dict(zip(self.task_names_, self.reads_subjects_))}

    # ---- the learned reading (modelsat.routers._prior_learning) ------------------------------------------------
    def _profile_arrays(self, candidates: Sequence[Profile]) -> "ProfileArrays":
        from modelsat.routers._prior_learning import ProfileArrays
        subjects, tasks = self._map().subjects, list(getattr(self, "task_names_", []))
        acc = np.zeros((len(subjects), len(candidates)))
        n = np.zeros_like(acc)
        task_acc = np.zeros((len(tasks), len(candidates)))
        task_n, has = np.zeros_like(task_acc), np.zeros_like(task_acc)
        for j, c in enumerate(candidates):
            for i, s in enumerate(subjects):
                sc = c.subjects.get(s)
                acc[i, j], n[i, j] = (sc.accuracy, sc.n_items) if sc is not None else (c.mean_accuracy, 0)
            for k, name in enumerate(tasks):
                sc = self._task_score(c, name)
                if sc is not None:
                    task_acc[k, j], task_n[k, j], has[k, j] = sc.accuracy, sc.n_items, 1.0
        return ProfileArrays(acc, n, np.array([c.mean_accuracy for c in candidates]), task_acc, task_n, has)

    def _task_logits(self, emb: np.ndarray) -> np.ndarray:
        if not getattr(self, "task_names_", None):
            return np.zeros((len(emb), 0))
        return np.asarray(emb, dtype=np.float64) @ self.task_coef_.T + self.task_intercept_

    def _learn(self, emb: np.ndarray, candidates: Sequence[Profile], scores: np.ndarray):
        from modelsat.routers._prior_learning import learn
        sm = self._map()
        lam0 = np.array([1.0 if reads else 0.0 for reads in self._reads_subjects()])
        return learn(emb, sm.similarities(emb) / sm.temperature, self._task_logits(emb),
                     self._profile_arrays(candidates), scores, lam0, self._kappa(), self.learn_steps,
                     self.learn_l2, self.learn_lr, self.learn_validation_fraction, self.seed)

    def _fit_tasks(self, items: pd.DataFrame, emb: np.ndarray | None, profiles: Sequence[Profile],
                   validation: pd.DataFrame | None = None) -> None:
        """The task classifier, when the items span several benchmarks that the profiles measure. With `C_grid`
        and at least MIN_SELECTION_ITEMS validation items of those benchmarks, its C is the grid's value that
        labels the validation items best (their benchmark, text only; ties to the smaller C)."""
        from modelsat.routers.per_category import fit_logistic
        self.task_C_, self.task_C_selection_ = float(self.C), None
        self.task_names_: list[str] = []
        self.task_coef_ = np.zeros((0, 384))
        self.task_intercept_ = np.zeros(0)
        self.mmlu_like_: list[str] = []
        if not self.tasks or emb is None or "benchmark" not in items:
            return
        measured = {t for p in profiles for t in list(p.tasks) + list(p.subjects)}
        names = sorted(b for b in items["benchmark"].unique() if b in measured)
        if len(names) < 2:
            return
        index = {b: i for i, b in enumerate(names)}
        keep = items["benchmark"].isin(names).to_numpy()
        y = items["benchmark"][keep].map(index).to_numpy()
        x = emb[keep].astype(np.float64)
        held = None if validation is None or not self.C_grid else (
            validation.drop_duplicates(["benchmark", "item_id"]).query("benchmark in @names"))
        if held is not None and len(held) >= MIN_SELECTION_ITEMS:
            hx = self._map().featurize(held["prompt"].tolist()).astype(np.float64)
            hy = held["benchmark"].map(index).to_numpy()
            fits = {C: fit_logistic(x, y, len(names), C, self.seed) for C in sorted(float(c) for c in self.C_grid)}
            accuracy = {C: float(np.mean(np.argmax(hx @ coef.T + intercept, axis=1) == hy))
                        for C, (coef, intercept) in fits.items()}
            self.task_C_ = max(accuracy, key=lambda c: (accuracy[c], -c))
            self.task_C_selection_ = {"validation_items": int(len(held)), "accuracy": {str(c): a for c, a in
                                                                                     accuracy.items()}}
            coef, intercept = fits[self.task_C_]
        else:
            coef, intercept = fit_logistic(x, y, len(names), self.task_C_, self.seed)
        subjects = set(self._map().subjects)
        has_subject = items["subject"].isin(subjects) if "subject" in items else pd.Series(False, index=items.index)
        share = has_subject.groupby(items["benchmark"]).mean()
        self.task_names_, self.task_coef_, self.task_intercept_ = names, coef, intercept
        self.mmlu_like_ = [b for b in names if share.get(b, 0.0) >= 0.5]

    def task_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, T) P(task | instruction) over `task_names_` (empty when no classifier was learned)."""
        if not getattr(self, "task_names_", None):
            return np.zeros((len(embeddings), 0))
        z = np.asarray(embeddings, dtype=np.float64) @ self.task_coef_.T + self.task_intercept_
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def _task_score(self, candidate: Profile, name: str) -> SubjectScore | None:
        """The candidate's accuracy on task `name` (a per-benchmark profile holds it among its subjects)."""
        return candidate.tasks.get(name) or (candidate.subjects.get(name) if name not in self._map().subjects
                                             else None)

    def _prior(self, emb: np.ndarray, candidates: Sequence[Profile], kappa: float,
               reads: Sequence[bool] | None = None, task_kappa: float | None = None) -> np.ndarray:
        """(n, m) prior from instruction embeddings: subjects, mixed with tasks when a classifier exists; `reads`
        (per task: read the subject prior, else the task accuracy) defaults to the fitted choice. A learned
        reading carries its own kappa and blends, and ignores both arguments."""
        sm = self._map()
        learned = getattr(self, "learned_", None)
        if learned is not None:
            from modelsat.routers._prior_learning import score
            return score(emb, sm.similarities(emb) / sm.temperature, self._task_logits(emb),
                         self._profile_arrays(candidates), learned)
        subject_prior = prior_scores([""] * len(emb), candidates, sm, kappa=kappa,
                                     weights=sm.weights_from_embeddings(emb))
        probs = self.task_probabilities(emb)
        if probs.shape[1] == 0:
            return subject_prior
        out = np.zeros_like(subject_prior)
        reads = self._reads_subjects() if reads is None else list(reads)
        for t, (name, reads_subjects) in enumerate(zip(self.task_names_, reads)):
            a = subject_prior
            if not reads_subjects:
                a = subject_prior.copy()
                for j, c in enumerate(candidates):
                    sc = self._task_score(c, name)
                    if sc is not None:
                        a[:, j] = shrink(sc.n_items, sc.accuracy, c.mean_accuracy,
                                         self._task_kappa(kappa) if task_kappa is None else task_kappa)
            out += probs[:, [t]] * a
        return out

    def _reads_subjects(self) -> list[bool]:
        """Per task: read the candidate's subject prior (MMLU-like tasks, unless selection chose otherwise) or its
        accuracy on the task."""
        chosen = getattr(self, "reads_subjects_", None)
        return list(chosen) if chosen is not None else [t in self.mmlu_like_ for t in self.task_names_]

    def score(self, instructions: Sequence[str], candidates: Sequence[Profile]) -> np.ndarray:
        """(n, m) prior: the candidate's shrunk profile accuracy at the instruction's subjects (and tasks)."""
        if not candidates:
            raise RouterError("profile-prior: no candidates")
        kappa, task_kappa = self._candidate_kappas(candidates)
        return self._prior(self._map().featurize(list(instructions)), candidates, kappa, task_kappa=task_kappa)

    def fit_choices(self) -> dict:
        if not hasattr(self, "kappa_"):
            return {}
        out = {"kappa": self._kappa(), "task_kappa": self._task_kappa(self._kappa()) if self.task_names_ else None,
               "kappa_fit": "given" if self.kappa is not None else self.kappa_fit,
               "temperature": float(self._map().temperature)}
        if self.task_names_:
            out["task_C"] = getattr(self, "task_C_", self.C)
        if getattr(self, "task_C_selection_", None):
            out["task_C_selection"] = self.task_C_selection_
        if getattr(self, "selection_", None):
            out["selection"] = self.selection_
        learned = getattr(self, "learned_", None)
        if learned is not None:
            out["learned"] = {"kappa": learned.kappa, "best_step": learned.history.get("best", {}).get("step")}
        return out

    def _get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        sm = self._map()
        arrays = {"anchors": sm.anchors}
        if sm.bias is not None:
            arrays["subject_bias"] = sm.bias
        if getattr(self, "task_names_", None):
            arrays |= {"task_coef": self.task_coef_, "task_intercept": self.task_intercept_}
        learned = getattr(self, "learned_", None)
        if learned is not None:
            arrays |= learned.arrays()
        return (arrays,
                {"subjects": sm.subjects, "temperature": sm.temperature, "kappa": self._kappa(),
                 "task_kappa": getattr(self, "task_kappa_", None),
                 "subject_features": sm.features,
                 "subject_map_provenance": sm.provenance, "task_names": list(getattr(self, "task_names_", [])),
                 "mmlu_like": list(getattr(self, "mmlu_like_", [])),
                 "reads_subjects": getattr(self, "reads_subjects_", None),
                 "selection": getattr(self, "selection_", None),
                 "learned": None if learned is None else {"kappa": learned.kappa, "history": learned.history}})

    def _set_state(self, arrays: dict[str, np.ndarray], extra: dict) -> None:
        if "anchors" not in arrays:
            return
        self.subject_map_ = SubjectMap(subjects=list(extra["subjects"]), anchors=arrays["anchors"],
                                       temperature=float(extra["temperature"]),
                                       provenance=dict(extra.get("subject_map_provenance") or {}),
                                       bias=arrays.get("subject_bias"),
                                       features=extra.get("subject_features", "minilm"))
        self.kappa_ = float(extra["kappa"])
        self.task_kappa_ = extra.get("task_kappa")
        self.task_names_ = list(extra.get("task_names") or [])
        self.mmlu_like_ = list(extra.get("mmlu_like") or [])
        self.reads_subjects_ = extra.get("reads_subjects")
        self.selection_ = extra.get("selection")
        self.task_coef_ = arrays.get("task_coef", np.zeros((0, 384)))
        self.task_intercept_ = arrays.get("task_intercept", np.zeros(0))
        from modelsat.routers._prior_learning import LearnedReading
        learned = extra.get("learned") or {}
        self.learned_ = LearnedReading.from_arrays(arrays, learned.get("kappa", self.kappa_), learned.get("history"))

    @classmethod
    def for_tests(cls) -> "ProfilePrior":
        """A router for the shared contract test (uses the shipped subject map; fit learns only kappa/T)."""
        return cls()


def profile_from_records(records: pd.DataFrame, model: str, subjects: Sequence[str],
                         test_version: str = "records", provenance: dict | None = None) -> Profile:
    """A profile of `model`: its mean score per subject over `records` rows in `subjects` (a stand-in when no
    aptitude-test profile exists: it rests on every given item, not on the 20 selected per subject)."""
    rows = records[(records["model"] == model) & records["subject"].isin(set(subjects))]
    if rows.empty:
        raise ModelsatError(f"no records of model {model!r} in the given subjects")
    g = rows.groupby("subject")["score"].agg(["mean", "size"])
    return Profile(model=model, test_version=test_version,
                   subjects={s: SubjectScore(float(r["mean"]), int(r["size"])) for s, r in g.iterrows()},
                   provenance=dict(provenance or {}))
