"""Atomic file writes: the one way modelsat replaces a file, so a crash never leaves half a file behind."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path`; on success it is renamed onto `path`, on error removed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(obj, path: str | os.PathLike) -> Path:
    """Writes `obj` as indented JSON to `path` atomically; gzip-compressed where `path` ends in `.gz` (with no
    timestamp in the header, so the same object always gives the same bytes)."""
    if str(path).endswith(".gz"):
        import gzip
        data = json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(gzip.compress(data, compresslevel=9, mtime=0))
        return Path(path)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
