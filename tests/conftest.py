import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from modelsat.paths import has_data_dir  # noqa: E402

needs_data = pytest.mark.skipif(not has_data_dir(), reason="no data folder: set MODELSAT_DATA or put ../shared/data beside the project")
