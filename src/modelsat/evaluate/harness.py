"""The benchmark: splits, profiles, one fit of every router per data family, scores per zoo, every figure.

The path of one run (issue 11; design.md, "Rules that hold everywhere"):

1. Records of each family (the zoos sharing a `family`) are split by item (`splits.py`); the split is written.
2. The aptitude test is built from MMLU-Pro's *training* items only; each model's profile is read from its
   training-split records (RouterDC / RouteLLM models fall back to their other items of each MMLU subject;
   sources with no MMLU subject get a per-benchmark profile, said in the notes).
3. Every router is fitted once per family on training items of the family's training models
   (an upper-bound router also on the test items), then scores each zoo's test items; its picks are compared,
   item by item, with the references computed here from the same matrix: random (expected value), the best
   single model and the per-benchmark/category best (both chosen on training items), and the oracle.
4. Scenarios: out-of-domain zoos (no training item of their benchmarks), the release stream (routers fitted
   without the new models' records; a new model joins by its aptitude-test profile only), and, where per-item
   costs are known, each router calibrated on validation items and swept under the routing policies
   (`cost.py`).
"""

from __future__ import annotations

import datetime as _dt
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.errors import ModelsatError
from modelsat.evaluate import cost as C
from modelsat.evaluate import metrics as M
from modelsat.evaluate.splits import apply_splits, assign_splits, write_splits
from modelsat.evaluate.zoos import Zoo
from modelsat.routers.base import Router, RouterError

N_BOOTSTRAP = 2000


# ---- data of one family ----------------------------------------------------------------------------------------
@dataclass
class Family:
    """The records of one data family, split; the models routers train on; every model's profile."""

    name: str
    records: pd.DataFrame                 # with `eval_split`
    splits: pd.DataFrame
    train_models: list[str]
    profiles: dict[str, Profile]
    profile_method: str
    zoos: list[Zoo]
    notes: list[str] = field(default_factory=list)
    stream_steps: list[dict] = field(default_factory=list)   # release_stream families only

    @property
    def train_records(self) -> pd.DataFrame:
        """Training-split records of the training models: all a router's `fit` ever sees."""
        r = self.records
        return r[(r["eval_split"] == "train") & r["model"].isin(self.train_models)].drop(columns=["eval_split"])

    @property
    def validation_records(self) -> pd.DataFrame:
        """Validation-split records of the training models: never a training, profile or test item (a router
        that asks for them may tune on them)."""
        r = self.records
        return r[(r["eval_split"] == "validation") & r["model"].isin(self.train_models)].drop(columns=["eval_split"])

    def split_counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.splits["split"].value_counts().items()}


def family_benchmarks(zoos: Sequence[Zoo], records: pd.DataFrame) -> list[str]:
    """Benchmarks of `records` that any of the family's zoos selects."""
    return sorted(b for b in records["benchmark"].unique() if any(z.selects_benchmark(b) for z in zoos))


def contaminated_items(records: pd.DataFrame) -> set:
    """(benchmark, item_id) pairs a source marks as contaminated (RouteLLM): kept out of test."""
    if "contaminated" not in records.columns:
        return set()
    bad = records[records["contaminated"].fillna(False).astype(bool)]
    return set(zip(bad["benchmark"], bad["item_id"].astype(str)))


def release_order(dates_csv: Path, dataset: str, models: Sequence[str]) -> list[tuple[str, str]]:
    """(model, date) of `models` sorted by release date (then name), from release_dates.csv."""
    if not dates_csv.exists():
        raise ModelsatError(f"{dates_csv}: no release-date file; the release stream needs it "
                            "(columns dataset,model,release_date)")
    d = pd.read_csv(dates_csv, dtype=str)
    d = d[d["dataset"] == dataset]
    known = dict(zip(d["model"], d["release_date"]))
    missing = [m for m in models if m not in known]
    if missing:
        raise ModelsatError(f"{dates_csv}: no release date for {', '.join(missing)} (dataset {dataset!r})")
    return sorted(((m, known[m]) for m in models), key=lambda x: (x[1], x[0]))


def benchmark_profile(records: pd.DataFrame, model: str, family: str, key: str = "benchmark") -> Profile:
    """A per-benchmark profile: accuracy on each benchmark's training items (used where no MMLU subject exists),
    the same figures also as its `tasks` (what the profile prior's task classifier reads)."""
    r = records[records["model"] == model]
    g = r.groupby(key)["score"].agg(["mean", "size"])
    scores = {str(k): SubjectScore(float(v["mean"]), int(v["size"])) for k, v in g.iterrows()}
    return Profile(model=model, test_version=f"per-{key}:{family}", subjects=scores, tasks=dict(scores),
                   provenance={"method": f"per-{key} accuracy on training items", "family": family})


def make_profiles(records: pd.DataFrame, models: Sequence[str], test, family: str,
                  core_only: Sequence[str] = ()) -> tuple[dict[str, Profile], str]:
    """Profiles of `models` from `records` (training items only, already filtered) on aptitude test `test`.

    Models in `core_only` are profiled on the test's core items alone, as a newly released model that only took
    the test. Falls back to per-benchmark profiles when the records carry no MMLU subject. Where the records
    span several benchmarks, every other model's profile also carries its per-benchmark accuracy as `tasks`.
    """
    from modelsat.aptitude.from_records import profile_from_records
    profiles: dict[str, Profile] = {}
    method = "aptitude test"
    core = {(it.benchmark, it.item_id) for s in test.subjects for it in s.items} if test is not None else set()
    for m in models:
        recs = records
        if m in core_only:
            recs = records[(records["model"] == m)
                           & pd.Series(list(zip(records["benchmark"], records["item_id"])), index=records.index)
                           .isin(core)]
        try:
            if test is None:
                raise ModelsatError("no aptitude test")
            profiles[m] = profile_from_records(recs, m, test, label=f"{family} training split")
        except ModelsatError:
            if m in core_only:
                raise
            profiles[m] = benchmark_profile(records, m, family)
            method = "per-benchmark accuracy on training items (no MMLU subject in these records)"
        if m not in core_only and records["benchmark"].nunique() > 1 and not profiles[m].tasks:
            profiles[m].tasks = benchmark_profile(records, m, family).tasks
    if records["benchmark"].nunique() > 1 and any(p.tasks for p in profiles.values()):
        method += "; with per-benchmark task accuracies on training items"
    return profiles, method


def add_cost_notes(profiles: dict[str, Profile], train: pd.DataFrame) -> None:
    """Puts each model's mean USD per call on training items into its profile notes (where costs are known)."""
    costs = train.groupby("model")["cost"].mean()
    for m, p in profiles.items():
        if m in costs.index and pd.notna(costs[m]):
            p.notes["mean_cost_usd_per_call"] = round(float(costs[m]), 8)


def prepare_family(name: str, zoos: Sequence[Zoo], records: pd.DataFrame, seed: int, test_builder: Callable,
                   dates_csv: Path | None = None) -> Family:
    """Splits, training models and profiles of one family; `test_builder(pool)` returns an aptitude test
    (or None) built from training items of `pool` only."""
    benches = family_benchmarks(zoos, records)
    if not benches:
        raise ModelsatError(f"family {name!r}: none of the zoos' benchmarks "
                            f"({', '.join(sorted({b for z in zoos for b in (z.benchmarks or ['*'])}))}) "
                            f"is in the records (found: {', '.join(sorted(records['benchmark'].unique())[:20])})")
    recs = records[records["benchmark"].isin(benches)]
    # one prompt text per item: a few sources render the same item slightly differently per model (MMLU-Pro: 17
    # of 12,032 items), and routers that key by text (oracle, reranker's responses) must see one text
    recs = recs.assign(prompt=recs.groupby(["benchmark", "item_id"], sort=False)["prompt"].transform("first"))
    splits = assign_splits(recs, seed=seed, exclude_from_test=contaminated_items(recs))
    recs = apply_splits(recs, splits)
    all_models = sorted(recs["model"].unique())
    for z in zoos:
        missing = [m for m in z.model_names if m not in all_models]
        if missing:
            raise ModelsatError(f"zoo {z.name!r}: no records for {', '.join(missing)} in benchmarks "
                                f"{', '.join(benches)}; known models: {', '.join(all_models)}")
    train = recs[recs["eval_split"] == "train"]
    notes: list[str] = []
    stream = [z for z in zoos if z.scenario == "release_stream"]
    if stream:
        z = stream[0]
        order = release_order(dates_csv, z.source or name, all_models)
        cutoff = z.cutoff or order[len(order) // 2][1]
        train_models = [m for m, d in order if d < cutoff]
        new_models = [m for m, d in order if d >= cutoff]
        if len(train_models) < 2 or not new_models:
            raise ModelsatError(f"zoo {z.name!r}: cutoff {cutoff} leaves {len(train_models)} training and "
                                f"{len(new_models)} new models; pick a date with some of each")
        test = test_builder(train_models, train[train["model"].isin(train_models)])
        profiles, method = make_profiles(train, all_models, test, name, core_only=new_models)
        fam = Family(name, recs, splits, train_models, profiles, method, list(zoos), notes)
        fam.stream_steps = stream_steps(order, train_models, profiles, z.keep_best, cutoff)
        notes.append(f"release stream: routers fit on {len(train_models)} models released before {cutoff}; "
                     f"{len(new_models)} later releases join by aptitude-test profile only")
        return fam
    train_models = all_models
    test = test_builder(train_models, train)
    profiles, method = make_profiles(train, all_models, test, name)
    add_cost_notes(profiles, train)
    return Family(name, recs, splits, train_models, profiles, method, list(zoos), notes)


def price_records(records: pd.DataFrame, zoos: Sequence[Zoo]) -> tuple[pd.DataFrame, list[str]]:
    """The records, where a zoo gives a model a price (`price_per_mtok`) and its records carry no cost, with the
    cost that price implies and `cost_is_estimate` set: (input price × prompt tokens + output price × output
    tokens) / 1e6 (the cost model of `policies.expected_cost`), tokens estimated as characters / CHARS_PER_TOKEN, the output
    being the record's response where it holds one, else `policies.DEFAULT_OUTPUT_TOKENS`. Returns the notes
    that say so. A record's own cost always wins."""
    from modelsat.policies import CHARS_PER_TOKEN, DEFAULT_OUTPUT_TOKENS, split_price
    prices = {m.name: split_price(m.price_per_mtok) for z in zoos for m in z.models if m.price_per_mtok is not None}
    if not prices or "cost" not in records.columns:
        return records, []
    todo = records["model"].isin(list(prices)) & records["cost"].isna()
    if not todo.any():
        return records, []
    r = records.loc[todo]
    prompt_tokens = r["prompt"].astype(str).str.len().to_numpy() / CHARS_PER_TOKEN
    response = r["response"] if "response" in r.columns else pd.Series(None, index=r.index)
    out_tokens = np.where(response.notna(), response.astype(str).str.len() / CHARS_PER_TOKEN, DEFAULT_OUTPUT_TOKENS)
    price_in = r["model"].map(lambda m: prices[m][0]).to_numpy(dtype=float)
    price_out = r["model"].map(lambda m: prices[m][1]).to_numpy(dtype=float)
    records = records.copy()
    records.loc[todo, "cost"] = (prompt_tokens * price_in + out_tokens * price_out) / 1e6
    records["cost_is_estimate"] = todo | (records["cost_is_estimate"].fillna(False).astype(bool)
                                          if "cost_is_estimate" in records.columns else False)
    note = (f"costs of {', '.join(sorted(r['model'].unique()))} estimated from the zoo's prices "
            f"({'; '.join(f'{m} {p[0]:g}/{p[1]:g} USD per Mtok in/out' for m, p in sorted(prices.items()))}): "
            f"prompt and response tokens as characters / {CHARS_PER_TOKEN}, {DEFAULT_OUTPUT_TOKENS} output "
            "tokens where a record holds no response")
    return records, [note]


def cap_training_items(family: Family, max_items: int, seed: int) -> list[str]:
    """Keeps at most `max_items` training items per benchmark (seeded); the rest become `unused` (quick runs)."""
    r = family.records
    items = r[r["eval_split"] == "train"][["benchmark", "item_id"]].drop_duplicates()
    drop, notes = set(), []
    for b, g in items.groupby("benchmark"):
        if len(g) > max_items:
            rng = np.random.default_rng(seed)
            gone = g.iloc[rng.permutation(len(g))[max_items:]]
            drop |= set(zip(gone["benchmark"], gone["item_id"]))
            notes.append(f"{b}: {max_items} of {len(g)} training items (quick, seeded sample)")
    if drop:
        keys = pd.Series(list(zip(r["benchmark"], r["item_id"])), index=r.index)
        family.records = r.assign(eval_split=r["eval_split"].where(~keys.isin(drop), "unused"))
        key = pd.Series(list(zip(family.splits["benchmark"], family.splits["item_id"])), index=family.splits.index)
        family.splits = family.splits.assign(split=family.splits["split"].where(~key.isin(drop), "unused"))
    family.notes.extend(notes)
    return notes


def stream_steps(order, train_models, profiles, keep_best: int, cutoff: str) -> list[dict]:
    """At each release after the cutoff: the zoo is the `keep_best` best models so far (by profile) + the newest."""
    released = list(train_models)
    steps = []
    for model, date in order:
        if date < cutoff:
            continue
        best = sorted(released, key=lambda m: -profiles[m].mean_accuracy)[:keep_best]
        steps.append({"newest": model, "date": date, "models": best + [model],
                      "unseen": [m for m in best + [model] if m not in set(train_models)]})
        released.append(model)
    return steps


# ---- one zoo's test matrix and references -----------------------------------------------------------------------------
@dataclass
class ZooData:
    """Everything one zoo's evaluation needs: the test items every zoo model answered, and the references."""

    name: str
    zoo: Zoo
    models: list[str]
    prompts: list[str]
    item_keys: list[tuple[str, str]]
    scores: np.ndarray         # (n, m)
    costs: np.ndarray          # (n, m), NaN where unknown
    groups: np.ndarray         # benchmark per item
    best_groups: np.ndarray    # group_by value per item (benchmark or category)
    references: dict           # name -> per-item score array
    best_single: str
    notes: list[str]
    train_costs: np.ndarray    # mean training cost per model (NaN where unknown)


def _matrix(recs: pd.DataFrame, models: list[str], value: str) -> pd.DataFrame:
    return recs.pivot_table(index=["benchmark", "item_id"], columns="model", values=value,
                            aggfunc="first").reindex(columns=models)


def build_zoo_data(family: Family, zoo: Zoo, models: list[str] | None = None, name: str | None = None,
                   max_test_items: int | None = None, seed: int = 0) -> ZooData:
    """The zoo's test matrix (items every zoo model answered) and its reference choices made on training items."""
    models = list(models or zoo.model_names)
    r = family.records
    r = r[r["model"].isin(models) & r["benchmark"].map(zoo.selects_benchmark)]
    test = r[r["eval_split"] == "test"]
    S = _matrix(test, models, "score").dropna()
    notes = []
    if max_test_items:
        keep = []
        for b, grp in S.groupby(level=0):
            idx = grp.index
            if len(idx) > max_test_items:
                rng = np.random.default_rng(seed)
                idx = idx[np.sort(rng.choice(len(idx), max_test_items, replace=False))]
                notes.append(f"{b}: {max_test_items} of {len(grp)} test items (quick, seeded sample)")
            keep.extend(idx)
        S = S.loc[keep]
    if len(S) == 0:
        raise ModelsatError(f"zoo {name or zoo.name!r}: no test item answered by every zoo model")
    meta = test.drop_duplicates(["benchmark", "item_id"]).set_index(["benchmark", "item_id"])
    meta = meta.reindex(S.index)
    C = _matrix(test, models, "cost").reindex(S.index)
    groups = np.array([b for b, _ in S.index])
    gcol = zoo.group_by if zoo.group_by in meta.columns else "benchmark"
    best_groups = (groups if gcol == "benchmark"
                   else np.array([v if isinstance(v, str) else b for v, b in zip(meta[gcol], groups)]))
    # reference choices on training items: of the zoo's benchmarks where it has some, else of the whole family
    # (out-of-domain zoos have none of their own); missing training results count as wrong
    tr_all = family.records[(family.records["eval_split"] == "train") & family.records["model"].isin(models)]
    tr = tr_all[tr_all["benchmark"].map(zoo.selects_benchmark)]
    if len(tr) == 0 and len(tr_all):
        tr = tr_all
        notes.append("no training items of this zoo's benchmarks: best single chosen on the family's training items")
    elif len(tr) == 0:
        tr = test[test.set_index(["benchmark", "item_id"]).index.isin(S.index)]
        notes.append("no training items at all: best single and per-group best chosen on the test items "
                     "themselves (hindsight; they flatter the references, never the router)")
    T = _matrix(tr, models, "score").fillna(0.0)
    t_groups = np.array([b for b, _ in T.index])
    tmeta = tr.drop_duplicates(["benchmark", "item_id"]).set_index(["benchmark", "item_id"]).reindex(T.index)
    t_best_groups = (t_groups if gcol == "benchmark" or gcol not in tmeta.columns
                     else np.array([v if isinstance(v, str) else b for v, b in zip(tmeta[gcol], t_groups)]))
    Sv = S.to_numpy(dtype=float)
    bs = M.best_single_index(T.to_numpy(), t_groups)
    pg_picks, missing = M.per_group_best_picks(T.to_numpy(), t_best_groups, best_groups, bs)
    if missing:
        notes.append(f"per-{gcol} best: no training items for {', '.join(missing[:8])}"
                     f"{' ...' if len(missing) > 8 else ''}; best single used there")
    refs = {"random": M.random_scores(Sv), "best single": M.single_scores(Sv, bs),
            f"per-{gcol} best": M.routed_scores(Sv, pg_picks), "oracle": M.oracle_scores(Sv)}
    train_costs = tr_all.groupby("model")["cost"].mean().reindex(models).to_numpy(dtype=float)
    return ZooData(name=name or zoo.name, zoo=zoo, models=models, prompts=[str(p) for p in meta["prompt"]],
                   item_keys=[(str(b), str(i)) for b, i in S.index], scores=Sv, costs=C.to_numpy(dtype=float),
                   groups=groups, best_groups=best_groups, references=refs, best_single=models[bs],
                   notes=notes, train_costs=train_costs)


# ---- rows of the table ---------------------------------------------------------------------------------------------
def summarize(name: str, kind: str, per_item: np.ndarray, zd: ZooData, seed: int, picks: np.ndarray | None = None,
              seconds: float | None = None) -> dict:
    """One row: per-benchmark and mean score, difference to best single with its paired-bootstrap CI, gap closed."""
    base = zd.references["best single"]
    mean = M.macro_mean(per_item, zd.groups)
    bs_mean = M.macro_mean(base, zd.groups)
    oracle = M.macro_mean(zd.references["oracle"], zd.groups)
    row = {"method": name, "kind": kind, "status": "ok", "per_benchmark": M.group_means(per_item, zd.groups),
           "mean": mean, "gap_closed": M.gap_closed(mean, bs_mean, oracle)}
    if name != "best single":
        row["delta_vs_best_single"] = M.paired_bootstrap(per_item, base, zd.groups, N_BOOTSTRAP, seed).to_dict()
    if picks is not None:
        counts = np.bincount(picks, minlength=len(zd.models)) / len(picks)
        row["pick_share"] = {m: float(c) for m, c in zip(zd.models, counts) if c > 0}
        row["cost_per_call"] = M.routed_cost(zd.costs, picks)
    if seconds is not None:
        row["ms_per_instruction"] = 1000.0 * seconds / max(len(zd.prompts), 1)
    return row


def reference_rows(zd: ZooData, seed: int) -> list[dict]:
    rows = []
    for name, per_item in zd.references.items():
        kind = "upper bound" if name == "oracle" else "reference"
        row = summarize(name, kind, per_item, zd, seed)
        if name == "best single":
            row["model"] = zd.best_single
            col = zd.costs[:, zd.models.index(zd.best_single)]
            row["cost_per_call"] = float(col.mean()) if not np.isnan(col).any() else None
        rows.append(row)
    return rows


def single_model_rows(zd: ZooData) -> list[dict]:
    """Every zoo model alone: its mean score and cost (the points of the cost-quality plot)."""
    return [{"model": m, "mean": M.macro_mean(zd.scores[:, j], zd.groups),
             "per_benchmark": M.group_means(zd.scores[:, j], zd.groups),
             "cost_per_call": float(np.mean(zd.costs[:, j])) if not np.isnan(zd.costs[:, j]).any() else None}
            for j, m in enumerate(zd.models)]


def router_scores(router: Router, zd: ZooData, profiles: dict[str, Profile], family: Family) -> tuple[np.ndarray, float]:
    """The router's (n, m) scores on the zoo's test prompts and the seconds they took."""
    cands = [profiles[m] for m in zd.models]
    if getattr(router, "needs_responses", False):
        resp = family.records[family.records["model"].isin(zd.models)]
        idx = pd.MultiIndex.from_arrays([resp["benchmark"], resp["item_id"].astype(str)])
        resp = resp[idx.isin(pd.MultiIndex.from_tuples(zd.item_keys))]
        if resp["response"].isna().all():
            raise RouterError("needs responses and these records have none")
        router.attach_responses(resp[["model", "prompt", "response"]].reset_index(drop=True))
    start = time.perf_counter()
    s = np.asarray(router.score(zd.prompts, cands), dtype=float)
    seconds = time.perf_counter() - start
    if s.shape != (len(zd.prompts), len(cands)):
        raise RouterError(f"score returned shape {s.shape}, expected {(len(zd.prompts), len(cands))}")
    return s, seconds


@dataclass
class SharedScores:
    """One router's scores on the union of a family's zoos (prompts × models), sliced per zoo."""

    prompts: dict[str, int]
    models: dict[str, int]
    scores: np.ndarray
    seconds_per_prompt: float

    def for_zoo(self, zd: ZooData) -> tuple[np.ndarray, float]:
        rows = [self.prompts[p] for p in zd.prompts]
        cols = [self.models[m] for m in zd.models]
        return self.scores[np.ix_(rows, cols)], self.seconds_per_prompt * len(zd.prompts)


def shared_scores(router: Router, zoo_data: Sequence[ZooData], profiles: dict[str, Profile]) -> SharedScores | None:
    """Scores every prompt of the zoos once with every model of the zoos, for a router whose candidates' scores
    are independent of each other (`columns_independent`); None when that does not apply or fails (the zoos
    are then scored one by one, where each failure is reported)."""
    if not getattr(router, "columns_independent", False) or getattr(router, "needs_responses", False) \
            or len(zoo_data) < 2:
        return None
    prompts = list(dict.fromkeys(p for zd in zoo_data for p in zd.prompts))
    models = sorted({m for zd in zoo_data for m in zd.models})
    start = time.perf_counter()
    try:
        s = np.asarray(router.score(prompts, [profiles[m] for m in models]), dtype=float)
    except RouterError:
        return None
    if s.shape != (len(prompts), len(models)):
        return None
    return SharedScores({p: i for i, p in enumerate(prompts)}, {m: j for j, m in enumerate(models)}, s,
                        (time.perf_counter() - start) / max(len(prompts), 1))


def router_row(name: str, router: Router, zd: ZooData, profiles: dict[str, Profile], family: Family,
               seed: int, shared: SharedScores | None = None) -> tuple[dict, np.ndarray | None]:
    """The router's row on one zoo (or an n/a row saying why), and its score matrix. With `shared`, the scores
    are sliced from the family-wide matrix and ms/instruction is that run's (with every model of the family's
    zoos as candidates, so an upper estimate for a smaller zoo)."""
    kind = "upper bound" if getattr(router, "is_upper_bound", False) else "router"
    if name in zd.references:   # the registered `random` / `oracle` routers beside the computed references
        name = f"{name} (router)"
    try:
        s, seconds = shared.for_zoo(zd) if shared is not None else router_scores(router, zd, profiles, family)
    except RouterError as exc:
        unseen = getattr(router, "needs_seen_models", False) and any(m not in family.train_models for m in zd.models)
        status = "n/a (unseen model)" if unseen else f"n/a ({exc})"
        return {"method": name, "kind": kind, "status": status, "reason": str(exc)}, None
    picks = np.argmax(s, axis=1)
    row = summarize(name, kind, M.routed_scores(zd.scores, picks), zd, seed, picks, seconds)
    return row, s


HEAD_TO_HEAD_OTHERS = ("knn", "per-category", "profile-prior")   # the cheap routers Model-SAT is set against
HEAD_TO_HEAD_PREFIX = "modelsat"                                  # rows compared: modelsat and modelsat:VARIANT


def head_to_head(per_item: dict[str, np.ndarray], groups: np.ndarray, seed: int,
                 seeded: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, dict]]:
    """{modelsat row: {other: Δ (points as a fraction) with its paired-bootstrap 95 % CI}} for every Model-SAT row
    against the cheap routers and the per-benchmark/category best reference present in `per_item` (routed score
    per test item and method). `per_item` values may be (items, zoos) to compare the mean over zoos that share
    their test items. A method trained over several seeds has its (seeds, ...) routed scores in `seeded`: its
    interval then resamples seeds as well as items (`metrics.seeded_paired_bootstrap`). Only methods that
    produced scores appear."""
    seeded = seeded or {}
    others = ([m for m in HEAD_TO_HEAD_OTHERS if m in per_item]
              + [m for m in per_item if m.startswith("per-") and m.endswith(" best")])
    out: dict[str, dict[str, dict]] = {}
    for subject, a in per_item.items():
        if not subject.startswith(HEAD_TO_HEAD_PREFIX):
            continue
        if subject in seeded:
            out[subject] = {o: M.seeded_paired_bootstrap(seeded[subject], per_item[o][None], groups, N_BOOTSTRAP,
                                                         seed).to_dict() for o in others}
        else:
            out[subject] = {o: M.paired_bootstrap(a, per_item[o], groups, N_BOOTSTRAP, seed).to_dict()
                            for o in others}
    return {k: v for k, v in out.items() if v}


JOINT_MIN_SHARED = 0.5   # pool zoos head to head only on test items held by all of them, if that is this share


def joint_head_to_head(zoo_data: Sequence[ZooData], per_item: dict[str, dict[str, np.ndarray]],
                       seed: int, seeded: dict[str, dict[str, np.ndarray]] | None = None) -> dict | None:
    """head_to_head on the mean over several zoos, resampling the test items they share together (a zoo whose
    models miss a few items draws a slightly different sample); None when they share less than JOINT_MIN_SHARED
    of the smallest zoo's items, or no method compared has scores in all of them."""
    if len(zoo_data) < 2:
        return None
    shared = set(zoo_data[0].item_keys).intersection(*(zd.item_keys for zd in zoo_data[1:]))
    if len(shared) < JOINT_MIN_SHARED * min(len(zd.item_keys) for zd in zoo_data):
        return None
    take = {zd.name: np.array(sorted((i for i, k in enumerate(zd.item_keys) if k in shared),
                                     key=lambda i, keys=zd.item_keys: keys[i]))   # shared items, one order
            for zd in zoo_data}
    methods = [m for m in per_item[zoo_data[0].name] if all(m in per_item[zd.name] for zd in zoo_data)]
    stacked = {m: np.column_stack([per_item[zd.name][m][take[zd.name]] for zd in zoo_data]) for m in methods}
    seeded = seeded or {}
    seeded_methods = [m for m in methods if all(m in seeded.get(zd.name, {}) for zd in zoo_data)]
    stacked_seeds = {m: np.stack([seeded[zd.name][m][:, take[zd.name]] for zd in zoo_data], axis=-1)
                     for m in seeded_methods}
    groups = zoo_data[0].groups[take[zoo_data[0].name]]
    result = head_to_head(stacked, groups, seed, stacked_seeds)
    return {"zoos": [zd.name for zd in zoo_data], "shared_items": len(shared), "deltas": result} if result else None


def has_costs(zd: ZooData) -> bool:
    """True when every test item's cost is known for every zoo model, and every model's mean training cost
    (what the policies expect to pay): the zoos that get a cost section."""
    return bool(zd.costs.size) and not np.isnan(zd.costs).any() and not np.isnan(zd.train_costs).any()


def priced_items(zd: ZooData) -> "C.PricedItems":
    """The zoo's test items as the cost section reads them: outcomes, charged costs, the policies' expected cost
    per call (each model's mean cost on training items) and the best single model."""
    return C.PricedItems(models=list(zd.models), scores=zd.scores, costs=zd.costs, groups=zd.groups,
                         expected=np.asarray(zd.train_costs, dtype=float), best=zd.models.index(zd.best_single))


def calibration_records(family: Family, max_items: int | None, seed: int) -> pd.DataFrame:
    """The family's validation records that routers are calibrated on: at most `max_items` items per benchmark
    (seeded sample; None = all). Never a training or test item."""
    val = family.validation_records
    if not max_items:
        return val
    items = val[["benchmark", "item_id"]].drop_duplicates()
    keep = []
    for _, g in items.groupby("benchmark"):
        if len(g) > max_items:
            g = g.iloc[np.sort(np.random.default_rng(seed).choice(len(g), max_items, replace=False))]
        keep.append(g)
    if not keep:
        return val
    chosen = pd.MultiIndex.from_frame(pd.concat(keep))
    return val[pd.MultiIndex.from_frame(val[["benchmark", "item_id"]]).isin(chosen)]


def calibrate_router(router: Router, family: Family, validation: pd.DataFrame) -> dict:
    """Fits the router's calibrator (`Router.calibrate`, method auto) on the validation records; returns what it
    chose and how long it took. A router that reads responses is given the validation items' responses."""
    if validation.empty:
        raise RouterError("no validation items to calibrate on")
    if getattr(router, "needs_responses", False):
        if validation["response"].isna().all():
            raise RouterError("needs responses and the validation records have none")
        router.attach_responses(validation[["model", "prompt", "response"]].reset_index(drop=True))
    start = time.perf_counter()
    router.calibrate(validation, [family.profiles[m] for m in family.train_models])
    return {"method": router.calibrator_.method, "pairs": router.calibrator_.choice.get("pairs"),
            "items": int(validation[["benchmark", "item_id"]].drop_duplicates().shape[0]),
            "seconds": time.perf_counter() - start}


# ---- routers ----------------------------------------------------------------------------------------------------
def training_seeds(router: Router, seed: int, n_seeds: int) -> list[int]:
    """The seeds a router is trained with: `n_seeds` of them (seed, seed + 1, ...) for a router whose fit
    depends on its seed (`varies_with_seed`), else just `seed`."""
    return [seed + k for k in range(max(n_seeds, 1))] if getattr(router, "varies_with_seed", False) else [seed]


def seeded_row(name: str, per_seed: Sequence[tuple[int, np.ndarray, np.ndarray, float]], zd: ZooData,
               seed: int) -> tuple[dict, np.ndarray]:
    """The row of a router trained over several seeds: its figures are the mean over seeds (per item, so the
    macro mean is the mean of each seed's), the interval against the best single model resamples seeds and
    items, and `seeds` / `seed_spread` give each seed's figure. `per_seed` holds (training seed, scores,
    routed per item, seconds) for each seed. Returns the row and the (seeds, items) routed scores."""
    routed = np.stack([r for _, _, r, _ in per_seed])
    picks = np.concatenate([np.argmax(s, axis=1) for _, s, _, _ in per_seed])
    row = summarize(name, "router", routed.mean(axis=0), zd, seed, seconds=float(np.mean([t for *_, t in per_seed])))
    counts = np.bincount(picks, minlength=len(zd.models)) / len(picks)
    row["pick_share"] = {m: float(c) for m, c in zip(zd.models, counts) if c > 0}
    row["cost_per_call"] = float(np.mean([M.routed_cost(zd.costs, np.argmax(s, axis=1)) for _, s, _, _ in per_seed]))
    base = zd.references["best single"]
    row["delta_vs_best_single"] = M.seeded_paired_bootstrap(routed, base[None], zd.groups, N_BOOTSTRAP,
                                                            seed).to_dict()
    bs_mean = M.macro_mean(base, zd.groups)
    means = [M.macro_mean(r, zd.groups) for r in routed]
    row["seeds"] = [{"seed": k, "mean": m, "delta": m - bs_mean} for (k, *_), m in zip(per_seed, means)]
    row["seed_spread"] = {"n": len(means), "sd": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
                          "min": float(min(means)), "max": float(max(means))}
    return row, routed


def make_router(name: str, quick: bool = False, seed: int = 0) -> Router:
    """A fresh instance of registered router `name`; with `quick`, its `quick_params` (or preset="quick")."""
    from modelsat.routers import get
    cls = get(name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {}
    if quick:
        quick_params = getattr(cls, "quick_params", None)
        if isinstance(quick_params, dict):
            kwargs.update(quick_params)
        elif "preset" in params:
            kwargs["preset"] = "quick"
    if "seed" in params:
        kwargs["seed"] = seed
    return cls(**kwargs)


def fit_router(name: str, router: Router, family: Family) -> tuple[Router | None, dict]:
    """Fits `router` on the family's training items (all items for an upper bound); returns it and a status."""
    if getattr(router, "is_upper_bound", False):
        recs = family.records[family.records["model"].isin(family.train_models)].drop(columns=["eval_split"])
    else:
        recs = family.train_records
    if getattr(router, "needs_responses", False) and recs["response"].isna().all():
        return None, {"status": "skipped", "reason": "needs responses; this family's records have none"}
    profiles = [family.profiles[m] for m in family.train_models]
    kwargs = {"validation": family.validation_records} if router.tunes_on_validation else {}
    start = time.perf_counter()
    try:
        router = router.fit(recs, profiles, **kwargs)
    except RouterError as exc:
        return None, {"status": "skipped", "reason": str(exc)}
    status = {"status": "ok", "fit_seconds": time.perf_counter() - start,
              "train_items": int(recs[["benchmark", "item_id"]].drop_duplicates().shape[0]), "train_records": len(recs)}
    choices = router.fit_choices()
    if choices:
        status["choices"] = choices
    return router, status


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_family_splits(family: Family, out_dir: Path) -> Path:
    return write_splits(family.splits, out_dir / "splits" / f"{family.name}.csv")
