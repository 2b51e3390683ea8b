"""Usage mistakes through the real `modelsat` entry point (a subprocess, as a user runs it): typer's usage
message and exit status 2, never a traceback, for every command the app has."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from modelsat.cli import app

MODELSAT = Path(sys.executable).with_name("modelsat")


def commands(group=None, path=()):
    """(path, click command) for every leaf command of the app, e.g. (("aptitude", "build"), cmd)."""
    group = group or typer.main.get_command(app)
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def groups(group=None, path=()):
    """Paths of the app and of every command group in it."""
    group = group or typer.main.get_command(app)
    yield path
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from groups(cmd, path + (name,))


ALL = list(commands())
NEEDING_INPUT = [(p, c) for p, c in ALL if any(param.required for param in c.params)]


def modelsat(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([str(MODELSAT), *args], capture_output=True, text=True, env=env, timeout=120)


def assert_usage_error(r: subprocess.CompletedProcess, path: tuple, mistake: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    assert f"Usage: modelsat {' '.join(path)}".rstrip() in r.stderr
    assert mistake in r.stderr


def test_the_app_has_the_commands_this_file_walks():
    names = {" ".join(p) for p, _ in ALL}
    assert {"route", "profile", "serve", "validate", "benchmark", "evaluate", "zoo list", "aptitude build"} <= names
    assert len(NEEDING_INPUT) >= 8


@pytest.mark.parametrize("path", [p for p, _ in NEEDING_INPUT], ids=" ".join)
def test_a_missing_argument_prints_usage_and_exits_2(path):
    assert_usage_error(modelsat(*path), path, "Missing")


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=" ".join)
def test_an_unknown_option_prints_usage_and_exits_2(path):
    assert_usage_error(modelsat(*path, "--no-such-option"), path, "No such option")


@pytest.mark.parametrize("path", list(groups()), ids=lambda p: " ".join(p) or "modelsat")
def test_an_unknown_subcommand_prints_usage_and_exits_2(path):
    assert_usage_error(modelsat(*path, "no-such-command"), path, "No such command 'no-such-command'")


def test_python_dash_m_names_the_command_modelsat():
    r = subprocess.run([sys.executable, "-m", "modelsat.cli", "route"], capture_output=True, text=True,
                       timeout=120)
    assert_usage_error(r, ("route",), "Missing argument")
