"""Reruns the quick benchmark's Model-SAT rows on one zoo per data family and compares them with the figures
recorded in the repository; exits 1 when a mean moves beyond its stated tolerance.

    python scripts/check_figures.py                 # compare with docs/results/recorded-figures.json
    python scripts/check_figures.py --threads 1     # the same with torch on one thread (another float order)
    MODELSAT_CACHE=$(mktemp -d) python scripts/check_figures.py --threads 1   # and embeddings computed anew
    python scripts/check_figures.py --with-lm       # also the router with the learned correction, over seeds
    python scripts/check_figures.py --record [--with-lm]   # write the recorded figures from this run

The recorded file holds, per zoo and Model-SAT row, the mean (%) and the tolerance it is quoted with: for a
router that trains nothing by gradient (`modelsat-prior`) a fixed FLOAT_TOLERANCE (an argmax flipped by float
noise on a few items); for a router trained over seeds the larger of SEEDED_TOLERANCE and twice the seeds'
standard deviation. The machine (lscpu's model name), torch's thread count and the commit are printed beside
the figures. The default router alone (`modelsat-prior`) takes a few minutes on a warm 2-core machine; `--with-lm`
adds the LM router's three seeds in each of the five families (about 2-3 minutes a seed on a quiet machine); a
run with an empty cache embeds the prompts first (several minutes more). Rows the recorded file holds but the
run did not make (the LM's, without --with-lm) are skipped, not failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "docs" / "results" / "recorded-figures.json"
ZOOS = ["middle-mixed", "routerdc-in-domain", "routerbench", "llmrouter", "routellm-pair"]   # one per family
ROUTERS = ["modelsat-prior", "knn", "per-category"]
LM_ROUTER = "modelsat"
CHECKED = ("modelsat-prior", "modelsat", "modelsat-ensemble")
FLOAT_TOLERANCE = 0.5        # points
SEEDED_TOLERANCE = 1.0       # points, at least


def machine() -> str:
    """lscpu's model name (the CPU), else what platform knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def rows_of(results: dict) -> dict[str, dict[str, dict]]:
    """{zoo: {Model-SAT row: {"mean": %, "tolerance": points, "seeds": [%...]}}} from a benchmark's results."""
    out: dict[str, dict[str, dict]] = {}
    for entry in results["zoos"]:
        for row in entry["rows"]:
            if row["method"] not in CHECKED or row.get("status", "ok") != "ok":
                continue
            spread = row.get("seed_spread")
            tol = max(SEEDED_TOLERANCE, 2 * 100 * spread["sd"]) if spread else (
                SEEDED_TOLERANCE if row["method"].endswith("-ensemble") else FLOAT_TOLERANCE)
            out.setdefault(entry["zoo"]["name"], {})[row["method"]] = {
                "mean": round(100 * row["mean"], 2), "tolerance": round(tol, 2),
                "seeds": [round(100 * s["mean"], 2) for s in row.get("seeds", [])]}
    return out


def compare(recorded: dict, now: dict, skip: tuple[str, ...] = ()) -> list[dict]:
    """One line per recorded (zoo, row): the two means, the move, the tolerance and whether it holds; rows of
    the methods in `skip` (not run this time) are left out."""
    lines = []
    for zoo, methods in recorded.items():
        for method, rec in methods.items():
            if method in skip:
                continue
            cur = now.get(zoo, {}).get(method)
            if cur is None:
                lines.append({"zoo": zoo, "method": method, "recorded": rec["mean"], "now": None, "move": None,
                              "tolerance": rec["tolerance"], "ok": False})
                continue
            move = cur["mean"] - rec["mean"]
            lines.append({"zoo": zoo, "method": method, "recorded": rec["mean"], "now": cur["mean"],
                          "move": round(move, 2), "tolerance": rec["tolerance"],
                          "ok": abs(move) <= rec["tolerance"] + 1e-9})
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds of the LM router (default 3)")
    ap.add_argument("--out", type=Path, default=Path("check-figures-results"), help="the benchmark's folder")
    ap.add_argument("--figures", type=Path, default=RECORDED, help="the recorded figures (JSON)")
    ap.add_argument("--record", action="store_true", help="write this run's figures to --figures")
    ap.add_argument("--with-lm", action="store_true", help="also the router with the learned correction "
                    f"({LM_ROUTER}), trained over --seeds")
    ap.add_argument("--zoos", default=",".join(ZOOS), help=f"comma list of zoos (default: {','.join(ZOOS)})")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)

    import torch
    from modelsat.evaluate.benchmark import run_benchmark
    from modelsat.evaluate.zoos import resolve_zoos
    if args.threads:
        torch.set_num_threads(args.threads)
    where = {"machine": machine(), "torch_threads": torch.get_num_threads(), "commit": commit(),
             "python": platform.python_version(), "torch": torch.__version__}
    print(f"machine: {where['machine']}; torch {where['torch']} on {where['torch_threads']} threads; "
          f"commit {where['commit']}", flush=True)
    if not args.record and not args.figures.exists():
        print(f"no recorded figures at {args.figures}: run with --record first", file=sys.stderr)
        return 2
    t0 = time.time()
    routers = ROUTERS + ([LM_ROUTER] if args.with_lm else [])
    results = run_benchmark(resolve_zoos(args.zoos), routers, args.out, data=args.data_dir, quick=True,
                            save_routers=False, train_seeds=args.seeds)
    now = rows_of(results)
    print(f"benchmark took {time.time() - t0:.0f} s")
    if args.record:
        args.figures.parent.mkdir(parents=True, exist_ok=True)
        args.figures.write_text(json.dumps({"command": "python scripts/check_figures.py --record", **where,
                                            "zoos": now}, indent=1) + "\n")
        print(f"recorded {sum(len(v) for v in now.values())} figures in {args.figures}")
        for zoo, methods in now.items():
            for method, cur in methods.items():
                print(f"  {zoo:22s} {method:18s} {cur['mean']:6.2f} ± {cur['tolerance']:.2f}"
                      + (f"  seeds {cur['seeds']}" if cur["seeds"] else ""))
        return 0
    recorded = json.loads(args.figures.read_text())
    print(f"recorded on: {recorded.get('machine')}; torch on {recorded.get('torch_threads')} threads; "
          f"commit {recorded.get('commit')}")
    chosen = set(args.zoos.split(","))
    lines = compare({z: v for z, v in recorded["zoos"].items() if z in chosen}, now, skip=() if args.with_lm else (LM_ROUTER, f"{LM_ROUTER}-ensemble"))
    print(f"{'zoo':22s} {'router':18s} {'recorded':>8s} {'now':>8s} {'move':>6s} {'tol':>5s}")
    for ln in lines:
        now_s = f"{ln['now']:8.2f}" if ln["now"] is not None else "     n/a"
        move_s = f"{ln['move']:+6.2f}" if ln["move"] is not None else "   n/a"
        print(f"{ln['zoo']:22s} {ln['method']:18s} {ln['recorded']:8.2f} {now_s} {move_s} {ln['tolerance']:5.2f}  "
              + ("ok" if ln["ok"] else "MOVED"))
    bad = [ln for ln in lines if not ln["ok"]]
    print(f"{len(lines) - len(bad)} of {len(lines)} figures within their tolerance")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
