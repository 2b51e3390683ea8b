"""A zoo folder made by `modelsat zoo init`: each model's profile, endpoint and price in one folder, changed by
`zoo add|remove`, listed by `zoo list`; bad input is one `error:` line and a non-zero exit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelsat.aptitude.profile import Profile, SubjectScore
from modelsat.aptitude.shipped import shipped_test
from modelsat.aptitude.zoo_dir import add_model, init_zoo, parse_price, read_index, remove_model
from modelsat.errors import ModelsatError

MODELSAT = Path(sys.executable).with_name("modelsat")
URL = "http://127.0.0.1:8001/v1"


def modelsat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200"))


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def a_profile(folder: Path, name: str, version: str | None = None) -> Path:
    version = version or shipped_test().version
    return Profile(name, version, {"anatomy": SubjectScore(0.6, 20), "virology": SubjectScore(0.4, 20)}).save(
        folder / f"{name}-taken.json")


def test_init_add_remove_keep_profile_endpoint_and_price_in_one_folder(tmp_path):
    zoo = tmp_path / "zoo"
    init_zoo(zoo)
    add_model(zoo, a_profile(tmp_path, "m1"), URL, {"input": 0.1, "output": 0.2}, api_key_env="M1_KEY")
    add_model(zoo, a_profile(tmp_path, "m2"), "http://127.0.0.1:8002/v1", {"input": 0.0, "output": 0.0})
    remove_model(zoo, "m2")
    index = read_index(zoo)
    assert index["test_version"] == shipped_test().version
    assert index["models"] == [{"name": "m1", "profile": "m1.json", "base_url": URL, "api_key_env": "M1_KEY",
                                "price": {"input": 0.1, "output": 0.2}}]
    assert Profile.load(zoo / "m1.json").model == "m1" and not (zoo / "m2.json").exists()


def test_a_profile_of_another_test_version_is_refused_with_how_to_rerun(tmp_path):
    init_zoo(tmp_path / "zoo")
    line = one_line_error(modelsat("zoo", "add", str(tmp_path / "zoo"), str(a_profile(tmp_path, "m", "ffffffffffff")),
                                   "--base-url", URL, "--price", "1"))
    assert "ffffffffffff" in line and shipped_test().version in line and "modelsat profile --endpoint" in line


@pytest.mark.parametrize("price", ["-0.5", "abc", "0.1,x", "1,2,3"])
def test_a_negative_or_non_numeric_price_is_refused(tmp_path, price):
    init_zoo(tmp_path / "zoo")
    line = one_line_error(modelsat("zoo", "add", str(tmp_path / "zoo"), str(a_profile(tmp_path, "m")),
                                   "--base-url", URL, "--price", price))
    assert "--price" in line
    assert read_index(tmp_path / "zoo")["models"] == []


def test_a_missing_or_truncated_profile_is_named(tmp_path):
    init_zoo(tmp_path / "zoo")
    truncated = tmp_path / "cut.json"
    truncated.write_text(a_profile(tmp_path, "m").read_text()[:60])
    for path in (tmp_path / "nowhere.json", truncated):
        line = one_line_error(modelsat("zoo", "add", str(tmp_path / "zoo"), str(path), "--base-url", URL,
                                       "--price", "1"))
        assert str(path) in line


def test_a_listed_zoo_with_a_missing_profile_names_it_and_fails(tmp_path):
    zoo = tmp_path / "zoo"
    init_zoo(zoo)
    add_model(zoo, a_profile(tmp_path, "m1"), URL, {"input": 1.0, "output": 1.0})
    (zoo / "m1.json").unlink()
    r = modelsat("zoo", "list", str(zoo))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "m1" in r.stderr and "no such profile file" in r.stderr


def test_cli_round_trip_lists_endpoint_price_and_key_variable_never_a_key(tmp_path):
    zoo = tmp_path / "zoo"
    assert modelsat("zoo", "init", str(zoo)).returncode == 0
    added = modelsat("zoo", "add", str(zoo), str(a_profile(tmp_path, "m1")), "--base-url", URL, "--price", "0.15,0.6",
                     "--api-key-env", "M1_KEY", "--upstream-model", "org/m1")
    assert added.returncode == 0, added.stderr
    listed = modelsat("zoo", "list", str(zoo))
    assert listed.returncode == 0 and "m1" in listed.stdout and URL in listed.stdout and "$M1_KEY" in listed.stdout
    assert modelsat("zoo", "remove", str(zoo), "m1").returncode == 0
    assert read_index(zoo)["models"] == []


def test_a_key_given_instead_of_a_variable_name_is_refused(tmp_path):
    init_zoo(tmp_path / "zoo")
    with pytest.raises(ModelsatError, match="NAME of an environment variable"):
        add_model(tmp_path / "zoo", a_profile(tmp_path, "m"), URL, None, api_key_env="sk-live-1234")


def test_the_older_form_with_zoo_option_still_copies_and_joins_the_index(tmp_path):
    zoo = tmp_path / "zoo"
    init_zoo(zoo)
    r = modelsat("zoo", "add", str(a_profile(tmp_path, "m1")), "--zoo", str(zoo))
    assert r.returncode == 0, r.stderr
    assert [m["name"] for m in read_index(zoo)["models"]] == ["m1"]


def test_add_to_a_folder_that_is_not_a_zoo_says_to_init_it(tmp_path):
    line = one_line_error(modelsat("zoo", "add", str(tmp_path / "zoo"), str(a_profile(tmp_path, "m")),
                                   "--base-url", URL, "--price", "1"))
    assert f"modelsat zoo init {tmp_path / 'zoo'}" in line


def test_price_parses_one_figure_or_input_and_output():
    assert parse_price("0.2") == {"input": 0.2, "output": 0.2}
    assert parse_price("0.15, 0.6") == {"input": 0.15, "output": 0.6}
