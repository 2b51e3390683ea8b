"""scripts/check_figures.py: the recorded Model-SAT figures, and when a rerun counts as moved."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_figures.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(prior_mean, seed_means):
    seeds = [{"seed": k, "mean": m, "delta": 0.0} for k, m in enumerate(seed_means)]
    import statistics
    return {"zoos": [{"zoo": {"name": "middle-mixed"}, "rows": [
        {"method": "modelsat-prior", "status": "ok", "mean": prior_mean},
        {"method": "modelsat", "status": "ok", "mean": sum(seed_means) / len(seed_means), "seeds": seeds,
         "seed_spread": {"n": len(seeds), "sd": statistics.stdev(seed_means)}},
        {"method": "knn", "status": "ok", "mean": 0.5}]}]}


def test_rows_take_model_sat_rows_with_a_tolerance_by_how_they_were_trained(check):
    rows = check.rows_of(_results(0.45, [0.40, 0.44, 0.48]))["middle-mixed"]
    assert set(rows) == {"modelsat-prior", "modelsat"}                  # not the baselines
    assert rows["modelsat-prior"] == {"mean": 45.0, "tolerance": check.FLOAT_TOLERANCE, "seeds": []}
    assert rows["modelsat"]["mean"] == 44.0 and rows["modelsat"]["seeds"] == [40.0, 44.0, 48.0]
    assert rows["modelsat"]["tolerance"] == 8.0                          # twice the seeds' sd (4 points)


def test_a_mean_beyond_its_tolerance_is_reported_moved(check):
    recorded = check.rows_of(_results(0.45, [0.44, 0.44, 0.45]))
    same = check.compare(recorded, check.rows_of(_results(0.452, [0.44, 0.445, 0.45])))
    assert all(line["ok"] for line in same)
    moved = check.compare(recorded, check.rows_of(_results(0.41, [0.44, 0.44, 0.45])))
    assert [line["method"] for line in moved if not line["ok"]] == ["modelsat-prior"]
    gone = check.compare(recorded, {"middle-mixed": {}})
    assert not any(line["ok"] for line in gone)                          # a row that vanished fails too
    prior_only = check.compare(recorded, {"middle-mixed": {"modelsat-prior": {"mean": 45.0}}}, skip=("modelsat",))
    assert [(line["method"], line["ok"]) for line in prior_only] == [("modelsat-prior", True)]   # LM not run
