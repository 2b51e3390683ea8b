"""Profiles from existing per-item results (records): a model's accuracy on the core items of each subject,
or, where it never answered them, on the other items of that MMLU subject it did answer (a fallback).

Some sources ran MMLU questions without keeping their subject (LLMRouter's `llmrouter/mmlu`: 550 items, no
subject). `infer_mmlu_subjects` gives each such item the subject the shipped subject map finds nearest (MiniLM
embedding of the question text, no score involved); subjects resting on inferred items have basis "inferred"."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import pandas as pd

from modelsat.aptitude.core_items import AptitudeTest
from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.errors import ModelsatError


def is_mmlu_benchmark(name: str) -> bool:
    """`mmlu` itself or another source's copy of it (`routellm/mmlu`, `llmrouter/mmlu`); not MMLU-Pro."""
    return name == "mmlu" or name.endswith("/mmlu")


def infer_mmlu_subjects(records: pd.DataFrame) -> pd.DataFrame:
    """`records` with the MMLU subject filled in, by the shipped subject map, on MMLU items that lack one.

    Adds a boolean column `subject_inferred`. Only rows of an MMLU benchmark (`is_mmlu_benchmark`) with an empty
    subject are touched; one embedding per distinct question (disk-cached).
    """
    out = records.copy()
    subj = out["subject"] if "subject" in out.columns else pd.Series(None, index=out.index, dtype=object)
    todo = subj.isna() & out["benchmark"].map(is_mmlu_benchmark)
    out["subject"] = subj.astype(object)
    out["subject_inferred"] = todo
    if todo.any():
        from modelsat.routers.subject_map import shipped
        smap = shipped()
        prompts = out.loc[todo, "prompt"].astype(str)
        uniq = list(dict.fromkeys(prompts))
        weights = smap.weights(uniq)
        best = {p: smap.subjects[int(i)] for p, i in zip(uniq, weights.argmax(axis=1))}
        out.loc[todo, "subject"] = prompts.map(best).to_numpy()
    return out


def profile_from_records(records: pd.DataFrame, model: str, test: AptitudeTest, label: str | None = None,
                         notes: dict | None = None, exclude: set | None = None) -> Profile:
    """The profile of `model` on `test` from its records.

    Per subject: the mean score on the core items the model answered ("core"); if it answered none of them,
    the mean score over every item it answered whose `subject` is that MMLU subject ("fallback", e.g. RouterDC
    or RouteLLM models that answered official MMLU questions). `n_items` says how many items each accuracy
    rests on; subjects with no item at all are left out and listed in the provenance. `exclude` (item ids or
    (benchmark, item_id) pairs) keeps evaluation items out of the fallback.
    """
    recs = records[records["model"] == model]
    if len(recs) == 0:
        known = sorted(records["model"].dropna().unique())
        raise ModelsatError(f"no records for model {model!r}; known: {', '.join(known[:40])}"
                            + (" ..." if len(known) > 40 else ""))
    exclude = exclude or set()
    if exclude:
        keep = [not (i in exclude or (b, i) in exclude) for b, i in zip(recs["benchmark"], recs["item_id"])]
        recs = recs[keep]
    by_key = {(b, i): float(s) for b, i, s in zip(recs["benchmark"], recs["item_id"], recs["score"])}
    by_subject = recs.groupby("subject")["score"].agg(["mean", "size"])
    inferred_only: set = set()
    if "subject_inferred" in recs.columns:
        flags = recs.groupby("subject")["subject_inferred"].all()
        inferred_only = set(flags[flags].index)
    subjects: dict[str, SubjectScore] = {}
    fallback, missing = [], []
    for s in test.subjects:
        scores = [by_key[(it.benchmark, it.item_id)] for it in s.items if (it.benchmark, it.item_id) in by_key]
        if scores:
            subjects[s.name] = SubjectScore(sum(scores) / len(scores), len(scores), "core")
        elif s.name in by_subject.index:
            row = by_subject.loc[s.name]
            basis = "inferred" if s.name in inferred_only else "fallback"
            subjects[s.name] = SubjectScore(float(row["mean"]), int(row["size"]), basis)
            fallback.append(s.name)
        else:
            missing.append(s.name)
    if not subjects:
        raise ModelsatError(f"model {model!r} has no result on any core item nor on any item of the test's "
                            f"{len(test.subjects)} MMLU subjects; it cannot be profiled from these records "
                            "(profile it by running the test: modelsat profile --endpoint/--hf-path)")
    return Profile(model=model, test_version=test.version, subjects=subjects, notes=dict(notes or {}),
                   provenance={"method": "records", "records": label or "<table>",
                               "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                               "benchmarks": sorted(recs["benchmark"].unique().tolist()),
                               "core_subjects": len(subjects) - len(fallback),
                               "fallback_subjects": fallback, "missing_subjects": missing,
                               "inferred_subjects": sorted(set(fallback) & inferred_only)})


def profile_file_name(model: str) -> str:
    """A file name for a model's profile (slashes and odd characters replaced)."""
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in model)
    return f"{safe}.json"


def profile_all(records: pd.DataFrame, test: AptitudeTest, out_dir: str | os.PathLike,
                label: str | None = None, exclude: set | None = None) -> tuple[list[Path], dict[str, str]]:
    """Profiles every model of `records` into `out_dir`; returns (written paths, {model: why not profiled})."""
    out = Path(out_dir)
    written, skipped = [], {}
    for model in sorted(records["model"].dropna().unique()):
        try:
            prof = profile_from_records(records, model, test, label=label, exclude=exclude)
        except ModelsatError as exc:
            skipped[model] = str(exc)
            continue
        written.append(prof.save(out / profile_file_name(model)))
    return written, skipped
