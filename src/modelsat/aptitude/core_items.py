"""The aptitude test: 50 MMLU subjects x 20 core items chosen by distinguishability (paper, "Capability
Instructions"; design.md, "The idea" 1), and its versioned JSON file.

An item distinguishes models when about half of the selection pool answers it correctly; items that every
model gets right, or none does, say nothing about a model and are never chosen.

Aptitude-test JSON (format "modelsat-aptitude-test", format_version 1):

    {"format": "modelsat-aptitude-test", "format_version": 1,
     "version": "<12 hex digits: sha256 of the canonical JSON of pool + subjects>",
     "created": "<ISO date>", "source": {"benchmark": "mmlu_pro", "records": "<file or source name>"},
     "pool": ["model", ...],
     "selection": {"n_subjects": 50, "per_subject": 20, "seed": 0, "excluded_items": 0, "rule": "..."},
     "subjects": [{"name": "high_school_mathematics", "keywords": ["Mathematics", ...5],
                   "items": [{"item_id": "123", "benchmark": "mmlu_pro", "question": "...",
                              "options": ["...", ...], "answer": "C", "pool_share": 0.52}, ...]}, ...]}
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import write_json_atomic
from modelsat.errors import ModelsatError

FORMAT = "modelsat-aptitude-test"
FORMAT_VERSION = 1
LETTERS = "ABCDEFGHIJ"
MMLU_PREFIX = "ori_mmlu-"


def subject_keywords() -> dict[str, list[str]]:
    """Five keywords for each of the 57 MMLU subjects (package data, written for modelsat)."""
    text = resources.files("modelsat").joinpath("data/aptitude_keywords.json").read_text()
    return json.loads(text)


@dataclass
class CoreItem:
    item_id: str
    benchmark: str
    question: str
    options: list[str]
    answer: str                      # letter
    pool_share: float | None = None  # share of the selection pool answering it correctly

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "benchmark": self.benchmark, "question": self.question,
                "options": list(self.options), "answer": self.answer, "pool_share": self.pool_share}


@dataclass
class Subject:
    name: str
    keywords: list[str]
    items: list[CoreItem]

    def to_dict(self) -> dict:
        return {"name": self.name, "keywords": list(self.keywords), "items": [i.to_dict() for i in self.items]}


@dataclass
class AptitudeTest:
    """The core items per subject, the pool they were selected on, and a content-hash version."""

    subjects: list[Subject]
    pool: list[str]
    source: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    created: str = ""

    @property
    def version(self) -> str:
        """12 hex digits of the sha256 of the pool and the subjects (names, keywords, items) as canonical JSON."""
        body = {"pool": sorted(self.pool), "subjects": [s.to_dict() for s in self.subjects]}
        blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    @property
    def subject_names(self) -> list[str]:
        return [s.name for s in self.subjects]

    def keywords(self) -> dict[str, list[str]]:
        return {s.name: list(s.keywords) for s in self.subjects}

    def items(self) -> list[tuple[str, CoreItem]]:
        """(subject, item) for every core item, in file order."""
        return [(s.name, it) for s in self.subjects for it in s.items]

    def item_keys(self) -> set[tuple[str, str]]:
        return {(it.benchmark, it.item_id) for _, it in self.items()}

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
                "created": self.created, "source": self.source, "pool": list(self.pool),
                "selection": self.selection, "subjects": [s.to_dict() for s in self.subjects]}

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the test as JSON, atomically (gzip-compressed where `path` ends in `.gz`)."""
        return write_json_atomic(self.to_dict(), path)

    @classmethod
    def from_dict(cls, d: dict, source: str = "<aptitude test>") -> "AptitudeTest":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ModelsatError(f"{source}: not a modelsat aptitude test (expected \"format\": \"{FORMAT}\")")
        if d.get("format_version") != FORMAT_VERSION:
            raise ModelsatError(f"{source}: aptitude-test format_version {d.get('format_version')!r} is not "
                                f"supported (this modelsat reads {FORMAT_VERSION})")
        subjects = []
        try:
            for si, s in enumerate(d["subjects"]):
                items = []
                for ii, it in enumerate(s["items"]):
                    where = f"subjects[{si}] ({s.get('name')!r}) items[{ii}]"
                    options = it["options"]
                    if not isinstance(options, list) or len(options) < 2:
                        raise ModelsatError(f"{source}: {where}: 'options' must be a list of at least 2 texts")
                    answer = str(it["answer"])
                    if answer not in LETTERS[: len(options)]:
                        raise ModelsatError(f"{source}: {where}: answer {answer!r} is not one of the "
                                            f"{len(options)} option letters")
                    items.append(CoreItem(str(it["item_id"]), str(it.get("benchmark", "")), str(it["question"]),
                                          [str(o) for o in options], answer, it.get("pool_share")))
                keywords = s["keywords"]
                if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
                    raise ModelsatError(f"{source}: subjects[{si}]: 'keywords' must be a list of texts")
                subjects.append(Subject(str(s["name"]), keywords, items))
            test = cls(subjects=subjects, pool=[str(m) for m in d["pool"]], source=dict(d.get("source") or {}),
                       selection=dict(d.get("selection") or {}), created=str(d.get("created", "")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelsatError(f"{source}: malformed aptitude test: missing or wrong field "
                                f"({type(exc).__name__}: {exc}); expected pool, subjects[name, keywords, "
                                "items[item_id, question, options, answer]]") from exc
        if not subjects:
            raise ModelsatError(f"{source}: the aptitude test has no subjects")
        stated = d.get("version")
        if stated is not None and stated != test.version:
            raise ModelsatError(f"{source}: content does not match its version (file says {stated}, content "
                                f"hashes to {test.version}); the file was edited or damaged — rebuild it")
        return test


def load_test(path: str | os.PathLike) -> AptitudeTest:
    """An aptitude test from its JSON file (plain, or gzip-compressed as the shipped one is); a clear error for a
    missing, malformed or edited file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":      # gzip's magic number
            import gzip
            raw = gzip.decompress(raw)
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ModelsatError(f"{p}: no such aptitude-test file; build one with `modelsat aptitude build`") from None
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelsatError(f"{p}: cannot read aptitude-test JSON ({exc})") from exc
    return AptitudeTest.from_dict(data, source=str(p))


# ---------------------------------------------------------------------------------------------- selection

def read_exclude_file(path: str | os.PathLike) -> set:
    """Items to exclude: a set of item ids and/or (benchmark, item_id) pairs.

    Accepts a JSON list (of ids, of [benchmark, id] pairs, or of {benchmark, item_id} objects), a CSV with an
    `item_id` column (and optionally `benchmark`), or a text file with one `benchmark,item_id` or `item_id` a line.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ModelsatError(f"{p}: cannot read the exclude file ({exc})") from exc
    out: set = set()
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelsatError(f"{p}: exclude file looks like JSON but is not ({exc})") from exc
        if isinstance(data, dict):
            data = data.get("items", data.get("item_ids", []))
        for i, e in enumerate(data):
            if isinstance(e, dict):
                if "item_id" not in e:
                    raise ModelsatError(f"{p}: entry {i} has no 'item_id'")
                out.add((str(e["benchmark"]), str(e["item_id"])) if e.get("benchmark") else str(e["item_id"]))
            elif isinstance(e, (list, tuple)) and len(e) == 2:
                out.add((str(e[0]), str(e[1])))
            else:
                out.add(str(e))
        return out
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]] if rows else []
    if "item_id" in header:
        ii, bi = header.index("item_id"), header.index("benchmark") if "benchmark" in header else None
        for r in rows[1:]:
            if not r:
                continue
            out.add((r[bi].strip(), r[ii].strip()) if bi is not None and r[bi].strip() else r[ii].strip())
        return out
    for r in rows:
        r = [c.strip() for c in r if c.strip()]
        if not r or r[0].startswith("#"):
            continue
        out.add((r[0], r[1]) if len(r) >= 2 else r[0])
    return out


def _is_excluded(benchmark: str, item_id: str, exclude: set) -> bool:
    return item_id in exclude or (benchmark, item_id) in exclude


def mmlu_candidates(records: pd.DataFrame) -> pd.DataFrame:
    """The records of original-MMLU items with a known MMLU subject (MMLU-Pro's ori_mmlu-* items, or records
    whose subject is one of the 57 MMLU subjects), at least 4 options and an answer letter."""
    known = set(subject_keywords())
    df = records
    if "source" in df.columns:
        from_pro = df["source"].fillna("").astype(str).str.startswith(MMLU_PREFIX)
    else:
        from_pro = pd.Series(False, index=df.index)
    mask = (from_pro | df["subject"].isin(known)) & df["subject"].isin(known)
    for col in ("choices", "answer"):
        if col not in df.columns:
            raise ModelsatError(f"records have no '{col}' column; the aptitude test needs the items' options "
                                "and answers (MMLU-Pro records carry them: --source mmlu_pro)")
    mask &= df["choices"].notna() & df["answer"].notna()
    return df[mask]


def _question_text(prompt: str, options: list[str]) -> str:
    """The question alone: the prompt without its trailing lettered options (sources render them that way)."""
    suffix = "\n".join(f"{LETTERS[i]}. {str(o).strip()}" for i, o in enumerate(options))
    if prompt.endswith("\n" + suffix):
        return prompt[: -len(suffix) - 1]
    return prompt


ITEM_RULES = ("distinguishing", "spread", "mixed", "random")
RULE_TEXT = {   # recorded in the test's selection (the default's text predates the other rules: keep it as is)
    "distinguishing": "share of pool correct strictly in (0, 1); closest to 0.5 first; subjects by mean "
                      "|share - 0.5| of their best items",
    "spread": "share of pool correct strictly in (0, 1); per subject, items at evenly spaced ranks of share; "
              "subjects by mean |share - 0.5| of those items",
    "mixed": "share of pool correct strictly in (0, 1); per subject, half the items closest to 0.5, the rest at "
             "evenly spaced ranks of share; subjects by mean |share - 0.5| of those items",
    "random": "share of pool correct strictly in (0, 1); per subject, a seeded random draw; subjects by mean "
              "|share - 0.5| of those items",
}


def build_test(records: pd.DataFrame, exclude: set | None = None, pool: list[str] | None = None,
               n_subjects: int = 50, per_subject: int = 20, seed: int = 0, min_coverage: float = 0.8,
               source: dict | None = None, rule: str = "distinguishing") -> AptitudeTest:
    """An aptitude test of `n_subjects` x `per_subject` MMLU items chosen by distinguishability on `pool`.

    `records`: a records table (e.g. `sources.load("mmlu_pro")`). `exclude`: item ids or (benchmark, item_id)
    pairs never to choose (the evaluation's test split). `pool`: the models whose answers decide (all models
    of the records by default). An item's pool share is the mean score of the pool models that answered it
    (an item needs answers from `min_coverage` of the pool); items with share 0 or 1 are never chosen; the
    rest are ranked by |share - 0.5| (ties broken by `seed`). Subjects are ranked by the mean |share - 0.5| of
    their best `per_subject` items, and the best `n_subjects` kept.

    `rule` chooses each subject's items: "distinguishing" (the above: closest to half the pool), "spread" (at
    evenly spaced ranks of share, so easy and hard items are measured too: items that half the pool gets right
    are easy for the strongest models, whose profiles then crowd near the top), "mixed" (half of each: the
    ceil(per_subject / 2) items closest to half the pool, the rest evenly spaced over the subject's others) or
    "random" (a seeded draw).
    """
    if rule not in ITEM_RULES:
        raise ModelsatError(f"item rule must be one of {', '.join(ITEM_RULES)}, got {rule!r}")
    exclude = exclude or set()
    cand = mmlu_candidates(records)
    all_models = sorted(records["model"].dropna().unique())
    pool = sorted(pool) if pool else all_models
    unknown = [m for m in pool if m not in set(all_models)]
    if unknown:
        raise ModelsatError(f"pool model(s) {', '.join(unknown)} have no records; known: {', '.join(all_models)}")
    cand = cand[cand["model"].isin(pool)]
    if len(cand) == 0:
        raise ModelsatError("no MMLU items answered by the pool (need records with an MMLU subject, options and "
                            "an answer, e.g. MMLU-Pro's ori_mmlu-* items)")
    if exclude:
        keep = ~np.array([_is_excluded(b, i, exclude) for b, i in zip(cand["benchmark"], cand["item_id"])])
        n_before = cand[["benchmark", "item_id"]].drop_duplicates().shape[0]
        cand = cand[keep]
        n_excluded = n_before - cand[["benchmark", "item_id"]].drop_duplicates().shape[0]
    else:
        n_excluded = 0
    stats = (cand.groupby(["benchmark", "item_id"])
             .agg(share=("score", "mean"), n_models=("score", "size"), subject=("subject", "first"),
                  prompt=("prompt", "first"), choices=("choices", "first"), answer=("answer", "first"))
             .reset_index())
    stats["n_options"] = stats["choices"].map(lambda c: len(json.loads(c)))
    stats = stats[(stats["n_models"] >= max(2, int(np.ceil(min_coverage * len(pool)))))
                  & (stats["share"] > 0) & (stats["share"] < 1) & (stats["n_options"] >= 4)]
    rng = np.random.default_rng(seed)
    stats = stats.assign(dist=(stats["share"] - 0.5).abs(), tie=rng.random(len(stats)))
    if rule != "distinguishing":
        # "spread": per subject, items at evenly spaced ranks of share (easy, middling and hard alike);
        # "mixed": the subject's items closest to half first, then evenly spaced ranks of share among the rest;
        # "random": a seeded random draw of the subject's items
        n_near = per_subject - per_subject // 2 if rule == "mixed" else 0
        keep = np.zeros(len(stats), dtype=bool)
        if n_near:
            stats = stats.sort_values(["subject", "dist", "tie"])
            keep[stats.groupby("subject", sort=False).cumcount().to_numpy() < n_near] = True
        stats = stats.assign(_near=keep).sort_values(["subject", "tie" if rule == "random" else "share", "tie"])
        keep = stats["_near"].to_numpy().copy()
        n_far = per_subject - n_near
        for pos in stats.groupby("subject", sort=False).indices.values():
            rest = pos[~keep[pos]]
            if len(pos) >= per_subject:
                keep[rest[(2 * np.arange(n_far) + 1) * len(rest) // (2 * n_far)]] = True
        stats = stats[keep].drop(columns="_near")
    stats = stats.sort_values(["subject", "dist", "tie"])
    best = stats.groupby("subject").head(per_subject)
    per = best.groupby("subject").agg(n=("dist", "size"), mean_dist=("dist", "mean"))
    eligible = per[per["n"] >= per_subject].sort_values(["mean_dist"]).index.tolist()
    if len(eligible) < n_subjects:
        short = per[per["n"] < per_subject]
        raise ModelsatError(f"only {len(eligible)} MMLU subjects have {per_subject} distinguishing items "
                            f"(answered by >= {min_coverage:.0%} of the {len(pool)}-model pool, share strictly "
                            f"between 0 and 1); asked for {n_subjects}. Short: "
                            + ", ".join(f"{s} ({int(n)})" for s, n in short["n"].items())
                            + ". Lower --subjects or --per-subject, or widen the pool.")
    chosen = sorted(eligible[:n_subjects])
    kw = subject_keywords()
    subjects = []
    for name in chosen:
        rows = best[best["subject"] == name].sort_values(["dist", "tie"])
        items = []
        for r in rows.itertuples(index=False):
            options = json.loads(r.choices)
            items.append(CoreItem(str(r.item_id), str(r.benchmark), _question_text(str(r.prompt), options),
                                  [str(o) for o in options], str(r.answer), round(float(r.share), 6)))
        subjects.append(Subject(name, kw[name], items))
    return AptitudeTest(
        subjects=subjects, pool=list(pool), source=dict(source or {}),
        selection={"n_subjects": n_subjects, "per_subject": per_subject, "seed": seed,
                   "min_coverage": min_coverage, "excluded_items": int(n_excluded),
                   "rule": RULE_TEXT[rule]},
        created=_dt.date.today().isoformat())


def distinguishability(test: AptitudeTest) -> pd.DataFrame:
    """Per subject: mean, min and max share of the pool answering each core item correctly."""
    rows = []
    for s in test.subjects:
        shares = [it.pool_share for it in s.items if it.pool_share is not None]
        rows.append({"subject": s.name, "items": len(s.items),
                     "mean_share": float(np.mean(shares)) if shares else float("nan"),
                     "min_share": float(np.min(shares)) if shares else float("nan"),
                     "max_share": float(np.max(shares)) if shares else float("nan")})
    return pd.DataFrame(rows)
