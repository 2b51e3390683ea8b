"""The wheel installs outside the checkout and routes from package data alone: no checkout on the path, no
data folder, no network (dependencies come from the current environment's site-packages)."""

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


@pytest.mark.slow
def test_the_wheel_is_under_25_mb_and_carries_the_aptitude_test(installed):
    _, wheel, _ = installed
    assert wheel.stat().st_size < 25 * 2 ** 20
    names = zipfile.ZipFile(wheel).namelist()
    assert "modelsat/shipped/aptitude-test.json.gz" in names and "modelsat/shipped/aptitude-test.README.md" in names
    assert any(n.startswith("modelsat/shipped/modelsat-cpu-default/") for n in names)


@pytest.mark.slow
def test_the_installed_package_is_not_the_checkout(installed):
    bin_dir, _, work = installed
    r = in_venv(bin_dir, work, "python", "-c", "import modelsat; print(modelsat.__file__)")
    assert r.returncode == 0, r.stderr
    assert str(ROOT) not in r.stdout and str(bin_dir.parent) in r.stdout


@pytest.mark.slow
def test_the_installed_package_shows_its_aptitude_test(installed):
    bin_dir, _, work = installed
    r = in_venv(bin_dir, work, "modelsat", "aptitude", "show")
    assert r.returncode == 0, r.stderr
    assert "d6f5e5aea41c" in r.stdout and str(bin_dir.parent) in r.stdout


@pytest.mark.slow
def test_the_installed_package_routes_with_the_shipped_router(installed):
    bin_dir, _, work = installed
    r = in_venv(bin_dir, work, "modelsat", "route", "--json", "Solve for x: 3x^2 - 12x + 9 = 0.")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["router"].startswith("shipped router") and len(out["scores"]) == 7
