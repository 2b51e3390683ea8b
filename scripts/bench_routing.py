"""Routing latency of the Model-SAT router: one ~100-token instruction among 5, 20 and 60 candidates.

Prints p50/p99 of `router.score` (prior + model: everything a request pays, the instruction's MiniLM embedding
included, since each repeat routes a new text) in the fast order (instruction KV computed once, shared by every
candidate), the fastest order (instruction and prompt shared), the prompt-first order (as fastest, the prompt's
keys/values computed once per process) and the paper order (one full sequence per candidate), and the ratio to
one forward of the same instruction through the router's LM, measured in the same run (issue 13 targets: <= 1.5x
at 5 candidates, <= 3x at 60). Latency does not depend on the weights (a router trained in one order is timed in
every order, its scores aside), so an untrained router of the preset is timed unless --router points to a trained
one; an untrained one has no records prior (`model.prior_records`), so time a trained router for what a request
pays.

    python scripts/bench_routing.py [--preset cpu-default] [--router DIR] [--reps 15] [--threads 2]
                                    [--prior-features minilm|static] [--prior-router DIR]

`--prior-router DIR` also times a router with no learned correction (`lm: none`, e.g. the shipped
src/modelsat/shipped/modelsat-prior) in the same interleaved loop: its column is what the default router costs a
request (one MiniLM forward and the prior's numpy work), set beside the same LM forward.

`--prior-features` swaps the subject map the prior reads (timing only: the scores are then not the trained
router's): "minilm" pays one MiniLM forward per instruction, "static" none. That forward runs as a live request's
does: in bfloat16 where the CPU has native bf16 units (embeddings.live_dtype; MODELSAT_LIVE_BF16=0 for float32).
The prior's numpy products run on one BLAS thread (modelsat.threads; MODELSAT_BLAS_SINGLE=0 to see what
OpenBLAS workers left spinning cost the forward after them).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time

import numpy as np
import torch

INSTRUCTION = ("A 45-year-old patient presents with fatigue, weight gain and cold intolerance. Laboratory tests "
               "show an elevated TSH and a low free T4. Which of the following is the most appropriate initial "
               "treatment? A. Propylthiouracil B. Levothyroxine C. Radioactive iodine D. Methimazole "
               "E. Hydrocortisone F. Liothyronine G. Thyroidectomy")


def synthetic_profiles(n: int, seed: int = 0):
    """n profiles over the 57 MMLU subjects with random accuracies (timing does not depend on the values)."""
    from modelsat.aptitude.core_items import subject_keywords
    from modelsat.aptitude.profile import Profile, SubjectScore
    rng = np.random.default_rng(seed)
    subjects = sorted(subject_keywords())[:50]
    return [Profile(f"model-{i}", "bench", {s: SubjectScore(float(rng.uniform(0.2, 0.9)), 20) for s in subjects})
            for i in range(n)]


def percentile_ms(times: list[float], q: float) -> float:
    return 1000 * float(np.percentile(times, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu-default")
    ap.add_argument("--router", default=None, help="a trained router folder (else an untrained one of --preset)")
    ap.add_argument("--candidates", default="5,20,60")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    from modelsat.routers.subject_map import FEATURES
    ap.add_argument("--prior-features", choices=FEATURES, default=None,
                    help="time the prior with this shipped subject map instead of the router's own")
    ap.add_argument("--prior-router", default=None, help="also time this prior-only router folder (lm: none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from modelsat.embeddings import live_dtype, transient
    from modelsat.threads import blas_limit_off
    from modelsat.routers.modelsat.model import ModelSAT
    from modelsat.routers.modelsat.router import ModelSATRouter, resolve_preset

    if args.router:
        base = ModelSATRouter.load(args.router)
    else:
        base = ModelSATRouter(preset=args.preset)
        base.preset_ = resolve_preset(args.preset)
        base.model_ = ModelSAT(base.preset_.model).eval()
        if base.preset_.model.prior == "fitted":   # an unfitted profile prior costs the same to run
            from modelsat.routers.profile_prior import ProfilePrior
            base.prior_router_ = ProfilePrior()
    if args.prior_features:
        from modelsat.routers.profile_prior import ProfilePrior
        from modelsat.routers.subject_map import shipped
        if base.preset_.model.prior == "fitted":
            prior = getattr(base, "prior_router_", None) or ProfilePrior()
            prior.features, prior.subject_map_ = args.prior_features, shipped(args.prior_features)
            base.prior_router_ = prior
    routers = {}
    orders = ("fast", "fastest", "prompt-first", "paper")
    prior_router = ModelSATRouter.load(args.prior_router) if args.prior_router else None
    if prior_router is not None and not prior_router.prior_only:
        sys.exit(f"{args.prior_router}: not a prior-only router (its preset has a learned correction)")
    for order in orders:
        r = copy.copy(base)              # every fitted part (prior, records prior, caches), φ shared
        r.preset_ = dataclasses.replace(base.preset_, model=dataclasses.replace(base.preset_.model, order=order))
        routers[order] = r
    model = base.model_
    ids = model.instruction_ids(INSTRUCTION)
    print(f"preset {base.preset_.name}: LM {base.preset_.model.lm} ({model.lm.config.num_hidden_layers} layers), "
          f"encoder {base.preset_.model.encoder}, prior map {args.prior_features or 'minilm'}, "
          f"{base.preset_.model.n_soft_tokens + base.preset_.model.profile_tokens} tokens a candidate, "
          f"instruction {len(ids)} tokens, {args.threads} threads, {args.reps} reps, live MiniLM in {live_dtype()} "
          f"(MODELSAT_LIVE_BF16=0: float32), the prior's numpy BLAS on "
          f"{'all threads' if blas_limit_off() else '1 thread'} (MODELSAT_BLAS_SINGLE), "
          f"{'a' if getattr(base, 'records_prior_', None) is not None else 'no'} records prior")

    def instruction(rep: int) -> str:
        # a new text every repeat (same length in tokens), so the instruction's MiniLM embedding is paid each
        # time as for a live request, never read from the cache
        return INSTRUCTION.replace("45-year-old", f"{20 + rep % 70}-year-old")

    def one_forward(text: str):
        with torch.no_grad():
            x = torch.tensor([model.instruction_ids(text)])
            h = model.lm.model(input_ids=x, use_cache=False).last_hidden_state[:, -1]
            model._log_odds(h)

    from modelsat.embeddings import cache_file, in_disk_cache
    stale = sum(in_disk_cache([instruction(rep) for rep in range(args.reps)]))
    if stale:   # embed() would read them from disk: the MiniLM forward a live request pays would not be timed
        sys.exit(f"{stale} of the timed instructions are in the embedding cache ({cache_file()}), so their MiniLM "
                 "forward would not be timed; remove them or time with MODELSAT_CACHE pointing at another folder")
    rows = []
    for m in [int(c) for c in args.candidates.split(",")]:
        cands = synthetic_profiles(m)
        for r in routers.values():       # warm-up: encodes the profiles (ψ outputs are cached)
            r.model_.cfg = r.preset_.model
            with transient():
                r.score([INSTRUCTION], cands)
        if prior_router is not None:
            with transient():
                prior_router.score([INSTRUCTION], cands)
        times = {"forward": [], "prior": [], **{o: [] for o in orders}}
        for rep in range(args.reps):     # interleaved, so machine load hits all three alike
            text = instruction(rep)
            t = time.perf_counter(); one_forward(text); times["forward"].append(time.perf_counter() - t)
            for order, r in routers.items():
                r.model_.cfg = r.preset_.model
                with transient():        # computed now, never stored: every order pays the embedding
                    t = time.perf_counter(); r.score([text], cands); times[order].append(time.perf_counter() - t)
            if prior_router is not None:
                with transient():
                    t = time.perf_counter(); prior_router.score([text], cands)
                    times["prior"].append(time.perf_counter() - t)
        fwd = percentile_ms(times["forward"], 50)
        cols = orders + (("prior",) if prior_router is not None else ())
        rows.append((m, fwd, [(percentile_ms(times[o], 50), percentile_ms(times[o], 99)) for o in cols]))
    model.cfg = base.preset_.model
    cols = orders + (("prior only",) if prior_router is not None else ())
    head = " | ".join(f"{o} p50 | {o} p99 | {o} p50 / forward" for o in cols)
    print(f"\n| candidates | 1 forward p50 (ms) | {head} |")
    print("|---:|---:|" + "---:|" * 3 * len(cols))
    for m, fwd, cells in rows:
        print(f"| {m} | {fwd:.0f} | " + " | ".join(f"{a:.0f} | {b:.0f} | {a / fwd:.2f}x" for a, b in cells) + " |")


if __name__ == "__main__":
    main()
