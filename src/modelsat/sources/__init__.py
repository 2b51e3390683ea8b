"""One loader per folder of the data directory; each `load(path) -> records DataFrame`.

Benchmark names: a source that holds one dataset names it after itself (`mmlu`, `mmlu_pro`); a source that
holds several prefixes its own name (`routerdc/mmlu`, `routerbench/arc_challenge`, `routellm/gsm8k`,
`llmrouter/math`), so benchmarks of different sources never collide. Each module's docstring gives its
item-id convention.

Loaded sources are cached as Parquet in `modelsat.paths.cache_dir()/sources`, keyed by the size and
modification time of every file the loader reads and of the loader's code; set MODELSAT_NO_CACHE=1 (or pass
cache=False) to read the files every time.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path

import pandas as pd

from modelsat.errors import ModelsatError
from modelsat.paths import cache_dir, data_dir

log = logging.getLogger(__name__)

SOURCES = ["mmlu", "mmlu_pro", "routerdc", "routellm", "llmrouter"]
QUESTION_ONLY = {"mmlu"}            # sources without model results: not part of `load_all`
SIBLINGS = {"routerdc": ["mmlu"], "routellm": ["mmlu"]}   # folders a loader also reads (MMLU questions)
CACHE_VERSION = 1


def folder_of(name: str, path: str | os.PathLike | None = None, data: str | os.PathLike | None = None) -> Path:
    """The folder source `name` is read from: `path`, or `<data dir>/<name>`."""
    if name not in SOURCES:
        raise ModelsatError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
    folder = Path(path) if path is not None else data_dir(data) / name
    if not folder.is_dir():
        raise ModelsatError(f"source {name!r}: no folder at {folder}")
    return folder


def load(name: str, path: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
         cache: bool = True) -> pd.DataFrame:
    """Records of source `name`, read from `path` (its folder) or from `<data dir>/<name>`."""
    folder = folder_of(name, path, data)
    module = importlib.import_module(f"modelsat.sources.{name}")
    if not cache or os.environ.get("MODELSAT_NO_CACHE"):
        return module.load(folder)
    cached = _cache_file(name, folder, module)
    if cached is not None and cached.exists():
        try:
            return pd.read_parquet(cached)
        except Exception as exc:  # a damaged cache is only a slower load; say so and rebuild it
            log.warning("ignoring unreadable cache %s (%s)", cached, exc)
    df = module.load(folder)
    if cached is not None:
        _write_cache(df, cached)
    return df


def load_all(data: str | os.PathLike | None = None, cache: bool = True) -> pd.DataFrame:
    """One records table of every source with model results (all but the question-only `mmlu`)."""
    from modelsat import records
    return records.concat(load(name, data=data, cache=cache) for name in SOURCES if name not in QUESTION_ONLY)


def _files_read_by(name: str, folder: Path) -> list[Path]:
    folders = [folder] + [folder.parent / s for s in SIBLINGS.get(name, []) if (folder.parent / s).is_dir()]
    return sorted(f for d in folders for f in d.rglob("*") if f.is_file())


def _cache_file(name: str, folder: Path, module) -> Path | None:
    """The cache file for this source folder and loader code, or None when no cache folder can be made."""
    digest = hashlib.sha256(f"{CACHE_VERSION}\0{name}\0{folder.resolve()}".encode())
    code = [Path(module.__file__), Path(__file__).with_name("_common.py"), Path(__file__).with_name("mmlu.py")]
    for f in code + _files_read_by(name, folder):
        st = f.stat()
        digest.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    try:
        return cache_dir() / "sources" / f"{name}-{digest.hexdigest()[:16]}.parquet"
    except OSError as exc:
        log.warning("no cache for source %s (%s)", name, exc)
        return None


def _write_cache(df: pd.DataFrame, cached: Path) -> None:
    from modelsat import records
    try:
        for old in cached.parent.glob(f"{cached.name.split('-')[0]}-*.parquet"):
            old.unlink()
        records.write_table(df, cached)
    except (OSError, ValueError, TypeError) as exc:  # caching is an optimisation; never fail a load for it
        log.warning("could not write cache %s (%s)", cached, exc)
