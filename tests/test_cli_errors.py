"""A user's mistake through the real `modelsat` entry point: one `error:` line that names what and where, a
non-zero exit, never a traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelsat.aptitude.profile import Profile, SubjectScore

MODELSAT = Path(sys.executable).with_name("modelsat")


def modelsat(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=dict(os.environ, COLUMNS="200"))


def assert_one_line_error(r: subprocess.CompletedProcess, *names: str) -> None:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])


def a_profile(folder: Path, name: str = "m1", **notes) -> Path:
    return Profile(name, "v1", {"anatomy": SubjectScore(0.6, 20), "virology": SubjectScore(0.4, 20)},
                   notes=notes).save(folder / f"{name}.json")


def test_a_missing_zoo_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    assert_one_line_error(modelsat("route", "hi", "--router", "profile-prior", "--zoo", str(missing)), str(missing))


def test_a_zoo_yaml_that_is_not_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "zoo.yaml"
    bad.write_text("models: [a, b\n")
    assert_one_line_error(modelsat("route", "hi", "--router", "profile-prior", "--zoo", str(bad)),
                          str(bad), "line 2")


def test_a_serve_config_that_is_not_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "serve.yaml"
    bad.write_text("models: [a, b\n")
    assert_one_line_error(modelsat("validate", str(bad)), str(bad), "line 2")


def test_a_truncated_profile_is_named_and_called_truncated(tmp_path):
    path = a_profile(tmp_path)
    path.write_text(path.read_text()[:120])
    r = modelsat("route", "hi", "--router", "profile-prior", "--zoo", str(path))
    assert_one_line_error(r, str(path), "truncated", "modelsat profile")


def test_a_negative_price_in_a_zoo_is_refused(tmp_path):
    a_profile(tmp_path)
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(
        {"name": "z", "models": [{"name": "m1", "profile": "m1.json", "price": -1}]}))
    assert_one_line_error(modelsat("route", "hi", "--router", "profile-prior", "--zoo", str(tmp_path / "zoo.yaml")),
                          "models[0] (m1) price", "cannot be negative")


def test_a_price_that_is_not_a_number_is_refused(tmp_path):
    a_profile(tmp_path)
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(
        {"name": "z", "models": [{"name": "m1", "profile": "m1.json", "price": {"input": "cheap", "output": 1}}]}))
    assert_one_line_error(modelsat("route", "hi", "--router", "profile-prior", "--zoo", str(tmp_path / "zoo.yaml")),
                          "models[0] (m1) price", "'cheap', not a number")


def test_a_profile_whose_price_note_is_not_a_number_is_refused(tmp_path):
    path = a_profile(tmp_path, price_per_mtok="cheap")
    assert_one_line_error(modelsat("zoo", "add", str(path), "--zoo", str(tmp_path / "zoo")),
                          str(path), "price_per_mtok", "not a number")


@pytest.mark.parametrize("value", ["-3", "abc"])
def test_a_bad_price_option_is_a_usage_error(value):
    r = modelsat("profile", "--price-in", value)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--price-in" in r.stderr


def test_a_missing_aptitude_test_file_is_named(tmp_path):
    missing = tmp_path / "test.json"
    assert_one_line_error(modelsat("aptitude", "stats", str(missing)), str(missing), "modelsat aptitude build")


def test_a_missing_records_file_is_named(tmp_path):
    missing = tmp_path / "records.csv"
    assert_one_line_error(modelsat("data", "validate", str(missing)), str(missing))


def test_a_profile_that_is_not_a_profile_says_what_it_expected(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"model": "m"}))
    assert_one_line_error(modelsat("zoo", "add", str(path), "--zoo", str(tmp_path / "zoo")), str(path),
                          "expected keys")
