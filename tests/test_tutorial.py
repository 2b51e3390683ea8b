"""The tutorial "Add your model in ten minutes" runs word for word: scripts/run_tutorial.py builds the wheel,
runs every command of docs/guides/add-your-model.md in a new folder (a fresh venv, SmolLM2 behind the package's
local server, whole and cut to 24 and 20 layers, three profiles, a zoo, serve, a routed request, a fourth model
taken in while serving). Profiles are cut to 5 items each here (`--limit 5`) so the test takes minutes, not the
tutorial's full time."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_tutorial_runs_word_for_word(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_tutorial.py"), "--limit", "5",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    transcript = (tmp_path / "transcript.md").read_text()
    assert re.search(r'"model": ?"my-(big|medium|small)"', transcript)   # the routed request came back from a model
    assert '"id":"my-big-2"' in transcript.replace(" ", "")       # the fourth model, taken in while serving
    assert "items/s" in r.stdout
