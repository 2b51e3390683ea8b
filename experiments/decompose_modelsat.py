"""Where a Model-SAT router gains or loses, stage by stage: its profile prior, that prior after the records update,
and the full score (prior + LM term), each routed on the same test items, benchmark by benchmark, beside the
best single model and per-benchmark best.

Same splits, training items and test items as `compare_modelsat.py` / the benchmark for that seed (a quick run:
at most 1,000 training items a benchmark; `--test-items 0`, the default here, keeps every test item). For each
stage it prints, per benchmark, the routed accuracy (%) and the two models it picks most with their shares.

    python experiments/decompose_modelsat.py --zoos routerdc-in-domain,routerdc-out-of-domain --seed 1
    python experiments/decompose_modelsat.py --zoos routerdc-in-domain --seed 7 \
        --overrides '{"model": {"prior_records_bits": 32}}'
    python experiments/decompose_modelsat.py --zoos smaller-scale,middle-mixed --seed 0 \
        --router src/modelsat/shipped/modelsat-cpu-default [--center-items 200]

`--prior-only` fits the explicit prior alone (the profile prior and the records prior, as the preset fits them) and
trains no LM: its two stages in seconds rather than minutes, e.g. to set two records-prior settings side by side:

    python experiments/decompose_modelsat.py --zoos routerdc-in-domain,routerdc-out-of-domain --seed 9 --prior-only \
        --overrides '{"model": {"prior_records_bits": 4}}'

`--center-items N` (with `--router`) centres the saved router's LM term on N of the split's training instructions,
as `model.lm_center_items` does, and prints the LM term's stage both ways.
`--router DIR` reads a saved router instead of fitting one: it must have been trained on that seed's training
split alone (`modelsat train --split-seed N` trains on seed N's, 0 by default, without the quick run's cap), or
test items leak into it.
Under each zoo, last, the within-item AUC of every stage and baseline (`metrics.within_item_auc`: on each item,
how well the scores rank the models that answered it above those that did not, each model's mean score taken off;
0.5 = no item-level skill), twice: the mean taken over the zoo, then within each benchmark (where knowing each
benchmark's best model, all per-benchmark best knows, gets 0.5). Under each zoo the routed result (the last stage)
is printed minus the best single model, with its paired bootstrap 95 % CI, as the benchmark reports it; beside it
the cheap baselines of `--baselines` (kNN and per-category best by default), each minus the best single model and
the routed result minus each, with the same CIs. They are fitted on the router's training items: the whole split
with `--router` (what `modelsat train --split-seed N` trains on), the quick run's 1,000 a benchmark otherwise.

The stages are read from the fitted router: `_base_prior` (the profile prior), `prior` (after the records
update, where the preset sets one), `score` (what it routes by). A stage the preset lacks repeats the one before.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from rich.console import Console

from modelsat import sources
from modelsat.errors import ModelsatError
from modelsat.evaluate import harness as H
from modelsat.evaluate import metrics
from modelsat.evaluate.benchmark import QUICK_MAX_TRAIN_ITEMS, AptitudeTests, max_test_items_for
from modelsat.evaluate.zoos import resolve_zoos
from modelsat.paths import data_dir
from modelsat.routers.modelsat.router import ModelSATRouter, resolve_preset


def stage_table(name: str, scores: np.ndarray, zd: H.ZooData, shorten) -> list[str]:
    """Markdown rows: the stage's routed accuracy on each benchmark and its mean, with its two top picks."""
    picks = np.argmax(scores, axis=1)
    routed = zd.scores[np.arange(len(picks)), picks]
    cells, means = [], []
    for b in sorted(set(zd.groups)):
        k = zd.groups == b
        share = np.bincount(picks[k], minlength=len(zd.models)) / k.sum()
        top = ", ".join(f"{shorten(zd.models[j])} {share[j]:.0%}" for j in np.argsort(-share, kind="stable")[:2]
                        if share[j] > 0)
        means.append(routed[k].mean())
        cells.append(f"{100 * routed[k].mean():.2f} ({top})")
    return [f"| {name} | " + " | ".join(cells) + f" | {100 * np.mean(means):.2f} |"]


def fit_baselines(names: list[str], family: H.Family, seed: int) -> dict:
    """{name: router} of the registered routers `names`, fitted on the family's training items as they are now."""
    fitted = {}
    for b in names:
        r, status = H.fit_router(b, H.make_router(b, quick=True, seed=seed), family)
        if r is None:
            print(f"baseline {b} skipped: {status['reason']}", flush=True)
        else:
            fitted[b] = r
            print(f"baseline {b} fitted on {status['train_items']} training items", flush=True)
    return fitted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--zoos", default="routerdc-in-domain,routerdc-out-of-domain",
                    help="comma-separated zoos of ONE family (no release stream)")
    ap.add_argument("--seed", type=int, default=0, help="the benchmark seed: split, training sample and router seed")
    ap.add_argument("--preset", default="quick", help="the preset (a name in configs/ or a YAML path)")
    ap.add_argument("--overrides", default="{}", help='JSON overrides of the preset: {"train": {...}, "model": {...}}')
    ap.add_argument("--test-items", type=int, default=0,
                    help="at most this many test items per benchmark and zoo; 0 = all (the default)")
    from modelsat.aptitude.core_items import ITEM_RULES
    ap.add_argument("--aptitude-rule", default="distinguishing", choices=ITEM_RULES,
                    help="how the aptitude test chooses each subject's items")
    ap.add_argument("--router", default=None, metavar="DIR",
                    help="a saved Model-SAT router trained on this seed's training split (not fitted here)")
    ap.add_argument("--center-items", type=int, default=None, metavar="N",
                    help="with --router: centre each candidate's LM term on N of this split's training "
                         "instructions after the fact (model.lm_center_items; 0 turns centring off)")
    ap.add_argument("--whole-split", action="store_true",
                    help="fit on the seed's whole training split, as `modelsat train --split-seed N` does (default: "
                         "the quick run's 1,000 items a benchmark; a saved --router is read with the whole split)")
    ap.add_argument("--prior-only", action="store_true",
                    help="fit the explicit prior alone (profile prior + records prior) and train no LM: its stages only")
    ap.add_argument("--baselines", default="knn,per-category",
                    help="comma-separated registered routers fitted beside it and set head to head ('' for none)")
    args = ap.parse_args()
    if args.center_items is not None and (not args.router or args.center_items < 0):
        ap.error("--center-items needs --router and a count >= 0")
    if args.prior_only and args.router:
        ap.error("--prior-only fits a prior here: it does not read a saved --router")
    if args.router and (args.overrides.strip() not in ("", "{}") or args.preset != "quick"):
        ap.error("--router reads a saved router: --preset and --overrides do not apply")
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as exc:
        ap.error(f"--overrides: not JSON ({exc})")
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    try:
        resolve_preset(args.preset, overrides)       # a bad name or key fails here, before any data loads
        zoos = resolve_zoos(args.zoos)
        from modelsat.routers import get
        for b in baselines:
            get(b)
    except ModelsatError as exc:
        ap.error(str(exc))
    if len({z.family for z in zoos}) != 1 or any(z.scenario == "release_stream" for z in zoos):
        ap.error("--zoos: give zoos of one family, none a release stream")
    console = Console()
    data = data_dir(None)
    with console.status("loading records, splitting, profiling ..."):
        family = H.prepare_family(zoos[0].family, zoos, sources.load(zoos[0].source or zoos[0].family, data=data),
                                  args.seed, AptitudeTests(data, args.seed, console, args.aptitude_rule).build,
                                  dates_csv=data / "release_dates.csv")
        # a saved router trained on the whole split (`modelsat train --split-seed N`), or --whole-split: the
        # baselines get the whole split; a router fitted here gets the quick run's capped items unless
        # --whole-split, and so do its baselines
        whole = bool(args.router or args.whole_split)
        fitted = fit_baselines(baselines, family, args.seed) if whole else None
        if not args.whole_split:
            H.cap_training_items(family, QUICK_MAX_TRAIN_ITEMS, args.seed)
        if fitted is None:
            fitted = fit_baselines(baselines, family, args.seed)
        zoo_data = [H.build_zoo_data(family, z, max_test_items=max_test_items_for(True, args.test_items),
                                     seed=args.seed) for z in zoos]
    profiles = [family.profiles[m] for m in family.train_models]
    t0 = time.perf_counter()
    if args.router:
        router = ModelSATRouter.load(args.router)
        print(f"loaded {args.router} (preset {router.preset_.name}); not fitted here", flush=True)
        if args.center_items is not None:
            model_cfg = dataclasses.replace(router.preset_.model, lm_center_items=args.center_items)
            router.preset_ = dataclasses.replace(router.preset_, model=model_cfg)
            router.center_prompts_ = router._center_sample(
                list(dict.fromkeys(family.train_records["prompt"].astype(str))))
            router.offset_cache_ = {}
            print(f"LM term centred on {len(router.center_prompts_)} training instructions", flush=True)
    else:
        router = ModelSATRouter(preset=args.preset, overrides=overrides, seed=args.seed)
        if args.prior_only:
            if not resolve_preset(args.preset, overrides).model.prior:
                ap.error("--prior-only: the preset has no prior (model.prior: false)")
            router.fit_prior(family.train_records, profiles, validation=family.validation_records)
        else:
            router.fit(family.train_records, profiles, validation=family.validation_records)
    choices = router.fit_choices()
    if "records_prior" in choices:                  # its 20-80 likelihoods are in the router's card, not here
        choices["records_prior"] = {k: v for k, v in choices["records_prior"].items() if k != "log_loss"}
    print(f"{'loaded' if args.router else 'fitted'} in {time.perf_counter() - t0:.0f} s; chose {json.dumps(choices)}", flush=True)
    shorten = lambda m: m.split("/")[-1][:24]      # noqa: E731
    for zd in zoo_data:
        cands = [family.profiles[m] for m in zd.models]
        base = router._base_prior(zd.prompts, cands)
        updated = router.prior(zd.prompts, cands)
        full = updated if args.prior_only else router.score(zd.prompts, cands)
        benches = sorted(set(zd.groups))
        lines = [f"\n### {zd.name} (seed {args.seed}, {len(zd.prompts)} test items; accuracy %, top picks)", "",
                 "| stage | " + " | ".join(b.split("/")[-1] for b in benches) + " | mean |",
                 "|---|" + "---|" * (len(benches) + 1)]
        for ref in ("best single", "per-benchmark best"):
            if ref in zd.references:
                per = zd.references[ref]
                lines.append(f"| {ref} | " + " | ".join(f"{100 * per[zd.groups == b].mean():.2f}" for b in benches)
                             + f" | {100 * np.mean([per[zd.groups == b].mean() for b in benches]):.2f} |")
        stages = [("profile prior", base), ("+ records update", updated), ("+ LM term (routes)", full)]
        if args.prior_only:
            stages = [("profile prior", base), ("+ records update (routes)", updated)]
        if args.center_items and getattr(router, "level_margin_", 0.0) == 0:
            # the same LM term before centring: score() subtracts each candidate's offset, nothing else
            stages[2:] = [("+ LM term, not centred", full + router.lm_offsets(cands)),
                          (f"+ LM term centred on {len(router.center_prompts_)} (routes)", full)]
        for name, s in stages:
            lines += stage_table(name, s, zd, shorten)
        lines.append("")
        for name, s in stages[len(stages) - 1 if args.prior_only else 2:]:
            routed = zd.scores[np.arange(len(s)), np.argmax(s, axis=1)]
            d = metrics.paired_bootstrap(routed, zd.references["best single"], zd.groups)
            lead = "routed" if name.endswith("(routes)") else name.lstrip("+ ")
            lines.append(f"{lead} − best single ({shorten(zd.best_single)}): {100 * d.estimate:+.2f} "
                         f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}] points")
        routed = zd.scores[np.arange(len(full)), np.argmax(full, axis=1)]
        auc_of = lambda s: (metrics.within_item_auc(s, zd.scores),                         # noqa: E731
                            metrics.within_item_auc(s, zd.scores, zd.groups))
        aucs = [(name.lstrip("+ ").replace(" (routes)", ""), auc_of(s)) for name, s in stages]
        for b, r in fitted.items():
            s = H.router_scores(r, zd, family.profiles, family)[0]
            aucs.append((b, auc_of(s)))
            theirs = zd.scores[np.arange(len(s)), np.argmax(s, axis=1)]
            for label, a, ref in ((f"{b} − best single", theirs, zd.references["best single"]),
                                  (f"routed − {b}", routed, theirs)):
                d = metrics.paired_bootstrap(a, ref, zd.groups)
                lines.append(f"{label}: {100 * d.estimate:+.2f} [{100 * d.low:+.2f}, {100 * d.high:+.2f}] points")
        lines.append(f"within-item AUC ({aucs[0][1][0][1]} items some but not all models answered; 0.5 = none), "
                     "each model's mean taken off over the zoo / within each benchmark: "
                     + ", ".join(f"{n} {a:.3f} / {g:.3f}" for n, ((a, _), (g, _)) in aucs))
        print("\n".join(lines))


if __name__ == "__main__":
    main()
