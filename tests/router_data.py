"""A small real-text routing dataset the router tests write themselves: 4 models × 60 items, 3 subjects.

Each model is strong on some subjects and weak on others, with exact per-subject hit counts placed by a
seeded generator, so the best model per subject, the best single model and the oracle are known by
construction. Responses look different when right and when wrong, so a response reranker has a signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelsat.aptitude.profile import Profile, SubjectScore

SUBJECTS = ["math", "history", "biology"]
# share of a subject's 20 items each model answers correctly
SKILL = {
    "math-whiz": {"math": 0.95, "history": 0.20, "biology": 0.40},
    "historian": {"math": 0.20, "history": 0.95, "biology": 0.40},
    "biologist": {"math": 0.30, "history": 0.30, "biology": 0.90},
    "generalist": {"math": 0.65, "history": 0.65, "biology": 0.65},
}
MODELS = list(SKILL)
NEWCOMER = "newcomer"     # never in training; known only by its profile


def prompts_of(subject: str) -> list[str]:
    """20 short instructions of one subject, e.g. 'What is 7 plus 12?'."""
    if subject == "math":
        return [f"What is {a} plus {b}?" for a, b in zip(range(3, 23), range(40, 20, -1))]
    if subject == "history":
        return [f"Who ruled {c} in the {n} century?" for c in ("France", "Egypt", "China", "Persia", "Spain")
                for n in ("tenth", "twelfth", "fifteenth", "eighteenth")]
    return [f"What does the {o} of a {a} do?" for o in ("liver", "heart", "kidney", "lung", "spleen")
            for a in ("frog", "horse", "shark", "sparrow")]


def records(models=MODELS, seed: int = 0) -> pd.DataFrame:
    """Records (model, benchmark, item_id, prompt, subject, category, score, response, ...) for `models`."""
    rng = np.random.default_rng(seed)
    rows = []
    for subject in SUBJECTS:
        prompts = prompts_of(subject)
        for model in models:
            skill = SKILL.get(model, {s: 0.5 for s in SUBJECTS})[subject]
            right = set(rng.permutation(len(prompts))[:round(skill * len(prompts))].tolist())
            for i, prompt in enumerate(prompts):
                ok = i in right
                response = (f"The answer is option {'ABCD'[i % 4]}, checked step by step." if ok
                            else "Hmm, I am not sure; maybe it is something else entirely?")
                rows.append({"model": model, "benchmark": "toy", "item_id": f"{subject}-{i}", "prompt": prompt,
                             "subject": subject, "category": subject, "score": float(ok), "cost": None,
                             "response": response, "split": "train"})
    return pd.DataFrame(rows)


def profile(model: str, recs: pd.DataFrame | None = None, skill: dict | None = None) -> Profile:
    """The model's profile: per-subject accuracy from its records, or from `skill` when given."""
    if skill is None:
        mine = recs[recs["model"] == model]
        skill = mine.groupby("subject")["score"].mean().to_dict()
    return Profile(model=model, test_version="toy-test",
                   subjects={s: SubjectScore(float(skill[s]), 20) for s in SUBJECTS})


def profiles(recs: pd.DataFrame) -> list[Profile]:
    return [profile(m, recs) for m in sorted(recs["model"].unique())]


def newcomer_profile(level: float = 0.8) -> Profile:
    return profile(NEWCOMER, skill={s: level for s in SUBJECTS})


def split(recs: pd.DataFrame, test_every: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) records: every `test_every`-th item of each subject is a test item."""
    index = recs["item_id"].str.split("-").str[1].astype(int)
    test = index % test_every == 0
    return recs[~test].reset_index(drop=True), recs[test].reset_index(drop=True)
