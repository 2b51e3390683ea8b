"""Checks that a profile means something: its mean accuracy against the model's accuracy elsewhere."""

from __future__ import annotations

import pandas as pd
from scipy.stats import spearmanr

from modelsat.aptitude.core_items import AptitudeTest
from modelsat.aptitude.from_records import profile_from_records


def profile_vs_outside(records: pd.DataFrame, test: AptitudeTest, benchmark: str | None = None
                       ) -> tuple[pd.DataFrame, float, float]:
    """(per-model table of profile mean accuracy and accuracy on the items of `benchmark` outside the test,
    Spearman rho, p-value). `benchmark` defaults to the benchmark of the test's items."""
    benchmark = benchmark or test.items()[0][1].benchmark
    core = {i for b, i in test.item_keys() if b == benchmark}
    rows = [_row(records, model, test, benchmark, core) for model in sorted(records["model"].dropna().unique())]
    return _correlate([r for r in rows if r is not None])


def _row(records: pd.DataFrame, model: str, test: AptitudeTest, benchmark: str, core: set) -> dict | None:
    """One model's profile mean on `test` beside its accuracy on `benchmark` items outside the core (None if
    it answered none there)."""
    recs = records[records["model"] == model]
    outside = recs[(recs["benchmark"] == benchmark) & ~recs["item_id"].isin(core)]
    if len(outside) == 0:
        return None
    prof = profile_from_records(recs, model, test)
    return {"model": model, "profile_mean": prof.mean_accuracy, "outside_items": len(outside),
            "outside_accuracy": float(outside["score"].mean())}


def _correlate(rows: list[dict]) -> tuple[pd.DataFrame, float, float]:
    """(table sorted by outside accuracy, Spearman rho, p-value) of profile mean vs outside accuracy."""
    table = pd.DataFrame(rows).sort_values("outside_accuracy", ascending=False).reset_index(drop=True)
    rho, p = spearmanr(table["profile_mean"], table["outside_accuracy"])
    return table, float(rho), float(p)


def leave_one_out(records: pd.DataFrame, **build_kwargs) -> tuple[pd.DataFrame, float, float]:
    """Each model treated as new: the test is built on the other models only, the model is profiled on it,
    and its profile mean is compared with its accuracy outside that test. (table, Spearman rho, p-value)."""
    from modelsat.aptitude.core_items import build_test
    rows = []
    models = sorted(records["model"].dropna().unique())
    for model in models:
        test = build_test(records, pool=[m for m in models if m != model], **build_kwargs)
        benchmark = test.items()[0][1].benchmark
        core = {i for b, i in test.item_keys() if b == benchmark}
        row = _row(records, model, test, benchmark, core)
        if row is not None:
            rows.append(row)
    return _correlate(rows)
