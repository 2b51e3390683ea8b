"""The wheel installs outside the checkout and routes from package data alone: no checkout on the path, no
data folder, no network (dependencies come from the current environment's site-packages). It profiles a real
model (SmolLM2 behind the package's local server on loopback) from there, and the sdist builds under 25 MB.
About 40 s in all, so it runs in the default suite (and so in CI)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel path, a folder outside the checkout to run in): the wheel built from a copy of the
    sources and installed with --no-index --no-deps into a fresh venv that sees this one's packages."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run = dict(capture_output=True, text=True, timeout=600)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp / "dist"), str(src)], **run)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next((tmp / "dist").glob("modelsat-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, **run)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, **run).stdout.strip())
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                        "--no-index", "--no-deps", str(wheel)], **run)
    assert r.returncode == 0, r.stderr[-3000:]
    # the dependencies (torch, transformers, ...) from this environment; a plain path line, so this
    # environment's editable-install hook (a .pth of its own) is not run and the checkout stays off the path
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    return venv / "bin", wheel, work


def in_venv(bin_dir: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(MODELSAT_DATA=str(work / "no-data"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="200")
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, timeout=600,
                          cwd=work, env=env)


def test_the_wheel_is_under_25_mb_and_carries_the_aptitude_test(installed):
    _, wheel, _ = installed
    assert wheel.stat().st_size < 25 * 2 ** 20
    names = zipfile.ZipFile(wheel).namelist()
    assert "modelsat/shipped/aptitude-test.json.gz" in names and "modelsat/shipped/aptitude-test.README.md" in names
    assert any(n.startswith("modelsat/shipped/modelsat-cpu-default/") for n in names)


def test_the_installed_package_is_not_the_checkout(installed):
    bin_dir, _, work = installed
    r = in_venv(bin_dir, work, "python", "-c", "import modelsat; print(modelsat.__file__)")
    assert r.returncode == 0, r.stderr
    assert str(ROOT) not in r.stdout and str(bin_dir.parent) in r.stdout


def test_the_installed_package_shows_its_aptitude_test(installed):
    bin_dir, _, work = installed
    r = in_venv(bin_dir, work, "modelsat", "aptitude", "show")
    assert r.returncode == 0, r.stderr
    assert "d6f5e5aea41c" in r.stdout and str(bin_dir.parent) in r.stdout


def test_the_installed_package_routes_with_the_shipped_router(installed):
    bin_dir, _, work = installed
    r = in_venv(bin_dir, work, "modelsat", "route", "--json", "Solve for x: 3x^2 - 12x + 9 = 0.")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["router"].startswith("shipped router") and len(out["scores"]) == 7


def test_the_installed_package_profiles_a_model_behind_a_loopback_server(installed, tmp_path):
    import torch
    from modelsat.aptitude.local_model import LocalChatModel
    from modelsat.serve.local_hf_server import make_app, running_server
    torch.set_num_threads(1)
    bin_dir, _, work = installed
    with running_server(make_app(lm=LocalChatModel(None, threads=1), max_tokens_cap=5)) as url:
        r = in_venv(bin_dir, work, "modelsat", "profile", "--endpoint", f"{url}/v1", "--model", "smol",
                    "--out", str(tmp_path / "smol.json"), "--limit", "3", "--price-in", "0.1", "--price-out", "0.2")
    assert r.returncode == 0, r.stderr[-3000:]
    prof = json.loads((tmp_path / "smol.json").read_text())
    assert prof["model"] == "smol" and sum(s["n_items"] for s in prof["subjects"].values()) == 3
    assert "items/s" in r.stdout + r.stderr


def test_the_sdist_builds_under_25_mb(tmp_path):
    pytest.importorskip("build", reason="the `build` package (dev extra) makes the sdist")
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--skip-dependency-check", "--outdir",
                        str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sdist = next((tmp_path / "dist").glob("modelsat-*.tar.gz"))
    assert sdist.stat().st_size < 25 * 2 ** 20
