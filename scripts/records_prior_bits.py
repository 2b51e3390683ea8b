"""How much of the records prior's neighbourhoods survive keeping the training items' embeddings in fewer bits
(`model.prior_records_bits`).

For validation instructions of a benchmark's split, the k nearest training items by MiniLM cosine are found
against the float32 embeddings and against the rows rounded to 8 and 4 bits (`records_prior.quantize`); prints
the mean share of the float32 neighbours each keeps, and what the embeddings weigh (8,423 MMLU-Pro training items:
12.9 MB in float32, 1.6 MB in 4 bits).

    python scripts/records_prior_bits.py [--source mmlu_pro] [--seed 0] [--queries 600]
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
    args = ap.parse_args()
    from modelsat.cli.train import training_records
    from modelsat.embeddings import embed
    from modelsat.routers._training_data import item_table
    from modelsat.routers.knn import nearest_rows
    from modelsat.routers.modelsat.records_prior import K_GRID, dequantize, quantize
    train, validation = training_records([args.source], args.data_dir, args.seed)
    index = embed(item_table(train).prompts, progress=True)
    query = embed(item_table(validation).prompts[:args.queries], progress=True)
    ref = {k: nearest_rows(query, index, k) for k in K_GRID}
    print(f"{len(query)} validation instructions, {len(index)} training items ({args.source}, split seed {args.seed})")
    print("| bits | MB | " + " | ".join(f"k={k} kept" for k in K_GRID) + " |")
    print("|---:|---:|" + "---:|" * len(K_GRID))
    for bits in (32, 8, 4):
        rows = index if bits == 32 else dequantize(quantize(index, bits))
        kept = [np.mean([len(set(a) & set(b)) / k for a, b in zip(nearest_rows(query, rows, k), ref[k])])
                for k in K_GRID]
        mb = index.size * bits / 8 / 1e6
        print(f"| {bits} | {mb:.1f} | " + " | ".join(f"{v:.3f}" for v in kept) + " |")


if __name__ == "__main__":
    main()
