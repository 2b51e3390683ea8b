"""`modelsat route`: answers from package data alone, names a model of the zoo, and fails clearly."""

import json
import os
import subprocess
import sys

import yaml

from modelsat.aptitude.profile import Profile, SubjectScore

MATH_Q = "Solve for x: 3x^2 - 12x + 9 = 0. What is the sum of the roots?"


def modelsat(*args: str, tmp_path=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MODELSAT_DATA=str(tmp_path / "no-data-here")) if tmp_path else dict(os.environ)
    return subprocess.run([sys.executable, "-c", "from modelsat.cli import main; main()", "route", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def shipped_zoo_models() -> list[str]:
    from modelsat.cli.route import load_zoo
    return [p.model for p in load_zoo(None)[1]]


def test_route_names_a_model_of_the_default_zoo_without_a_data_folder(tmp_path):
    r = modelsat(MATH_Q, "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
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
    assert "chosen:" in r.stdout


def test_route_among_a_zoo_folder_of_hand_made_profiles(tmp_path):
    strong = {s: SubjectScore(0.95, 20) for s in ("high_school_mathematics", "elementary_mathematics",
                                                   "college_mathematics", "abstract_algebra")}
    weak = {s: SubjectScore(0.2, 20) for s in strong}
    Profile("math-whiz", "v", strong | {"professional_law": SubjectScore(0.2, 20)}).save(tmp_path / "z" / "a.json")
    Profile("generalist", "v", weak | {"professional_law": SubjectScore(0.9, 20)}).save(tmp_path / "z" / "b.json")
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
