"""Starts `modelsat serve` as a user does (a subprocess on loopback, any free port) for the CLI tests."""

import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

MODELSAT = Path(sys.executable).with_name("modelsat")


@contextmanager
def serving(*args: str, env: dict | None = None, limit_s: float = 300):
    """Yields the base URL (http://127.0.0.1:PORT) of `modelsat serve ARGS --port 0 --log-level info` once
    uvicorn says it listens; the server is stopped on exit (and killed after `limit_s` if it never starts)."""
    proc = subprocess.Popen([str(MODELSAT), "serve", *args, "--host", "127.0.0.1", "--port", "0",
                             "--log-level", "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})))
    guard = threading.Timer(limit_s, proc.kill)
    guard.start()
    seen = []
    try:
        for line in proc.stdout:          # blocks until the next line; ends when the process exits
            seen.append(line)
            m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if m:
                yield m.group(1)
                return
        raise AssertionError("modelsat serve exited before listening:\n" + "".join(seen))
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(timeout=60)
