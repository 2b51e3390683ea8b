"""Every config in examples/ runs as it is in a fresh clone: serve configs validate and start on loopback,
zoo files route."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serve_process import serving

ROOT = Path(__file__).resolve().parents[1]
MODELSAT = Path(sys.executable).with_name("modelsat")
SERVE_CONFIGS = sorted((ROOT / "examples").glob("serve-*.yaml"))
ZOOS = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p not in SERVE_CONFIGS)
KEY = {"MODELSAT_CLIENT_KEY": "example-key-123"}


def modelsat(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, COLUMNS="200", **(env or {})))


def test_examples_holds_a_serve_config_and_a_zoo():
    assert SERVE_CONFIGS and ZOOS


@pytest.mark.parametrize("config", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_example_validates(config):
    r = modelsat("validate", str(config.relative_to(ROOT)), env=KEY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok ")


@pytest.mark.parametrize("config", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_example_starts_and_lists_its_models(config):
    import yaml
    names = {m["name"] for m in yaml.safe_load(config.read_text())["models"]}
    with serving(str(config), env=KEY) as url:
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY['MODELSAT_CLIENT_KEY']}"})
    assert r.status_code == 200
    assert names <= {m["id"] for m in r.json()["data"]}


@pytest.mark.parametrize("zoo", ZOOS, ids=lambda p: p.name)
def test_zoo_example_routes(zoo):
    import yaml
    names = {m["name"] for m in yaml.safe_load(zoo.read_text())["models"]}
    r = modelsat("route", "--zoo", str(zoo.relative_to(ROOT)), "--router", "profile-prior", "--json",
                 "Prove that the square root of 2 is irrational.")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["chosen"] in names and set(out["scores"]) == names
