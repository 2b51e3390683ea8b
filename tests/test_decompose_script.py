"""experiments/decompose_modelsat.py: the stage-by-stage table and its refusals."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "decompose_modelsat.py"


def test_stage_row_gives_each_benchmarks_routed_accuracy_its_top_picks_and_the_mean_over_benchmarks():
    script = load_script("decompose_modelsat")
    zd = SimpleNamespace(models=["org/a", "org/b", "org/c"], groups=np.array(["x/arc"] * 4 + ["x/gsm"] * 2),
                         scores=np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]],
                                         dtype=float))
    # picks: a, a, b, c on arc (right 1 + 0 + 1 + 1 of 4); b, b on gsm (right 1 of 2)
    scores = np.array([[3, 1, 0], [2, 1, 0], [0, 5, 1], [0, 0, 1], [0, 2, 1], [0, 2, 1]], dtype=float)
    (row,) = script.stage_table("prior", scores, zd, lambda m: m.split("/")[-1])
    assert row == "| prior | 75.00 (a 50%, b 25%) | 50.00 (b 100%) | 62.50 |"


def test_it_refuses_a_bad_preset_or_a_zoo_list_across_families_before_loading_data():
    for args, said in ((["--preset", "no-such-preset"], "no preset"),
                       (["--zoos", "routerdc-in-domain,smaller-scale"], "one family"),
                       (["--overrides", "{not json"], "not JSON"),
                       (["--router", "somewhere", "--overrides", '{"model": {"lm_layers": 2}}'], "do not apply"),
                       (["--center-items", "100"], "needs --router"),
                       (["--prior-only", "--router", "somewhere"], "does not read a saved --router"),
                       (["--baselines", "knn,no-such-router"], "no-such-router")):
        done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and said in done.stderr, done.stderr
