"""A zoo folder: adding profiles (validated, one test version) and listing them; nothing is retrained."""

import json

import pytest
from typer.testing import CliRunner
from test_aptitude import example_records, example_test

from modelsat.aptitude.from_records import profile_from_records
from modelsat.cli import app
from modelsat.aptitude.zoo_dir import TEST_FILE, add_profile, zoo_profiles, zoo_test_version
from modelsat.errors import ModelsatError


def _profiles(tmp_path):
    test = example_test()
    paths = [profile_from_records(example_records(), m, test, notes={"context_length": 4096}).save(tmp_path / f"{m}.json")
             for m in ("m1", "m2")]
    return test, paths


def test_added_profiles_are_listed_and_the_zoo_knows_its_test(tmp_path):
    test, paths = _profiles(tmp_path)
    zoo = tmp_path / "zoo"
    add_profile(paths[0], zoo, test=test)
    add_profile(paths[1], zoo)
    assert (zoo / TEST_FILE).exists() and zoo_test_version(zoo) == test.version
    assert [p.model for p in zoo_profiles(zoo)] == ["m1", "m2"]


def test_a_profile_of_an_unknown_test_version_is_refused(tmp_path):
    test, paths = _profiles(tmp_path)
    zoo = tmp_path / "zoo"
    add_profile(paths[0], zoo, test=test)
    data = json.loads(paths[1].read_text())
    data["test_version"] = "ffffffffffff"
    (tmp_path / "alien.json").write_text(json.dumps(data))
    with pytest.raises(ModelsatError, match="is for aptitude test ffffffffffff, but zoo"):
        add_profile(tmp_path / "alien.json", zoo)
    assert [p.model for p in zoo_profiles(zoo)] == ["m1"]


def test_a_broken_profile_or_a_duplicate_is_refused(tmp_path):
    test, paths = _profiles(tmp_path)
    zoo = tmp_path / "zoo"
    (tmp_path / "broken.json").write_text('{"model": "b", "subjects": {}}')
    with pytest.raises(ModelsatError, match="not a modelsat profile"):
        add_profile(tmp_path / "broken.json", zoo)
    add_profile(paths[0], zoo)
    with pytest.raises(ModelsatError, match="already has 'm1'"):
        add_profile(paths[0], zoo)
    add_profile(paths[0], zoo, replace=True)


def test_zoo_cli_adds_and_lists(tmp_path):
    test, paths = _profiles(tmp_path)
    test_file = test.save(tmp_path / "test.json")
    zoo = tmp_path / "zoo"
    runner = CliRunner()
    added = runner.invoke(app, ["zoo", "add", *map(str, paths), "--zoo", str(zoo), "--test", str(test_file)])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["zoo", "list", "--zoo", str(zoo)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "m1" in listed.output and "m2" in listed.output and "2 models" in listed.output
    assert "context_length=4096" in listed.output
    bad = runner.invoke(app, ["zoo", "list", "--zoo", str(tmp_path / "nowhere")])
    assert isinstance(bad.exception, ModelsatError) and "no such zoo folder" in str(bad.exception)
