"""How much of the records prior's neighbourhoods survive keeping the training items' embeddings in fewer bits
(`model.prior_records_bits`).

For validation instructions of a benchmark's split, the k nearest training items by MiniLM cosine are found
against the float32 embeddings and against the rows rounded to 8 and 4 bits (`records_prior.quantize`); prints
the mean share of the float32 neighbours each keeps, and what the embeddings weigh (8,423 MMLU-Pro training items:
12.9 MB in float32, 1.6 MB in 4 bits).

`--dims` adds rows for the embeddings projected on their top principal directions (fitted on the training
items, the queries projected the same way, then unit rows in 8 bits): fewer numbers a row, another way to shrink the
file. Measured on 2026-12-06 (commit 1816dd0): 192 of 384 dims keep 90-93 % of the neighbours, fewer than 4 bits' 95 %, so the router keeps
all 384 in 8 bits.

    python experiments/records_prior_bits.py [--source mmlu_pro] [--seed 0] [--queries 600] [--dims 128,192,256]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="mmlu_pro")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0, help="the benchmark split's seed")
    ap.add_argument("--queries", type=int, default=600, help="validation instructions to look up")
    ap.add_argument("--dims", default="", help="comma-separated dimension counts to project on (e.g. 128,192,256)")
    args = ap.parse_args()
    try:
        dims = [int(d) for d in args.dims.split(",") if d.strip()]
    except ValueError:
        ap.error(f"--dims: not comma-separated integers: {args.dims!r}")
    from modelsat.cli.train import training_records
    from modelsat.embeddings import embed
    from modelsat.routers._training_data import item_table
    from modelsat.routers.knn import nearest_rows
    from modelsat.routers.modelsat.records_prior import K_GRID, _unit, dequantize, quantize
    train, validation = training_records([args.source], args.data_dir, args.seed)
    index = embed(item_table(train).prompts, progress=True)
    query = embed(item_table(validation).prompts[:args.queries], progress=True)
    ref = {k: nearest_rows(query, index, k) for k in K_GRID}
    print(f"{len(query)} validation instructions, {len(index)} training items ({args.source}, split seed {args.seed})")
    if any(not 0 < d < index.shape[1] for d in dims):
        ap.error(f"--dims: each must be between 1 and {index.shape[1] - 1}")

    def row(label: str, rows: np.ndarray, q: np.ndarray, bits: int) -> None:
        kept = [np.mean([len(set(a) & set(b)) / k for a, b in zip(nearest_rows(q, rows, k), ref[k])])
                for k in K_GRID]
        print(f"| {label} | {bits} | {rows.size * bits / 8 / 1e6:.1f} | " + " | ".join(f"{v:.3f}" for v in kept) + " |")

    print("| dims | bits | MB | " + " | ".join(f"k={k} kept" for k in K_GRID) + " |")
    print("|---:|---:|---:|" + "---:|" * len(K_GRID))
    for bits in (32, 8, 4):
        row(str(index.shape[1]), index if bits == 32 else dequantize(quantize(index, bits)), query, bits)
    if dims:
        directions = np.linalg.svd(index, full_matrices=False)[2]       # rows: principal directions, by variance
        for d in dims:
            project = directions[:d].T.astype(np.float32)
            row(str(d), dequantize(quantize(_unit(index @ project), 8)), _unit(query @ project), 8)


if __name__ == "__main__":
    main()
