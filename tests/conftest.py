import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from modelsat.paths import has_data_dir  # noqa: E402

needs_data = pytest.mark.skipif(not has_data_dir(), reason="no data folder: set MODELSAT_DATA or put ../shared/data beside the project")


def load_script(name: str):
    """The module of scripts/NAME.py, or of experiments/NAME.py for a research tool (neither folder is a package)."""
    root = Path(__file__).resolve().parents[1]
    path = root / "scripts" / f"{name}.py"
    if not path.exists():
        path = root / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
