"""Item splits: every model's record of an item lands in the same split; seeded; source splits kept."""

import pandas as pd
import pytest

from modelsat.errors import ModelsatError
from modelsat.evaluate.splits import apply_splits, assign_splits, read_splits, write_splits


def _records(n_items=100, models=("a", "b"), split=None, bench="b1"):
    rows = [{"model": m, "benchmark": bench, "item_id": str(i), "score": 1.0, **({"split": split(i)} if split else {})}
            for m in models for i in range(n_items)]
    return pd.DataFrame(rows)


def test_items_without_a_source_split_are_split_70_10_20_and_seeded():
    s = assign_splits(_records(), seed=3)
    assert s["split"].value_counts().to_dict() == {"train": 70, "test": 20, "validation": 10}
    assert s.equals(assign_splits(_records(), seed=3))
    assert not s.equals(assign_splits(_records(), seed=4))


def test_every_model_of_an_item_gets_the_same_split():
    rec = apply_splits(_records(), assign_splits(_records(), seed=0))
    assert (rec.groupby("item_id")["eval_split"].nunique() == 1).all()


def test_a_source_split_is_kept_and_validation_comes_from_its_training_items():
    rec = pd.concat([_records(split=lambda i: "train" if i < 80 else "test"),
                     _records(n_items=10, split=lambda i: "test", bench="ood")])
    s = assign_splits(rec, seed=0).set_index(["benchmark", "item_id"])["split"]
    assert (s.loc["b1"].loc[[str(i) for i in range(80, 100)]] == "test").all()
    assert (s.loc["b1"] == "validation").sum() == round(80 * 0.1 / 0.8)
    assert (s.loc["ood"] == "test").all()


def test_a_source_whose_items_are_all_test_is_split_by_item():
    s = assign_splits(_records(split=lambda i: "test"), seed=0)
    assert (s["split"] == "train").sum() == 70


def test_excluded_items_never_land_in_test():
    excl = {("b1", str(i)) for i in range(100)}
    s = assign_splits(_records(), seed=0, exclude_from_test=excl)
    assert (s["split"] != "test").all()


def test_split_file_round_trips_and_bad_rows_are_named(tmp_path):
    s = assign_splits(_records(), seed=0)
    p = write_splits(s, tmp_path / "splits.csv")
    assert read_splits(p).equals(s.astype(str))
    p.write_text("benchmark,item_id,split\nb1,1,train\nb1,2,dev\n")
    with pytest.raises(ModelsatError, match="row 3, field 'split': 'dev'"):
        read_splits(p)


def test_train_command_records_follow_the_split_seed_and_hold_no_test_item_of_that_seed():
    """`modelsat train --split-seed N` trains on the benchmark's seed-N split (real MMLU-Pro records)."""
    from modelsat import sources as src
    from modelsat.cli.train import training_records
    records = src.load("mmlu_pro")
    for seed in (0, 1):
        train, validation = training_records(["mmlu_pro"], None, seed)
        splits = assign_splits(records, seed=seed)
        test = set(splits.loc[splits["split"] == "test", "item_id"])
        assert set(train["item_id"]) == set(splits.loc[splits["split"] == "train", "item_id"])
        assert not test & (set(train["item_id"]) | set(validation["item_id"]))
    assert set(training_records(["mmlu_pro"], None, 0)[0]["item_id"]) != set(train["item_id"])
