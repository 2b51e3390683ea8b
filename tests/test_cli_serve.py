"""`modelsat serve ZOO.yaml` and `modelsat validate ZOO.yaml` through the real entry point."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from serve_process import serving

MODELSAT = Path(sys.executable).with_name("modelsat")
KEY = {"MODELSAT_CLIENT_KEY": "test-key-123"}


def modelsat(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200", **(env or {})))


def pass_through_config(folder: Path, **extra) -> Path:
    """A zoo of two loopback upstreams (not running) with no router: pass-through only."""
    cfg = {"models": [{"name": "a", "base_url": "http://127.0.0.1:9/v1"},
                      {"name": "b", "base_url": "http://127.0.0.1:9/v1"}],
           "auth": {"client_keys_env": ["MODELSAT_CLIENT_KEY"]}, **extra}
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_serve_takes_the_zoo_file_as_an_argument_and_lists_its_models(tmp_path):
    with serving(str(pass_through_config(tmp_path)), env=KEY) as url:
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY['MODELSAT_CLIENT_KEY']}"})
    assert r.status_code == 200
    assert {"a", "b"} <= {m["id"] for m in r.json()["data"]}


def test_serve_still_takes_the_zoo_file_as_config_option(tmp_path):
    with serving("--config", str(pass_through_config(tmp_path)), env=KEY) as url:
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY['MODELSAT_CLIENT_KEY']}"})
    assert r.status_code == 200


def test_serve_without_a_zoo_says_what_to_type():
    r = modelsat("serve")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "modelsat serve ZOO.yaml" in r.stderr


def test_serve_refuses_every_missing_profile_before_listening(tmp_path):
    cfg = {"models": [{"name": n, "base_url": "http://127.0.0.1:9/v1", "profile": f"{n}.json"} for n in "abc"],
           "auth": {"client_keys_env": ["MODELSAT_CLIENT_KEY"]}}
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(cfg))
    r = modelsat("serve", str(tmp_path / "zoo.yaml"), env=KEY)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "3 profile file(s) missing" in r.stderr and all(f"{n}.json" in r.stderr for n in "abc")


def test_validate_names_every_missing_profile(tmp_path):
    cfg = {"models": [{"name": n, "base_url": "http://127.0.0.1:9/v1", "profile": f"{n}.json"} for n in "abc"],
           "auth": {"client_keys_env": ["MODELSAT_CLIENT_KEY"]}}
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(cfg))
    r = modelsat("validate", str(tmp_path / "zoo.yaml"), env=KEY)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for n in "abc":
        assert f"profile file missing for models[{'abc'.index(n)}] ({n})" in r.stdout


def test_serve_of_a_config_with_a_bad_field_names_the_field(tmp_path):
    path = pass_through_config(tmp_path, server={"port": "eighty"})
    r = modelsat("serve", str(path), env=KEY)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "server.port" in r.stderr


def test_serve_of_a_zoo_folders_index_file_serves_that_zoo_folder(tmp_path):
    assert modelsat("zoo", "init", str(tmp_path / "z")).returncode == 0
    by_file, by_folder = modelsat("serve", str(tmp_path / "z" / "zoo.yaml")), modelsat("serve", str(tmp_path / "z"))
    assert by_file.returncode == by_folder.returncode == 2
    assert "no model yet; add one: modelsat zoo add" in by_file.stderr + by_file.stdout
    assert (by_file.stderr + by_file.stdout).replace("zoo.yaml", "") == (by_folder.stderr + by_folder.stdout)
    assert "Extra inputs" not in by_file.stderr + by_file.stdout
    by_option = modelsat("serve", "--config", str(tmp_path / "z" / "zoo.yaml"))
    assert by_option.returncode == 2 and by_option.stderr + by_option.stdout == by_folder.stderr + by_folder.stdout


def test_validate_checks_a_zoo_folder_and_its_index_file(tmp_path):
    from modelsat.cli.route import shipped_path
    zoo = tmp_path / "z"
    assert modelsat("zoo", "init", str(zoo)).returncode == 0
    empty = modelsat("validate", str(zoo))
    assert empty.returncode == 2 and "no model yet" in empty.stderr + empty.stdout
    profile = sorted(shipped_path("default_zoo").glob("*.json"))[0]
    assert modelsat("zoo", "add", str(zoo), str(profile), "--base-url", "http://127.0.0.1:9/v1",
                    "--price", "0.1,0.2").returncode == 0
    for target in (zoo, zoo / "zoo.yaml"):
        no_key = modelsat("validate", str(target), env={"MODELSAT_CLIENT_KEY": ""})
        assert no_key.returncode == 2 and "MODELSAT_CLIENT_KEY is not set" in no_key.stdout + no_key.stderr
        ok = modelsat("validate", str(target), env=KEY)
        assert ok.returncode == 0 and "1 models (1 routable)" in ok.stdout, ok.stdout + ok.stderr
        assert KEY["MODELSAT_CLIENT_KEY"] not in ok.stdout + ok.stderr
