"""`modelsat benchmark`: every registered router on every zoo, on real data, with the references beside it."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelsat import sources
from modelsat.aptitude.profile import write_json_atomic
from modelsat.errors import ModelsatError
from modelsat.evaluate import cost as C
from modelsat.evaluate import harness as H
from modelsat.evaluate import metrics as M
from modelsat.evaluate.splits import apply_splits, assign_splits
from modelsat.evaluate.zoos import Zoo
from modelsat.paths import data_dir as resolve_data_dir
from modelsat.routers.ensemble import average_probabilities

QUICK_MAX_TEST_ITEMS = 600      # per benchmark and zoo, seeded sample
QUICK_MAX_TRAIN_ITEMS = 1000    # per benchmark, seeded sample (profiles still use every training item)


class AptitudeTests:
    """Builds the aptitude test from MMLU-Pro *training* items only (never a test or validation item)."""

    def __init__(self, data: Path, seed: int, console: Console, rule: str = "distinguishing"):
        self.data, self.seed, self.console, self.rule = data, seed, console, rule
        self._main = None
        self._pro_train: pd.DataFrame | None = None

    def _pro(self) -> pd.DataFrame | None:
        if self._pro_train is None:
            try:
                pro = sources.load("mmlu_pro", data=self.data)
            except ModelsatError as exc:
                self.console.print(f"[yellow]no MMLU-Pro records ({exc}); profiles will be per-benchmark[/]")
                return None
            split = apply_splits(pro, assign_splits(pro, seed=self.seed))
            self._pro_train = split[split["eval_split"] == "train"].drop(columns=["eval_split"])
        return self._pro_train

    def build(self, pool: Sequence[str] | None, train: pd.DataFrame | None):
        """A test from `train` (training items) chosen on `pool`; the main MMLU-Pro test when `train` has no
        MMLU-Pro items (other families profile their models on it by fallback)."""
        from modelsat.aptitude.core_items import build_test
        if train is not None and (train["benchmark"] == "mmlu_pro").any():
            return build_test(train, pool=list(pool) if pool else None, seed=self.seed, rule=self.rule,
                              source={"benchmark": "mmlu_pro", "records": "training split"})
        if self._main is None:
            pro = self._pro()
            if pro is None:
                return None
            self._main = build_test(pro, seed=self.seed, rule=self.rule,
                                    source={"benchmark": "mmlu_pro", "records": "training split"})
        return self._main


def _log_line(console: Console):
    """Prints a dated line for each step when the output is not a terminal (a log file), where rich's live
    progress bars print nothing until they end."""
    def say(msg: str) -> None:
        if not console.is_terminal:
            console.print(f"{H.utc_now()} {msg}", soft_wrap=True, highlight=False)
    return say


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def max_test_items_for(quick: bool, test_items: int | None) -> int | None:
    """Test items kept per benchmark and zoo (None = all): `test_items` when given (0 = all), else
    QUICK_MAX_TEST_ITEMS for a quick run and all for a full one."""
    if test_items is None:
        return QUICK_MAX_TEST_ITEMS if quick else None
    if test_items < 0:
        raise ValueError(f"test_items must be 0 (every test item) or a positive cap, got {test_items}")
    return test_items or None


def run_benchmark(zoos: Sequence[Zoo], router_names: Sequence[str], out_dir: Path, data: str | None = None,
                  seed: int = 0, quick: bool = False, console: Console | None = None,
                  save_routers: bool = True, test_items: int | None = None,
                  aptitude_rule: str = "distinguishing", train_seeds: int = 1) -> dict:
    """Trains, evaluates and returns every figure (also written to `out_dir/results.json`). `test_items` caps
    the test items per benchmark and zoo (seeded sample; 0 = every test item); by default a quick run keeps
    QUICK_MAX_TEST_ITEMS and a full run all of them. `aptitude_rule` is how the aptitude test chooses its items
    (`modelsat.aptitude.core_items.ITEM_RULES`). A router whose training depends on its seed (`varies_with_seed`)
    is trained `train_seeds` times (seeds seed, seed + 1, ...): its row is the mean over them with each seed's
    figure and the spread, and a `NAME-ensemble` row routes by the seeds' averaged probabilities."""
    console = console or Console()
    say = _log_line(console)
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = resolve_data_dir(data)
    families: "OrderedDict[str, list[Zoo]]" = OrderedDict()
    for z in zoos:
        families.setdefault(z.family, []).append(z)
    from modelsat.aptitude.core_items import ITEM_RULES
    if aptitude_rule not in ITEM_RULES:
        raise ModelsatError(f"aptitude rule must be one of {', '.join(ITEM_RULES)}, got {aptitude_rule!r}")
    tests = AptitudeTests(data_path, seed, console, aptitude_rule)
    max_items = max_test_items_for(quick, test_items)
    results: dict = {"run": {"started": H.utc_now(), "seed": seed, "quick": quick, "data_dir": str(data_path),
                             "routers": list(router_names), "zoos": [z.name for z in zoos],
                             "aptitude_rule": aptitude_rule, "train_seeds": train_seeds,
                             "bootstrap_resamples": H.N_BOOTSTRAP,
                             "max_test_items_per_benchmark": max_items,
                             "max_train_items_per_benchmark": QUICK_MAX_TRAIN_ITEMS if quick else None},
                     "families": {}, "zoos": [], "streams": []}
    loaded: dict[str, pd.DataFrame] = {}
    prepared: list[H.Family] = []
    with console.status("loading records, splitting, profiling ..."):
        for fam_name, fam_zoos in families.items():
            src = fam_zoos[0].source or fam_name
            if src not in loaded:
                loaded[src] = sources.load(src, data=data_path)
            recs, price_notes = H.price_records(loaded[src], fam_zoos)    # a zoo's price table, where records have none
            fam = H.prepare_family(fam_name, fam_zoos, recs, seed, tests.build,
                                   dates_csv=data_path / "release_dates.csv")
            fam.notes.extend(price_notes)
            if quick:
                H.cap_training_items(fam, QUICK_MAX_TRAIN_ITEMS, seed)
            H.write_family_splits(fam, out_dir)
            prepared.append(fam)
            console.print(f"[bold]{fam_name}[/]: {len(fam.records['model'].unique())} models, items per split "
                          f"{fam.split_counts()}, profiles: {fam.profile_method}")
    all_zoo_data: dict[str, list[H.ZooData]] = {}
    for fam in prepared:
        zoo_data: list[H.ZooData] = []
        for z in fam.zoos:
            if z.scenario == "release_stream":
                for step in fam.stream_steps:
                    zoo_data.append(H.build_zoo_data(fam, z, step["models"], f"{z.name}@{step['newest']}",
                                                     max_items, seed))
            else:
                zoo_data.append(H.build_zoo_data(fam, z, max_test_items=max_items, seed=seed))
        all_zoo_data[fam.name] = zoo_data
    # zoos whose records price every test item get a cost section; their family's routers are calibrated on
    # validation items (capped like the test items in a quick run)
    priced = {fam.name: [zd.name for zd in all_zoo_data[fam.name] if H.has_costs(zd)] for fam in prepared}
    calibration = {fam.name: H.calibration_records(fam, max_items, seed) for fam in prepared if priced[fam.name]}
    # one embedding pass over every prompt a router will see (cached on disk by text), so that no router pays
    # for it inside its timing; on a fresh cache this is the longest step of a quick run
    # (skipped when no chosen router reads embeddings: random, best-single and oracle need none)
    from modelsat.routers import get as get_router
    if any(get_router(n).uses_embeddings for n in router_names):
        prompts = sorted({p for fam in prepared for p in fam.train_records["prompt"].unique()}
                         | {p for zds in all_zoo_data.values() for zd in zds for p in zd.prompts}
                         | {p for val in calibration.values() for p in val["prompt"].unique()})
        t0 = time.perf_counter()
        from modelsat.embeddings import embed
        embed(prompts, progress=True)
        results["run"]["embedding_seconds"] = time.perf_counter() - t0
        results["run"]["embedded_prompts"] = len(prompts)
        console.print(f"embeddings of {len(prompts)} prompts ready in {time.perf_counter() - t0:.0f} s")
    else:
        results["run"]["embedding_seconds"] = 0.0
        results["run"]["embedded_prompts"] = 0

    for fam in prepared:
        fam_out = {"models": sorted(fam.records["model"].unique()), "train_models": fam.train_models,
                   "split_counts": fam.split_counts(), "profile_method": fam.profile_method, "notes": fam.notes,
                   "splits_file": str(out_dir / "splits" / f"{fam.name}.csv"), "fit": {}}
        results["families"][fam.name] = fam_out
        zoo_data = all_zoo_data[fam.name]
        tables = {zd.name: {"zoo": zd.zoo.to_dict() | {"name": zd.name, "models": zd.models},
                            "family": fam.name, "n_test_items": len(zd.prompts),
                            "n_test_items_per_benchmark": {str(k): int(v) for k, v in
                                                           zip(*np.unique(zd.groups, return_counts=True))},
                            "best_single_model": zd.best_single, "notes": zd.notes,
                            "rows": H.reference_rows(zd, seed), "single_models": H.single_model_rows(zd),
                            "published": zd.zoo.published} for zd in zoo_data}
        per_item = {zd.name: dict(zd.references) for zd in zoo_data}   # routed score per test item, by method
        per_item_seeds: dict[str, dict[str, np.ndarray]] = {zd.name: {} for zd in zoo_data}
        probabilities: dict[str, dict[str, np.ndarray]] = {zd.name: {} for zd in zoo_data}   # calibrated P
        raw_probabilities: dict[str, dict[str, np.ndarray]] = {zd.name: {} for zd in zoo_data}   # P before it
        with _progress(console) as progress:
            task = progress.add_task(f"{fam.name}: fit + score", total=len(router_names) * (1 + len(zoo_data)))
            for name in router_names:
                seeds = H.training_seeds(H.make_router(name, quick, seed), seed, train_seeds)
                fitted: list[tuple[int, object]] = []
                for k in seeds:
                    label = f"{name} (seed {k}, {len(fitted) + 1} of {len(seeds)})" if len(seeds) > 1 else name
                    progress.update(task, description=f"{fam.name}: fitting {label}")
                    say(f"{fam.name}: fitting {label}")
                    try:
                        router = H.make_router(name, quick, k)
                        router, status = H.fit_router(name, router, fam)
                    except Exception as exc:  # a broken router must not sink the others; its error is reported
                        router, status = None, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                    if router is None:
                        break
                    fitted.append((k, router))
                    if len(seeds) > 1:
                        fam_out["fit"].setdefault(name, {"status": "ok", "seeds": {}})["seeds"][str(k)] = status
                    else:
                        fam_out["fit"][name] = status
                    if save_routers:
                        where = out_dir / "routers" / fam.name / (name if len(seeds) == 1 else f"{name}/seed-{k}")
                        try:
                            router.save(where, card={"training_data": {"family": fam.name,
                                                                       "models": fam.train_models,
                                                                       "split_counts": fam.split_counts()}})
                        except Exception as exc:  # saving is a convenience; say so and go on
                            status["save_error"] = f"{type(exc).__name__}: {exc}"
                progress.advance(task)
                if router is None:
                    fam_out["fit"][name] = status
                    console.print(f"[yellow]{fam.name}: {name} {status['status']}: {status['reason']}[/]")
                    for zd in zoo_data:
                        tables[zd.name]["rows"].append({"method": name, "kind": "router", "status":
                                                        f"{status['status']}", "reason": status["reason"]})
                    progress.advance(task, len(zoo_data))
                    continue
                if fam.name in calibration and name not in C.NOT_PRICED:
                    progress.update(task, description=f"{fam.name}: calibrating {name}")
                    say(f"{fam.name}: calibrating {name} on {calibration[fam.name]['item_id'].nunique()} "
                        "validation items")
                    for _, r in fitted:
                        try:
                            fam_out["fit"][name]["calibration"] = H.calibrate_router(r, fam, calibration[fam.name])
                        except Exception as exc:   # no cost curve for it; said in the results
                            fam_out["fit"][name]["calibration"] = {"status": "failed",
                                                                   "reason": f"{type(exc).__name__}: {exc}"}
                            break
                progress.update(task, description=f"{fam.name}: {name} scoring")
                say(f"{fam.name}: scoring {name}")
                shared = [H.shared_scores(r, zoo_data, fam.profiles) for _, r in fitted]
                for zd in zoo_data:
                    progress.update(task, description=f"{fam.name}: {name} on {zd.name}")
                    try:
                        runs = [(k, *H.router_row(name, r, zd, fam.profiles, fam, seed, sh))
                                for (k, r), sh in zip(fitted, shared)]
                        row, s = runs[0][1], runs[0][2]
                        if (zd.name in priced[fam.name] and all(s_ is not None for _, _, s_ in runs)
                                and all(getattr(r, "calibrator_", None) is not None for _, r in fitted)):
                            probabilities[zd.name][name] = np.mean([r.calibrator_.predict(s_) for (_, r), (_, _, s_)
                                                                    in zip(fitted, runs)], axis=0)
                            if fitted[0][1].scores_are_probabilities:
                                raw_probabilities[zd.name][name] = np.mean([s_ for _, _, s_ in runs], axis=0)
                        if len(runs) > 1 and all(s_ is not None for _, _, s_ in runs):
                            per_seed = [(k, s_, M.routed_scores(zd.scores, np.argmax(s_, axis=1)),
                                         r_.get("ms_per_instruction", 0.0) * len(zd.prompts) / 1000)
                                        for k, r_, s_ in runs]
                            row, per_item_seeds[zd.name][name] = H.seeded_row(name, per_seed, zd, seed)
                            s = average_probabilities([s_ for _, s_, _, _ in per_seed],
                                                      fitted[0][1].scores_are_probabilities)
                            ens = H.summarize(f"{name}-ensemble", "router",
                                              M.routed_scores(zd.scores, np.argmax(s, axis=1)), zd, seed,
                                              np.argmax(s, axis=1), row.get("ms_per_instruction", 0.0)
                                              * len(per_seed) * len(zd.prompts) / 1000)
                            ens["ensemble_of_seeds"] = [k for k, *_ in per_seed]
                            tables[zd.name]["rows"].append(ens)
                            per_item[zd.name][ens["method"]] = M.routed_scores(zd.scores, np.argmax(s, axis=1))
                    except Exception as exc:
                        row, s = {"method": name, "kind": "router", "status": "failed",
                                  "reason": f"{type(exc).__name__}: {exc}"}, None
                        console.print(f"[red]{zd.name}: {name} failed: {row['reason']}[/]")
                    tables[zd.name]["rows"].append(row)
                    if s is not None:
                        per_item[zd.name][row["method"]] = (per_item_seeds[zd.name][name].mean(axis=0)
                                                            if name in per_item_seeds[zd.name]
                                                            else M.routed_scores(zd.scores, np.argmax(s, axis=1)))
                    progress.advance(task)
        for zd in zoo_data:
            if zd.name in priced[fam.name]:
                say(f"{zd.name}: cost curves of {len(probabilities[zd.name])} routers")
                with console.status(f"{zd.name}: cost curves, hulls and their bootstrap ..."):
                    t0 = time.perf_counter()
                    tables[zd.name]["cost"] = cost_section(zd, fam, probabilities[zd.name], calibration[fam.name],
                                                           seed, raw_probabilities[zd.name])
                    tables[zd.name]["cost"]["seconds"] = time.perf_counter() - t0
                    tables[zd.name]["cost"]["without_curve"] = {   # routers that ran here and got no curve, and why
                        n: _no_curve_reason(fam_out["fit"].get(n, {}))
                        for n in router_names if n not in C.NOT_PRICED and n not in probabilities[zd.name]}
        for scenario_stream in (False, True):   # Model-SAT vs the cheap routers on the mean over zoos that share items
            group = [zd for zd in zoo_data if (zd.zoo.scenario == "release_stream") == scenario_stream]
            joint = H.joint_head_to_head(group, per_item, seed, per_item_seeds)
            if joint:
                fam_out.setdefault("head_to_head", []).append(joint)
        for zd in zoo_data:
            entry = tables[zd.name]
            duel = H.head_to_head(per_item[zd.name], zd.groups, seed, per_item_seeds[zd.name])
            if duel:
                entry["head_to_head"] = duel
            if zd.zoo.scenario == "release_stream":
                step = next(st for st in fam.stream_steps if f"{zd.zoo.name}@{st['newest']}" == zd.name)
                entry["stream_step"] = step
                results["streams"].append(entry)
            else:
                results["zoos"].append(entry)
    results["run"]["seconds"] = time.perf_counter() - started
    write_json_atomic(_finite(json.loads(json.dumps(results, default=_json_default))), out_dir / "results.json")
    return results


def cost_section(zd: H.ZooData, fam: H.Family, probabilities: dict[str, np.ndarray], validation: pd.DataFrame,
                 seed: int, raw: dict[str, np.ndarray] | None = None) -> dict:
    """The zoo's cost section (`cost.cost_section`): the routers' calibrated P, the per-benchmark best with
    prices (training accuracy per benchmark, calibrated on the same validation items), the oracle and the random
    mix, all under the same policies on the same test items; `raw` holds the routers' scores before calibration
    where they are probabilities (their reliability before and after)."""
    items = H.priced_items(zd)
    p_bench, choice = C.calibrated_per_benchmark(fam.train_records, validation, zd.models, zd.groups, seed)
    raw = {C.PER_BENCHMARK: np.clip(np.nan_to_num(C.per_benchmark_probabilities(fam.train_records, zd.models,
                                                                                zd.groups), nan=0.5), 0, 1),
           **(raw or {})}
    pair = None
    if zd.zoo.strong and zd.zoo.weak:
        pair = (zd.models.index(zd.zoo.strong), zd.models.index(zd.zoo.weak))
    section = C.cost_section({C.PER_BENCHMARK: p_bench, **probabilities}, items, seed, C.COST_BOOTSTRAP, pair, raw)
    section["calibration_per_benchmark_best"] = choice
    section["validation_items"] = int(validation[["benchmark", "item_id"]].drop_duplicates().shape[0])
    return section


def _no_curve_reason(status: dict) -> str:
    """Why a router has no cost curve: its calibration or fit failed (their reason), or it gave no scores here."""
    return ((status.get("calibration") or {}).get("reason") or status.get("reason")
            or "no scores on this zoo (see its row)")


def _finite(obj):
    """NaN and infinities become null, so results.json is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj):
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
