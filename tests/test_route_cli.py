"""`modelsat route`: answers from package data alone, names a model of the zoo, and fails clearly."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.aptitude.shipped import shipped_test

MATH_Q = "Solve for x: 3x^2 - 12x + 9 = 0. What is the sum of the roots?"


def modelsat(*args: str, tmp_path=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MODELSAT_DATA=str(tmp_path / "no-data-here")) if tmp_path else dict(os.environ)
    return subprocess.run([sys.executable, "-c", "from modelsat.cli import main; main()", "route", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def shipped_zoo_models() -> list[str]:
    from modelsat.cli.route import load_zoo
    return [p.model for p in load_zoo(None)[1]]


@pytest.fixture(scope="module")
def shipped_json(tmp_path_factory):
    """`modelsat route MATH_Q --json` with the shipped router and zoo and no data folder (run once)."""
    r = modelsat(MATH_Q, "--json", tmp_path=tmp_path_factory.mktemp("route"))
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def shipped_table(tmp_path_factory):
    """`modelsat route MATH_Q` as a person reads it, shipped router and zoo (run once)."""
    r = modelsat(MATH_Q, tmp_path=tmp_path_factory.mktemp("route"))
    assert r.returncode == 0, r.stderr
    return r


def test_route_names_a_model_of_the_default_zoo_without_a_data_folder(shipped_json):
    out = json.loads(shipped_json.stdout)
    zoo = shipped_zoo_models()
    assert len(zoo) >= 2
    assert out["chosen"] in zoo
    assert set(out["scores"]) == set(zoo)
    assert out["chosen"] == max(out["scores"], key=out["scores"].get)


def test_route_table_lists_every_candidate(tmp_path):
    r = modelsat(MATH_Q, "--router", "profile-prior", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    for model in shipped_zoo_models():
        assert model in r.stdout


def test_route_prints_the_chosen_model_first(shipped_table, shipped_json):
    chosen = json.loads(shipped_json.stdout)["chosen"]
    assert shipped_table.stdout.splitlines()[0].strip() == chosen
    arrow_rows = [line for line in shipped_table.stdout.splitlines() if line.lstrip().startswith("→")]
    assert len(arrow_rows) == 1 and chosen in arrow_rows[0]


def test_route_says_what_the_shipped_routers_number_is(shipped_table):
    """The shipped default router (the prior alone, docs/experiments/figures-that-hold.md) carries a calibrator:
    its number is the calibrated probability of a good answer, shown as a percentage."""
    assert "P(good answer)" in shipped_table.stdout
    assert "calibrated on held-out items" in shipped_table.stdout
    assert "%" in shipped_table.stdout.splitlines()[3]


def test_route_shows_the_profile_priors_number_as_an_expected_accuracy(tmp_path):
    r = modelsat(MATH_Q, "--router", "profile-prior", tmp_path=tmp_path)
    assert "expected accuracy" in r.stdout and "not a calibrated probability" in r.stdout
    assert "%" in r.stdout.splitlines()[3]     # first candidate row: a percentage, not a raw score


def test_route_prints_no_third_party_progress_bars_or_warnings(shipped_table):
    assert shipped_table.stderr.strip() == ""
    for noise in ("it/s", "Loading weights", "Warning", "%|"):
        assert noise not in shipped_table.stdout


def test_route_reports_the_warm_routing_time_apart_from_start_up(shipped_table, shipped_json):
    last = shipped_table.stdout.strip().splitlines()[-1]
    assert "ms (warm)" in last and "start-up" in last
    out = json.loads(shipped_json.stdout)
    assert out["seconds"] > 0 and out["startup_seconds"] > 0 and out["first_call_seconds"] > 0


def test_route_json_lists_candidates_best_first_with_what_the_number_is(shipped_json):
    out = json.loads(shipped_json.stdout)
    assert out["score_meaning"]["kind"] == "probability"      # the shipped default is calibrated
    scores = [c["score"] for c in out["candidates"]]
    assert scores == sorted(scores, reverse=True) and out["candidates"][0]["model"] == out["chosen"]


def test_route_refuses_a_profile_of_another_test_version_and_says_how_to_rerun(tmp_path):
    Profile("old-model", "0123456789ab", {"anatomy": SubjectScore(0.5, 20)}).save(tmp_path / "z" / "a.json")
    r = modelsat(MATH_Q, "--zoo", str(tmp_path / "z"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "0123456789ab" in r.stderr and shipped_test().version in r.stderr
    assert "modelsat profile --endpoint URL --model old-model" in r.stderr


def test_route_log_level_takes_only_known_levels():
    r = modelsat(MATH_Q, "--log-level", "chatty")
    assert r.returncode == 2 and "--log-level" in r.stderr and "Traceback" not in r.stderr


def test_route_among_a_zoo_folder_of_hand_made_profiles(tmp_path):
    version = shipped_test().version    # the shipped router reads profiles taken on the shipped test
    strong = {s: SubjectScore(0.95, 20) for s in ("high_school_mathematics", "elementary_mathematics",
                                                   "college_mathematics", "abstract_algebra")}
    weak = {s: SubjectScore(0.2, 20) for s in strong}
    Profile("math-whiz", version, strong | {"professional_law": SubjectScore(0.2, 20)}).save(tmp_path / "z" / "a.json")
    Profile("generalist", version, weak | {"professional_law": SubjectScore(0.9, 20)}).save(tmp_path / "z" / "b.json")
    r = modelsat(MATH_Q, "--zoo", str(tmp_path / "z"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["chosen"] == "math-whiz"


def test_empty_instruction_is_a_clear_error():
    r = modelsat("   ")
    assert r.returncode == 2
    assert "instruction is empty" in r.stderr


def test_unknown_router_folder_is_a_clear_error(tmp_path):
    r = modelsat(MATH_Q, "--router", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert "--router" in r.stderr and "no such folder" in r.stderr


def test_zoo_without_profiles_is_a_clear_error(tmp_path):
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump({"name": "empty", "models": ["m1", "m2"]}))
    r = modelsat(MATH_Q, "--zoo", str(tmp_path / "zoo.yaml"))
    assert r.returncode == 2
    assert "none of its 2 models has a profile" in r.stderr
