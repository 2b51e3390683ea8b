"""How well calibrated are the routers' probabilities on real MMLU-Pro results, before and after calibration?

    python scripts/calibration_report.py                       # default: about 2-3 minutes on 2 cores
    python scripts/calibration_report.py --train-items 0 --out-dir calibration-results

Two parts, both on MMLU-Pro (`modelsat.sources.load("mmlu_pro")`), split by item with the benchmark's splits
(`assign_splits` / `apply_splits`, seed `--seed`) and profiled as `prepare_family` profiles them:

1. Seen models, every MMLU-Pro zoo. Each router is fitted on training items of all 23 models (at most
   `--train-items`, seeded), calibrated (`Router.calibrate`, `--method`) on validation items, and its P is scored
   on the test items: per zoo (the test items every zoo model answered, the zoo's models), ECE with `--bins`
   equal-width bins, Brier score, before calibration (the router's own probability) and after.
2. New models known only by their aptitude-test profile: the release stream (`mmlu-pro-release-stream`). Routers
   are fitted and calibrated on the models released before the cutoff; the later releases enter only by their
   profile (taken on the aptitude test's core items). Their test items are scored like the seen models'.
   A router that learns per-model state (kNN) cannot score them and says so.

Validation items are never training or test items; nothing here reads a test outcome before scoring. Prints one
table per part and each router's reliability curve (after calibration, pooled over the part's test pairs);
`--out-dir` also writes results.json and reliability.png (a reliability diagram per router and part).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelsat import sources
from modelsat.calibration import brier_score, expected_calibration_error, reliability_curve
from modelsat.errors import ModelsatError
from modelsat.evaluate import harness as H
from modelsat.evaluate.zoos import resolve_zoos
from modelsat.paths import data_dir
from modelsat.routers import RouterError, get

ROUTERS = "knn,per-category,profile-prior"
MIN_PLOT_PAIRS = 20      # a reliability-diagram point rests on at least this many pairs (a 1-pair bin is noise)
STREAM_ZOO = "mmlu-pro-release-stream"


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def outcome_table(family: H.Family, models: list[str], split: str) -> tuple[list[str], pd.DataFrame]:
    """(prompt per item, (items × models) outcome table, NaN where a model has no result) of one split."""
    r = family.records
    r = r[(r["eval_split"] == split) & r["model"].isin(models)]
    table = r.pivot_table(index=["benchmark", "item_id"], columns="model", values="score", aggfunc="first")
    table = table.reindex(columns=models)
    prompts = r.drop_duplicates(["benchmark", "item_id"]).set_index(["benchmark", "item_id"])["prompt"]
    return [str(p) for p in prompts.reindex(table.index)], table



def sample_items(prompts: list[str], table: pd.DataFrame, n: int, seed: int) -> tuple[list[str], pd.DataFrame]:
    """At most `n` of the test items (seeded, in their order); all of them when `n` is 0 or they are fewer."""
    if not n or len(prompts) <= n:
        return prompts, table
    rows = np.sort(np.random.default_rng(seed).choice(len(prompts), n, replace=False))
    return [prompts[i] for i in rows], table.iloc[rows]

def cap_items(records: pd.DataFrame, max_items: int, seed: int) -> pd.DataFrame:
    """The records of at most `max_items` items (seeded sample); all of them when max_items is 0."""
    keys = records[["benchmark", "item_id"]].drop_duplicates()
    if not max_items or len(keys) <= max_items:
        return records
    keep = keys.sample(n=max_items, random_state=seed)
    idx = pd.MultiIndex.from_frame(records[["benchmark", "item_id"]])
    return records[idx.isin(pd.MultiIndex.from_frame(keep))]


def figures(p: np.ndarray, y: np.ndarray, bins: int) -> dict:
    """ECE, Brier and the pair count of probabilities p against outcomes y (NaN outcomes left out)."""
    keep = ~np.isnan(y)
    p, y = p[keep], y[keep]
    if not len(p):
        return {"pairs": 0, "ece": float("nan"), "brier": float("nan")}
    return {"pairs": int(len(p)), "ece": expected_calibration_error(p, y, bins), "brier": brier_score(p, y),
            "mean_p": float(p.mean()), "observed": float(y.mean())}


def curve_of(p: np.ndarray, y: np.ndarray, bins: int) -> dict:
    keep = ~np.isnan(y)
    c = reliability_curve(p[keep], y[keep], bins)
    return {"centres": c.centres.tolist(), "observed": [None if np.isnan(v) else float(v) for v in c.observed],
            "predicted": [None if np.isnan(v) else float(v) for v in c.predicted], "counts": c.counts.tolist()}


def fit_and_calibrate(name: str, family: H.Family, args) -> tuple[object | None, dict]:
    """The router fitted on the family's training items and calibrated on its validation items, and what it did."""
    router, status = H.fit_router(name, H.make_router(name, seed=args.seed), family)
    if router is None:
        return None, status
    profiles = [family.profiles[m] for m in family.train_models]
    validation = cap_items(family.validation_records, args.validation_items, args.seed)
    t0 = time.perf_counter()
    router.calibrate(validation, profiles, method=args.method)
    status |= {"calibration": router.calibrator_.to_dict(), "calibrate_seconds": time.perf_counter() - t0,
               "validation_items": int(validation[["benchmark", "item_id"]].drop_duplicates().shape[0])}
    return router, status


def before_after(router, prompts: list[str], candidates, outcomes: np.ndarray,
                 bins: int) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """Figures of the router's own probability (clipped to [0, 1]) and of its calibrated one; both tables."""
    raw = router.score(prompts, candidates)
    before = np.clip(raw, 0.0, 1.0) if router.scores_are_probabilities else None
    after = router.calibrator_.predict(raw)           # = router.predict_proba(prompts, candidates), one scoring
    return ({"before": figures(before, outcomes, bins) if before is not None else None,
             "after": figures(after, outcomes, bins)}, after, before)


def seen_part(records: pd.DataFrame, routers: list[str], args, tests) -> dict:
    zoos = [z for z in resolve_zoos(None) if z.family == "mmlu_pro" and z.scenario != "release_stream"]
    data = data_dir(args.data)
    family = H.prepare_family("mmlu_pro", zoos, records, args.seed, tests.build, dates_csv=data / "release_dates.csv")
    if args.train_items:
        H.cap_training_items(family, args.train_items, args.seed)
    models = list(family.train_models)
    prompts, table = outcome_table(family, models, "test")
    prompts, table = sample_items(prompts, table, args.test_items, args.seed)
    say(f"seen models: {len(models)} models, {family.split_counts()} items per split; "
        f"{len(prompts)} test items scored")
    Y = table.to_numpy(dtype=np.float64)
    out = {"zoos": {z.name: z.model_names for z in zoos}, "routers": {}}
    for name in routers:
        t0 = time.perf_counter()
        router, status = fit_and_calibrate(name, family, args)
        if router is None:
            out["routers"][name] = {"status": status}
            continue
        res, P, before = before_after(router, prompts, [family.profiles[m] for m in models], Y, args.bins)
        per_zoo = {}
        for z in zoos:
            cols = [models.index(m) for m in z.model_names]
            rows = ~np.isnan(Y[:, cols]).any(axis=1)          # the items every zoo model answered
            cell = np.ix_(rows, cols)
            if router.columns_independent:                   # the zoo is a slice of the all-model table
                zoo_res = {"before": figures(before[cell], Y[cell], args.bins) if before is not None else None,
                           "after": figures(P[cell], Y[cell], args.bins)}
            else:
                zoo_res, _, _ = before_after(router, [prompts[i] for i in np.flatnonzero(rows)],
                                             [family.profiles[m] for m in z.model_names], Y[cell], args.bins)
            per_zoo[z.name] = {**zoo_res, "items": int(rows.sum())}
        out["routers"][name] = {"status": status, "all_models": res, "zoos": per_zoo,
                                "curve_after": curve_of(P.ravel(), Y.ravel(), args.bins),
                                "seconds": time.perf_counter() - t0}
        say(f"{name}: fitted, calibrated ({router.calibrator_.method}) and scored in {time.perf_counter() - t0:.0f} s")
    return out


def stream_part(records: pd.DataFrame, routers: list[str], args, tests) -> dict:
    data = data_dir(args.data)
    zoo = resolve_zoos(STREAM_ZOO)
    family = H.prepare_family(zoo[0].family, zoo, records, args.seed, tests.build, dates_csv=data / "release_dates.csv")
    if args.train_items:
        H.cap_training_items(family, args.train_items, args.seed)
    seen = list(family.train_models)
    new = sorted(m for m in family.profiles if m not in set(seen))
    prompts, table = outcome_table(family, seen + new, "test")
    prompts, table = sample_items(prompts, table, args.test_items, args.seed)
    say(f"release stream: fitted on {len(seen)} models released before the cutoff; {len(new)} new models by "
        f"profile only; {len(prompts)} test items")
    Y = table.to_numpy(dtype=np.float64)
    out = {"seen_models": seen, "new_models": new, "routers": {}}
    for name in routers:
        t0 = time.perf_counter()
        router, status = fit_and_calibrate(name, family, args)
        if router is None:
            out["routers"][name] = {"status": status}
            continue
        res = {}
        seen_res, _, _ = before_after(router, prompts, [family.profiles[m] for m in seen], Y[:, :len(seen)], args.bins)
        res["seen"] = seen_res
        try:
            new_res, P_new, _ = before_after(router, prompts, [family.profiles[m] for m in new], Y[:, len(seen):],
                                          args.bins)
            res["new"] = new_res
            res["new_per_model"] = {m: figures(P_new[:, j], Y[:, len(seen) + j], args.bins) for j, m in enumerate(new)}
            res["curve_after_new"] = curve_of(P_new.ravel(), Y[:, len(seen):].ravel(), args.bins)
        except RouterError as exc:
            res["new"] = {"unsupported": str(exc).split(";")[0]}
        out["routers"][name] = {"status": status, **res, "seconds": time.perf_counter() - t0}
        say(f"{name}: fitted, calibrated and scored in {time.perf_counter() - t0:.0f} s")
    return out


def fmt(f: dict | None) -> str:
    if f is None:
        return f"{'-':>7} {'-':>7}"
    return f"{f['ece']:7.4f} {f['brier']:7.4f}"


def print_report(results: dict, bar: float) -> None:
    bins = results["run"]["bins"]
    seen = results.get("seen")
    if seen:
        print(f"\n## Seen models, MMLU-Pro test items: ECE ({bins} bins) and Brier, before -> after calibration")
        print(f"{'router':<15} {'zoo':<18} {'items':>5} {'pairs':>6}  {'ECE bef':>7} {'Brier':>7}  "
              f"{'ECE aft':>7} {'Brier':>7}  method")
        for name, r in seen["routers"].items():
            if "zoos" not in r:
                print(f"{name:<15} skipped: {r['status'].get('reason')}")
                continue
            method = r["status"]["calibration"]["method"]
            rows = [("all 23 models", None, r["all_models"])] + [(z, v["items"], v) for z, v in r["zoos"].items()]
            for zname, items, v in rows:
                print(f"{name:<15} {zname:<18} {items if items is not None else '':>5} {v['after']['pairs']:>6}  "
                      f"{fmt(v['before'])}  {fmt(v['after'])}  {method}")
    stream = results.get("stream")
    if stream:
        print(f"\n## Release stream: fitted and calibrated on {len(stream['seen_models'])} earlier models; "
              f"{len(stream['new_models'])} new models known by profile only")
        print(f"{'router':<15} {'models':<7} {'pairs':>6}  {'ECE bef':>7} {'Brier':>7}  {'ECE aft':>7} {'Brier':>7}")
        for name, r in stream["routers"].items():
            if "seen" not in r:
                print(f"{name:<15} skipped: {r['status'].get('reason')}")
                continue
            for part in ("seen", "new"):
                v = r[part]
                if "unsupported" in v:
                    print(f"{name:<15} {part:<7} {'':>6}  cannot score new models ({v['unsupported']})")
                    continue
                print(f"{name:<15} {part:<7} {v['after']['pairs']:>6}  {fmt(v['before'])}  {fmt(v['after'])}")
            if "new_per_model" in r:
                worst = sorted(r["new_per_model"].items(), key=lambda kv: -kv[1]["ece"])
                print(f"{'':<15} new models after calibration, ECE each (mean P / observed): " + "; ".join(
                    f"{m} {f['ece']:.3f} ({f['mean_p']:.2f}/{f['observed']:.2f})" for m, f in worst))
    print(f"\n## Reliability after calibration (bin centre: observed rate / mean P / pairs), pooled test pairs")
    for part, key in (("seen", "curve_after"), ("stream", "curve_after_new")):
        block = results.get(part)
        if not block:
            continue
        for name, r in block["routers"].items():
            c = r.get(key)
            if not c:
                continue
            cells = [f"{x:.2f}:{o:.2f}/{p:.2f}/{n}" for x, o, p, n in
                     zip(c["centres"], c["observed"], c["predicted"], c["counts"]) if n]
            label = "seen models" if part == "seen" else "new models"
            print(f"{name} ({label}): " + "  ".join(cells))
    print(f"\n## Bar: ECE <= {bar} on every zoo's test items, seen and new models (after calibration)")
    for name in sorted({*(seen or {}).get("routers", {}), *(stream or {}).get("routers", {})}):
        eces = []
        if seen and "zoos" in seen["routers"].get(name, {}):
            eces += [(z, v["after"]["ece"]) for z, v in seen["routers"][name]["zoos"].items()]
        if stream and "new" in stream["routers"].get(name, {}) and "after" in stream["routers"][name]["new"]:
            eces += [("release stream, new models", stream["routers"][name]["new"]["after"]["ece"])]
        if stream and "seen" in stream["routers"].get(name, {}):
            eces += [("release stream, seen models", stream["routers"][name]["seen"]["after"]["ece"])]
        failed = [f"{z} {e:.3f}" for z, e in eces if e > bar]
        print(f"{name:<15} {'holds' if not failed else 'fails: ' + ', '.join(failed)} "
              f"(worst {max(e for _, e in eces):.3f} of {len(eces)})" if eces else f"{name:<15} no figures")


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [(part, key, label) for part, key, label in (("seen", "curve_after", "seen models"),
                                                           ("stream", "curve_after_new", "new models (profile only)"))
              if results.get(part)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    style = {name: (f"C{i % 10}", markers[i % len(markers)]) for i, name in enumerate(results["run"]["routers"])}
    for ax, (part, key, label) in zip(axes[0], panels):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="calibrated")
        for name, r in results[part]["routers"].items():
            c = r.get(key)
            if not c:
                continue
            pts = [(p, o) for p, o, n in zip(c["predicted"], c["observed"], c["counts"]) if n >= MIN_PLOT_PAIRS]
            if pts:
                color, marker = style[name]
                ax.plot(*zip(*pts), color=color, marker=marker, label=name)
        ax.set(title=f"MMLU-Pro test items, {label}", ylabel="observed rate",
               xlabel=f"mean predicted P (bins of >= {MIN_PLOT_PAIRS} pairs)",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--routers", default=ROUTERS, help=f"comma-separated registered routers (default {ROUTERS})")
    ap.add_argument("--method", default="auto", choices=["auto", "platt", "isotonic"], help="calibration method")
    ap.add_argument("--bins", type=int, default=15, help="equal-width bins of the ECE and reliability curves")
    ap.add_argument("--seed", type=int, default=0, help="split and sampling seed")
    ap.add_argument("--train-items", type=int, default=2000, help="training items the routers fit on (0 = all)")
    ap.add_argument("--validation-items", type=int, default=0, help="validation items calibrated on (0 = all)")
    ap.add_argument("--test-items", type=int, default=0, help="test items scored (0 = all)")
    ap.add_argument("--part", choices=["both", "seen", "stream"], default="both")
    ap.add_argument("--bar", type=float, default=0.03, help="the ECE bar reported against (issue 41)")
    ap.add_argument("--data", default=None, help="data folder (default: MODELSAT_DATA, then ../shared/data)")
    ap.add_argument("--out-dir", type=Path, default=None, help="also write results.json and reliability.png here")
    args = ap.parse_args(argv)
    routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    try:
        for r in routers:
            get(r)
        data = data_dir(args.data)
        from rich.console import Console
        from modelsat.evaluate.benchmark import AptitudeTests
        started = time.perf_counter()
        records = sources.load("mmlu_pro", data=data)
        results: dict = {"run": {"routers": routers, "method": args.method, "bins": args.bins, "seed": args.seed,
                                 "train_items": args.train_items, "validation_items": args.validation_items,
                                 "test_items": args.test_items, "data": str(data)}}
        if args.part in ("both", "seen"):
            results["seen"] = seen_part(records, routers, args, AptitudeTests(data, args.seed, Console(stderr=True)))
        if args.part in ("both", "stream"):
            results["stream"] = stream_part(records, routers, args, AptitudeTests(data, args.seed, Console(stderr=True)))
    except ModelsatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results["run"]["seconds"] = time.perf_counter() - started
    print_report(results, args.bar)
    print(f"\n{results['run']['seconds']:.0f} s in all")
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "results.json").write_text(json.dumps(results, indent=2, default=float))
        plot(results, args.out_dir / "reliability.png")
        print(f"wrote {args.out_dir / 'results.json'} and {args.out_dir / 'reliability.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
