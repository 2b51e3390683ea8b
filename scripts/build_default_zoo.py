"""Rebuilds what `modelsat route` needs with no data folder: the shipped subject map and the default zoo.

    python scripts/build_default_zoo.py [--data-dir DIR] [--zoo middle-mixed]

Writes (package data, small):
  src/modelsat/shipped/subject_map/         57 x 384 anchors (float16) + temperature (centroid map on MiniLM,
                                            the default; routers/subject_map.py)
  src/modelsat/shipped/subject_map_static/  57 x 384 classifier rows (float16) + intercepts + temperature
                                            (linear map on static MiniLM features)
  src/modelsat/shipped/default_zoo/   zoo.yaml + one profile JSON per model, built from MMLU-Pro TRAINING items
                                      only (aptitude test chosen on training items, then each model's score on
                                      its 20 core items per subject)

Splits: the evaluation harness's (`modelsat.evaluate.splits.assign_splits`, seed 0, 70/10/20 train/val/test
per item), so the default zoo's profiles never saw an item the benchmark tests on.
Subject maps (`--subject-map both`, the default, or one of them): the centroid map is the cosine to centroids of
full MiniLM embeddings of official MMLU dev+test questions that are not MMLU-Pro items (same normalised question
text, so no MMLU-Pro item, train or test, is seen), at most 40 a subject, keyword blend chosen on validation
items; the linear map is a logistic regression of the subject on static MiniLM features
(`embeddings.static_encode`) of all those questions, C chosen on validation items. Either way the temperature is
the maximum likelihood of the true subject on 1,000 MMLU-Pro training items of `ori_mmlu` origin, and the script
prints subject top-1 / top-3 accuracy on train, val and test.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "modelsat" / "shipped"

MMLU_PRO_ZOOS = ("smaller-scale", "smaller-mixed", "middle-mixed", "larger-mixed", "high-performance")


def mmlu_pro_zoos() -> dict[str, list[str]]:
    """The paper's five MMLU-Pro zoos (issue 11), as the package's zoo files list them."""
    from modelsat.evaluate.zoos import builtin_zoos
    zoos = builtin_zoos()
    return {name: zoos[name].model_names for name in MMLU_PRO_ZOOS}


def item_split(records: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """'train' / 'val' / 'test' per record: the evaluation harness's item split (seed 0, 70/10/20)."""
    from modelsat.evaluate.splits import apply_splits, assign_splits
    split = apply_splits(records, assign_splits(records, seed=seed))["eval_split"]
    return split.replace({"validation": "val"}).to_numpy()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def load_data(data_dir: str | None):
    """(MMLU-Pro records with a `split` column, MMLU question table) from the data folder."""
    from modelsat import sources
    from modelsat.paths import data_dir as resolve
    from modelsat.sources import mmlu
    rec = sources.load("mmlu_pro", data=data_dir).drop(columns=["response"])
    rec["split"] = item_split(rec)
    q = mmlu.questions(resolve(data_dir) / "mmlu")
    return rec, q


def anchor_questions(q: pd.DataFrame, rec: pd.DataFrame, per_subject: int = 40, seed: int = 0) -> pd.DataFrame:
    """MMLU questions that are not MMLU-Pro items (same normalised question text), at most `per_subject` each.

    The cap keeps the build cheap on a CPU (MiniLM embeds ~15 MMLU prompts a second on one core); a centroid
    of 40 questions is already stable.
    """
    pro_q = {_norm(p.split("\nA. ")[0]) for p in rec.drop_duplicates("item_id")["prompt"]}
    fresh = q[~q["question"].map(_norm).isin(pro_q)]
    picked = (fresh.groupby("subject", group_keys=False)
              .apply(lambda d: d.sample(min(len(d), per_subject), random_state=seed)))
    return fresh.loc[picked.index]   # pandas >= 2.2 drops the grouping column inside apply


def _mmlu_items_by_split(items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """MMLU-Pro items of ori_mmlu origin per harness split; 1,000 training items (they fit one number, T)."""
    mmlu_items = items[items["source"].fillna("").str.startswith("ori_mmlu-")]
    by_split = {s: mmlu_items[mmlu_items["split"] == s] for s in ("train", "val", "test")}
    by_split["train"] = by_split["train"].sample(frac=1, random_state=0).iloc[:1000]
    return by_split


def subject_report(sm, by_split: dict[str, pd.DataFrame]) -> dict:
    """{split: {top1, top3, n_items}} of the map's heaviest subjects against the items' true subject."""
    report = {}
    for s, df in by_split.items():
        feats = sm.featurize(df["prompt"].tolist())
        acc, n = sm.top1_accuracy(feats, df["subject"].tolist())
        w = sm.weights_from_embeddings(feats)
        idx = {x: i for i, x in enumerate(sm.subjects)}
        y = np.array([idx[x] for x in df["subject"]])
        top3 = float(np.mean([yy in np.argsort(-ww)[:3] for ww, yy in zip(w, y)]))
        report[s] = {"top1": acc, "top3": top3, "n_items": n}
    return report


def pick_on_validation(maps: dict, by_split: dict[str, pd.DataFrame], label: str, verbose: bool = True):
    """(chosen key, {key: val top-1}, map) among candidate maps {key: SubjectMap}: each fits its temperature on
    the training items, the one naming the most validation subjects right wins (the first on a tie)."""
    tried, best = {}, None
    for key, sm in maps.items():
        sm.fit_temperature(sm.featurize(by_split["train"]["prompt"].tolist()), by_split["train"]["subject"].tolist())
        acc, n = sm.top1_accuracy(sm.featurize(by_split["val"]["prompt"].tolist()), by_split["val"]["subject"].tolist())
        tried[key] = acc
        if verbose:
            print(f"  {label} {key:g}: T={sm.temperature:.4f}  val top-1 {acc:.3f} (n={n})")
        if best is None or acc > best[1]:
            best = (key, acc, sm)
    return best[0], tried, best[2]


def build_linear_subject_map(rec: pd.DataFrame, q: pd.DataFrame, verbose: bool = True):
    """The shipped subject map: logistic regression on static MiniLM features, C picked on val, T on train."""
    from modelsat.embeddings import static_encode
    from modelsat.routers.subject_map import SubjectMap

    items = rec.drop_duplicates("item_id").reset_index(drop=True)
    questions = anchor_questions(q, items, per_subject=10 ** 9)
    x = static_encode(questions["prompt"].tolist())
    by_split = _mmlu_items_by_split(items)
    maps = {C: SubjectMap.from_classifier(x, questions["subject"].to_numpy(), C=C, feature_kind="static")
            for C in (1.0, 10.0, 100.0)}
    C, tried, sm = pick_on_validation(maps, by_split, "C", verbose)
    report = subject_report(sm, by_split)
    sm.provenance.update({
        "method": "linear: logistic regression on static MiniLM features (embeddings.static_encode)",
        "training_questions": "official MMLU dev+test questions (prompt = question + options), minus every "
                              "MMLU-Pro item (same question text); no model results",
        "n_training_questions": int(len(questions)), "C": C, "C_val_top1": {str(k): v for k, v in tried.items()},
        "temperature_fitted_on": "1,000 MMLU-Pro ori_mmlu training items (harness split, seed 0, 70/10/20)",
        "subject_accuracy": report})
    if verbose:
        print(f"chosen C={C:g}; T={sm.temperature:.3f}; trained on {len(questions)} MMLU questions that are not "
              "MMLU-Pro items")
        for s, r in report.items():
            print(f"  {s:5s}: subject top-1 {r['top1']:.3f}, top-3 {r['top3']:.3f} (n={r['n_items']})")
    return sm


def build_subject_map(rec: pd.DataFrame, q: pd.DataFrame, verbose: bool = True):
    """The earlier centroid map (anchors from de-duplicated MMLU, keyword blend picked on val, T fitted on train)."""
    import torch
    torch.set_num_threads(1)
    from modelsat.aptitude.core_items import subject_keywords
    from modelsat.embeddings import embed
    from modelsat.routers.subject_map import SubjectMap

    items = rec.drop_duplicates("item_id").reset_index(drop=True)
    anchors = anchor_questions(q, items)
    q_emb = embed(anchors["prompt"].tolist(), progress=verbose)
    kw = subject_keywords()
    kw_names = sorted(kw)
    kw_emb = dict(zip(kw_names, embed([", ".join(kw[s]) for s in kw_names])))
    by_split = _mmlu_items_by_split(items)
    maps = {w: SubjectMap.from_questions(q_emb, anchors["subject"].to_numpy(), kw_emb, w)
            for w in (0.0, 0.1, 0.2, 0.3, 0.5)}
    kw_weight, results, sm = pick_on_validation(maps, by_split, "keyword weight", verbose)
    report = subject_report(sm, by_split)
    sm.provenance.update({
        "method": "centroid: cosine to MMLU question centroids of all-MiniLM-L6-v2 embeddings",
        "anchors": "official MMLU dev+test questions (prompt = question + options; all-MiniLM-L6-v2), minus "
                   "every MMLU-Pro item (same question text), <= 40 per subject (seed 0); no model results",
        "n_anchor_questions": int(len(anchors)),
        "keywords": "modelsat/data/aptitude_keywords.json", "keyword_weight": kw_weight,
        "keyword_weight_val_top1": {str(k): v for k, v in results.items()},
        "temperature_fitted_on": "1,000 MMLU-Pro ori_mmlu training items (harness split, seed 0, 70/10/20)",
        "subject_accuracy": report})
    if verbose:
        print(f"chosen keyword weight {kw_weight}; T={sm.temperature:.4f}; anchors from {len(anchors)} MMLU "
              "questions that are not MMLU-Pro items")
        for s, r in report.items():
            print(f"  {s:5s}: subject top-1 {r['top1']:.3f}, top-3 {r['top3']:.3f} (n={r['n_items']})")
    return sm


def build_profiles(rec: pd.DataFrame, models: list[str], label: str):
    """(aptitude test chosen on training items, {model: profile from its training-item answers})."""
    from modelsat.aptitude.core_items import build_test
    from modelsat.aptitude.from_records import profile_from_records
    held_out = set(rec.loc[rec["split"] != "train", "item_id"].unique())
    train = rec[rec["split"] == "train"]
    test = build_test(train, exclude=held_out, source={"benchmark": "mmlu_pro", "records": label,
                                                       "split": "train items only (seed 0, 70/10/20)"})
    profiles = {m: profile_from_records(train, m, test, label=label, exclude=held_out) for m in models}
    return test, profiles


def write_default_zoo(profiles: dict, zoo_name: str, test_version: str, out: Path) -> None:
    import yaml
    from modelsat.aptitude.from_records import profile_file_name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    entries = []
    for m, p in profiles.items():
        p.save(out / profile_file_name(m))
        entries.append({"name": m, "profile": profile_file_name(m)})
    zoo = {"name": f"default ({zoo_name}, MMLU-Pro)", "models": entries,
           "notes": f"Profiles on aptitude test {test_version}, built from MMLU-Pro training items only "
                    "(modelsat.evaluate.splits, seed 0, 70/10/20) by scripts/build_default_zoo.py."}
    (out / "zoo.yaml").write_text(yaml.safe_dump(zoo, sort_keys=False))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--zoo", default="middle-mixed", choices=MMLU_PRO_ZOOS)
    ap.add_argument("--subject-map", default="both", choices=("both", "centroid", "linear"),
                    help="which shipped map(s) to rebuild: centroid (on MiniLM embeddings, the default map; "
                         "minutes of embedding on a CPU when the cache is cold), linear (on static features)")
    args = ap.parse_args(argv)
    rec, q = load_data(args.data_dir)
    print(f"MMLU-Pro: {len(rec)} records, {rec['item_id'].nunique()} items; "
          f"split {rec.drop_duplicates('item_id')['split'].value_counts().to_dict()}")
    from modelsat.routers.subject_map import SHIPPED_DIRS
    if args.subject_map in ("both", "centroid"):
        build_subject_map(rec, q).save(SHIPPED / SHIPPED_DIRS["minilm"])
    if args.subject_map in ("both", "linear"):
        build_linear_subject_map(rec, q).save(SHIPPED / SHIPPED_DIRS["static"])
    test, profiles = build_profiles(rec, mmlu_pro_zoos()[args.zoo], label="mmlu_pro (shared/data), training split")
    write_default_zoo(profiles, args.zoo, test.version, SHIPPED / "default_zoo")
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()
               and (f.parent.name.startswith("subject_map") or "default_zoo" in f.parts))
    print(f"wrote the subject map(s) and {SHIPPED / 'default_zoo'} ({size / 1024:.0f} KB in all); "
          f"test {test.version}, {len(test.subjects)} subjects")
    print(json.dumps({m: round(p.mean_accuracy, 3) for m, p in profiles.items()}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
