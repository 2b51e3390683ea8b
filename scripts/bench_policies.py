"""What the routing policies add to a routing decision: p50/p99 of the policy step beside the decision's own time.

The proxy's path, measured as it serves: a `RoutingService` over the shipped default zoo (7 models, the shipped
router, prices assigned below since the shipped profiles carry none) decides one new instruction at a time
(`decide`: queue, router call in a worker thread, then the policy); its `policy_ms` (expected costs, the cap, the
policy's ranking of every candidate) is set beside `overhead_ms - policy_ms` (the router's own time). A budget
alias's λ is fitted once before timing, as at the proxy's start, and that fit is timed once too.

The command line's path: `modelsat route`'s policy step on the same P (`policies.choose`, `rank`,
`choice_record`); its budget fits λ on the routed instruction by bisection, each time.

    python scripts/bench_policies.py [--reps 200]

One run, interleaved (each repeat decides every policy in turn, so machine load hits them alike). The bar
(issue 41) is at most 1 ms added per decision.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

PRICES = {"Phi-3-mini-4k-instruct": 0.1, "Meta-Llama-3_1-8B": 0.06, "gemma-7b": 0.07, "Mistral-7B-v0.1": 0.05,
          "Qwen1.5-7B-Chat": 0.07, "Mixtral-8x7B-Instruct-v0.1": 0.6, "c4ai-command-r-v01": {"input": 0.5,
                                                                                          "output": 1.5}}
POLICIES = {"max-quality": {}, "threshold": {"delta": 0.03}, "tradeoff": {"lambda": 100.0},
            "budget": {"budget": 0.00005}}
INSTRUCTION = ("A 45-year-old patient presents with fatigue, weight gain and cold intolerance. Laboratory tests "
               "show an elevated TSH and a low free T4. Which of the following is the most appropriate initial "
               "treatment?")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def proxy_path(reps: int) -> tuple[dict, float, str]:
    from modelsat.cli.route import load_router, shipped_path
    from modelsat.serve.config import parse_config
    from modelsat.serve.routing import AliasRoute, RoutePolicy, RoutingService
    from modelsat.serve.upstream import build_upstreams
    router, _ = load_router(None)
    zoo = shipped_path("default_zoo")
    cfg = parse_config({"models": [{"name": n, "base_url": "http://127.0.0.1:9/v1", "profile": str(zoo / f"{n}.json"),
                                    "price": p} for n, p in PRICES.items()],
                        "auth": {"allow_unauthenticated": True}})
    service = RoutingService(router, build_upstreams(cfg, {}))
    await service.start()
    aliases = {name: AliasRoute(RoutePolicy(name, knobs)) for name, knobs in POLICIES.items()}
    t = time.perf_counter()
    aliases = await service.fit_budgets(aliases)
    fit_s = time.perf_counter() - t
    await service.decide(INSTRUCTION)          # warm-up: the router's lazy loading
    times = {name: {"decision": [], "policy": []} for name in POLICIES}
    for rep in range(reps):
        text = INSTRUCTION.replace("45-year-old", f"{20 + rep % 70}-year-old") + f" (case {rep})"
        for name, alias in aliases.items():
            d = await service.decide(text, alias.policy)
            times[name]["decision"].append(d.overhead_ms - d.policy_ms)
            times[name]["policy"].append(d.policy_ms)
    await service.stop()
    return times, fit_s, aliases["budget"].policy.fitted_on


def cli_path(reps: int) -> dict:
    from modelsat.cli.route import candidate_costs, load_router, load_zoo
    from modelsat.embeddings import transient
    from modelsat.policies import check_knobs, choice_record, choose, rank
    router, _ = load_router(None)
    _, candidates = load_zoo(None)
    for c in candidates:
        c.notes["price_per_mtok"] = PRICES[c.model]
    with transient():
        p = router.predict_proba([INSTRUCTION], candidates)[0]
    names = [c.model for c in candidates]
    times = {name: [] for name in POLICIES}
    for _ in range(reps):
        for name, knobs in POLICIES.items():
            t = time.perf_counter()
            k = check_knobs(name, knobs)
            tokens, costs, known = candidate_costs(INSTRUCTION, candidates)
            ch = choose(p[None, :], costs, name, lam=k.get("lambda"), delta=k.get("delta"), tau=k.get("tau"),
                        budget_usd=k.get("budget"), models=names)
            order = rank(p, costs, "tradeoff" if name == "budget" else name, lam=ch.params.get("lambda"),
                         delta=k.get("delta"), tau=k.get("tau"))
            choice_record(ch, 0, known, order)
            times[name].append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    from modelsat.embeddings import transient
    with transient():
        proxy, fit_s, fitted_on = asyncio.run(proxy_path(args.reps))
    cli = cli_path(args.reps)
    print(f"shipped router, shipped default zoo ({len(PRICES)} models, prices assigned in this script), "
          f"{args.reps} new instructions per policy, interleaved")
    print(f"budget alias: lambda fitted once in {fit_s:.2f} s on {fitted_on}\n")
    print("| policy | proxy: decision without policy p50 / p99 (ms) | proxy: policy p50 / p99 (ms) "
          "| modelsat route: policy p50 / p99 (ms) |")
    print("|---|---:|---:|---:|")
    for name in POLICIES:
        d, pol, c = proxy[name]["decision"], proxy[name]["policy"], cli[name]
        print(f"| {name} | {pct(d, 50):.1f} / {pct(d, 99):.1f} | {pct(pol, 50):.3f} / {pct(pol, 99):.3f} "
              f"| {pct(c, 50):.3f} / {pct(c, 99):.3f} |")


if __name__ == "__main__":
    main()
