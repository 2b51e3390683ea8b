"""Times `modelsat savings` on real prompts and checks that its memory does not grow with the log.

    python scripts/bench_savings.py                 # 10,000 MMLU-Pro questions (not aptitude-test items)
    python scripts/bench_savings.py --prompts 2000  # fewer
    python scripts/bench_savings.py --lines 1000000 --no-router   # the reader and the sums alone, a million lines

The log is chat requests (a system message and the question as the user message), sampled with a seed from one
model's MMLU-Pro outputs in the data folder, leaving out every item of the shipped aptitude test. The command runs
with an empty cache folder (MODELSAT_CACHE), so every prompt is embedded now, and the folder is checked after the
run: the embedding cache must hold no row (live prompts are embedded in memory only). Printed: prompts per second
(the command's own figure and wall time), the process's peak memory, the load average before and after.

`--no-router` streams a log of `--lines` lines through `PromptLog` and `Tally` with P drawn at random (no router),
printing the peak memory after 10 % of the lines and at the end: equal figures mean the log is not held.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "Answer with the letter of the correct option."


def build_log(path: Path, n: int, seed: int = 0) -> int:
    """Writes n chat requests of MMLU-Pro questions that are not aptitude-test items; returns how many were left
    out as aptitude-test items."""
    from modelsat.aptitude.shipped import shipped_test
    from modelsat.paths import data_dir
    from modelsat.sources.mmlu_pro import _read_zip
    test = shipped_test()
    taken_ids = {it.item_id for s in test.subjects for it in s.items}
    taken_text = {it.question for s in test.subjects for it in s.items}
    # the questions are the same in every model's file; the largest file holds the most of them
    zips = sorted((data_dir() / "mmlu_pro").glob("model_outputs_*_5shots.zip"), key=lambda z: -z.stat().st_size)
    df = _read_zip(zips[0])
    keep = df[~df["item_id"].astype(str).isin(taken_ids) & ~df["prompt"].isin(taken_text)]
    if len(keep) < n:
        raise SystemExit(f"only {len(keep)} MMLU-Pro items outside the aptitude test; ask for fewer prompts")
    idx = np.random.default_rng(seed).choice(len(keep), n, replace=False)
    with open(path, "w") as f:
        for i in idx:
            f.write(json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                             {"role": "user", "content": keep["prompt"].iloc[i]}]}) + "\n")
    return len(df) - len(keep)


def priced_zoo(folder: Path) -> Path:
    """The shipped default zoo's profiles with example prices (USD per million tokens), as a zoo YAML."""
    from modelsat.cli.route import shipped_path
    prices = {"Phi-3-mini-4k-instruct": {"input": 0.13, "output": 0.52}, "Meta-Llama-3_1-8B": 0.18,
              "gemma-7b": 0.07, "Mistral-7B-v0.1": 0.2, "Qwen1.5-7B-Chat": 0.2, "Mixtral-8x7B-Instruct-v0.1": 0.6,
              "c4ai-command-r-v01": {"input": 0.5, "output": 1.5}}
    import yaml
    z = shipped_path("default_zoo")
    models = [{"name": m, "profile": str(z / f"{m}.json"), "price": p} for m, p in prices.items()]
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"name": "default-priced", "models": models}, sort_keys=False))
    return path


def run_command(prompts: int, work: Path) -> None:
    log = work / f"mmlu_pro_{prompts}.jsonl"
    left_out = build_log(log, prompts)
    zoo = priced_zoo(work)
    cache = work / "cache"
    load_before = os.getloadavg()
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "from modelsat.cli import main; main()", "savings", str(log),
                        "--zoo", str(zoo), "--out", str(work / "out")], capture_output=True, text=True,
                       env=dict(os.environ, MODELSAT_CACHE=str(cache), COLUMNS="200"))
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    if r.returncode != 0:
        raise SystemExit(f"modelsat savings failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    res = json.loads((work / "out" / "savings.json").read_text())
    rows = sum(sqlite3.connect(f).execute("SELECT COUNT(*) FROM emb").fetchone()[0]
               for f in cache.glob("minilm-embeddings-*.sqlite"))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    t = res["timing"]
    print(f"log: {prompts:,} MMLU-Pro questions as chat requests ({left_out:,} aptitude-test items left out)")
    print(f"routed {res['log']['prompts']:,} prompts in {t['seconds']:.1f} s: {t['prompts_per_second']:.1f} "
          f"prompts per second (start-up {t['startup_seconds']:.1f} s; wall {wall:.1f} s for the whole command)")
    print(f"peak memory {peak_mb:,.0f} MB; embedding-cache rows written: {rows}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), on {os.cpu_count()} cores")
    print(f"best single {res['best_single']}; rows in the table {sum(r['in_table'] for r in res['rows'])}")


def run_reader_only(lines: int, work: Path) -> None:
    from modelsat.savings import PromptLog, Tally, make_plan
    log_path = work / "lines.txt"
    with open(log_path, "w") as f:
        for i in range(lines):
            f.write(f"Question {i}: what is {i % 97} times {i % 89}, and why?\n")
    rng = np.random.default_rng(0)
    m = 7
    cost = rng.uniform(1e-5, 1e-3, m)
    log = PromptLog(log_path)
    tally = None
    start = time.perf_counter()
    marks = []
    for chunk in log.chunks(256):
        P = rng.random((len(chunk), m))
        C = np.broadcast_to(cost, P.shape) * np.array([[p.prompt_tokens / 10] for p in chunk])
        if tally is None:
            tally = Tally([f"m{j}" for j in range(m)], make_plan(P, C))
        tally.add(P, C)
        if not marks and log.prompts >= lines // 10:
            marks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    seconds = time.perf_counter() - start
    marks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"{log.prompts:,} lines read and summed in {seconds:.1f} s ({log.prompts / seconds:,.0f} lines/s, no router)")
    print(f"peak memory after 10 % of the lines {marks[0]:,.0f} MB, at the end {marks[-1]:,.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=10_000, help="prompts in the timed log (default 10,000)")
    ap.add_argument("--no-router", action="store_true", help="time the reader and the sums alone")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines for --no-router (default 1,000,000)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-savings-") as tmp:
        if args.no_router:
            run_reader_only(args.lines, Path(tmp))
        else:
            run_command(args.prompts, Path(tmp))


if __name__ == "__main__":
    main()
