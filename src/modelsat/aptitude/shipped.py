"""The aptitude test that ships in the package: the items the shipped router's profiles were taken on.

`modelsat/shipped/aptitude-test.json.gz` (gzip-compressed JSON) is the test `scripts/build_default_zoo.py` chose on MMLU-Pro training
items (the evaluation's split, seed 0, 70/10/20) and took the default zoo's profiles on; its content hash is
their `test_version`. With it in the package a user profiles a new model with nothing but the package
(`modelsat profile --endpoint URL --model NAME`), and the profile is comparable with the shipped zoo's.

Rebuild it (needs MMLU-Pro's records in the data folder) with

    python -m modelsat.aptitude.shipped [--data-dir DIR]

which writes the same items and checks that their hash is still the shipped profiles' test version.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from importlib import resources
from pathlib import Path

from modelsat.aptitude.core_items import AptitudeTest, build_test, load_test
from modelsat.aptitude.profile import Profile
from modelsat.errors import ModelsatError

TEST_FILE = "aptitude-test.json.gz"     # gzip-compressed JSON: a quarter of the size
MMLU_PRO = {
    "dataset": "MMLU-Pro (Wang et al., NeurIPS 2024 Datasets and Benchmarks), items of original-MMLU origin",
    "url": "https://github.com/TIGER-AI-Lab/MMLU-Pro",
    "commit": "f418b116db00b065c2aea046518d8fcf74d39872",
    "files": "eval_results/model_outputs_*_5shots.zip (questions, options, answers; the pool's per-item results)",
    "license": "Apache-2.0 (TIGER-AI-Lab/MMLU-Pro); the questions come from MMLU (Hendrycks et al., MIT licence)",
}
BUILD_SOURCE = {"benchmark": "mmlu_pro", "records": "mmlu_pro (shared/data), training split",
                "split": "train items only (seed 0, 70/10/20)"}


def shipped_test_path() -> Path:
    """The shipped aptitude-test file inside the installed package."""
    return Path(str(resources.files("modelsat") / "shipped" / TEST_FILE))


def shipped_test() -> AptitudeTest:
    """The aptitude test the shipped router's profiles were taken on."""
    return load_test(shipped_test_path())


def check_profile_version(profile: Profile, test_version: str, where: str = "") -> None:
    """Refuses a profile taken on another aptitude test, saying which and how to take the right one."""
    if profile.test_version == test_version:
        return
    label = f"{where}: " if where else ""
    raise ModelsatError(f"{label}profile of {profile.model!r} was taken on aptitude test {profile.test_version}, "
                        f"but this router reads profiles taken on test {test_version} (the shipped test, "
                        "`modelsat aptitude show`); profile the model again on it: modelsat profile --endpoint URL "
                        f"--model {profile.model} --out {profile.model}.json")


def build_shipped_test(data: str | None = None) -> AptitudeTest:
    """The shipped test rebuilt from MMLU-Pro's records: scripts/build_default_zoo.py's choice of core items on
    the evaluation's training items (every validation and test item excluded), with MMLU-Pro's source and
    licence in `source` (outside the content hash)."""
    from modelsat import sources
    from modelsat.evaluate.splits import apply_splits, assign_splits
    records = sources.load("mmlu_pro", data=data).drop(columns=["response"])
    split = apply_splits(records, assign_splits(records, seed=0))["eval_split"]
    held_out = set(records.loc[split != "train", "item_id"].unique())
    test = build_test(records[split == "train"], exclude=held_out, source=dict(BUILD_SOURCE))
    test.source.update(MMLU_PRO)
    return test


def shipped_profile_version() -> str:
    """The `test_version` of the shipped default zoo's profiles (one version, or an error)."""
    folder = Path(str(resources.files("modelsat") / "shipped" / "default_zoo"))
    versions = {Profile.load(p).test_version for p in folder.glob("*.json")}
    if len(versions) != 1:
        raise ModelsatError(f"{folder}: expected profiles of one aptitude-test version, found {sorted(versions)}")
    return versions.pop()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Rebuild the shipped aptitude test from MMLU-Pro's records.")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=None, help="default: the package's shipped file")
    args = ap.parse_args(argv)
    test = build_shipped_test(args.data_dir)
    want = shipped_profile_version()
    if test.version != want:
        raise SystemExit(f"rebuilt test hashes to {test.version}, but the shipped profiles were taken on {want}: "
                         "the records or the selection changed; nothing written")
    test.created = _dt.date.today().isoformat()
    out = test.save(args.out or shipped_test_path())
    print(f"wrote {out}: test {test.version}, {len(test.subjects)} subjects, {len(test.items())} items")


if __name__ == "__main__":
    main()
