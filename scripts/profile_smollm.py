"""Profile SmolLM2-135M-Instruct on the aptitude test, end to end, and print accuracy and time.

    python scripts/profile_smollm.py --test aptitude.json --out-dir runs/smollm [--via hf|http|both] [--limit N]

`hf`: in-process, answer = the option letter with the highest next-token logit (one forward per item).
`http`: the project's OpenAI-compatible server (modelsat.serve.local_hf_server) on 127.0.0.1, queried by the
endpoint runner; answer = first option letter of a greedy reply of at most --max-tokens tokens.
Both journal every answer, so rerunning the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from modelsat.aptitude.core_items import load_test
from modelsat.aptitude.runner import DEFAULT_LOCAL, take_test


def summary(label: str, prof, seconds: float) -> None:
    n = sum(s.n_items for s in prof.subjects.values())
    acc = sum(s.accuracy * s.n_items for s in prof.subjects.values()) / max(n, 1)
    print(f"{label}: accuracy {acc:.1%} on {n} items ({len(prof.subjects)} subjects), "
          f"{prof.provenance['unparsed_answers']} unparsed; {seconds:.0f} s this run "
          f"({prof.provenance['answer_seconds_total']:.0f} s of answering in total, "
          f"{prof.provenance['answer_seconds_total'] / max(prof.provenance['prompts'], 1):.2f} s/prompt)",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--test", required=True)
    ap.add_argument("--out-dir", default="runs/smollm")
    ap.add_argument("--via", choices=["hf", "http", "both"], default="both")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = load_test(args.test)
    out = Path(args.out_dir)
    suffix = f"-limit{args.limit}" if args.limit else ""
    if args.via in ("hf", "both"):
        t0 = time.perf_counter()
        prof = take_test(test, out / f"smollm-hf-logits{suffix}.json", "SmolLM2-135M-Instruct",
                         hf_path=DEFAULT_LOCAL, scoring="logits", limit=args.limit, threads=args.threads,
                         progress=False)
        summary("hf-path (logits)", prof, time.perf_counter() - t0)
    if args.via in ("http", "both"):
        from modelsat.aptitude.local_model import LocalChatModel
        from modelsat.serve.local_hf_server import make_app, running_server
        lm = LocalChatModel(None, threads=args.threads)
        with running_server(make_app(lm=lm, max_tokens_cap=args.max_tokens)) as url:
            t0 = time.perf_counter()
            prof = take_test(test, out / f"smollm-http-generate{suffix}.json", "SmolLM2-135M-Instruct",
                             endpoint=url, concurrency=1, limit=args.limit, max_tokens=args.max_tokens,
                             timeout=120, progress=False)
            summary(f"http {url} (greedy, max_tokens {args.max_tokens})", prof, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
