"""Keeping numpy's BLAS threads out of the way of torch's.

numpy's OpenBLAS keeps its own worker threads, and after each call large enough to use them they spin for
about 0.1 s before they sleep. On a 2-core CPU a routing call that does one such numpy product (the records
prior's similarity to 8,423 training items) right before φ's forward leaves those workers spinning on the cores
the forward needs: measured on this project's 2-core machine, the shipped router's 5-candidate forward took
~138 ms after it instead of ~60 ms. `single_blas_thread()` runs a block's numpy products on the calling
thread, so no worker wakes; the products are the same (OpenBLAS never splits one dot product across threads).
MODELSAT_BLAS_SINGLE=0 turns it off (to measure the difference: scripts/bench_routing.py).
"""

from __future__ import annotations

import contextlib
import os
import threading

_controller = None
_lock = threading.Lock()


def _blas_controller():
    """A threadpoolctl controller over the BLAS libraries loaded now, made once (~1 ms); None without
    threadpoolctl (scikit-learn's dependency, so normally present)."""
    global _controller
    with _lock:
        if _controller is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:      # nothing to limit: results are the same, only slower beside torch
                _controller = False
            else:
                import numpy  # noqa: F401  (its BLAS must be loaded before the controller looks)
                _controller = ThreadpoolController()
    return _controller or None


def blas_limit_off() -> bool:
    """True where MODELSAT_BLAS_SINGLE=0 (or false/no/off) turns `single_blas_thread` off."""
    return os.environ.get("MODELSAT_BLAS_SINGLE", "1").strip().lower() in ("0", "false", "no", "off")


@contextlib.contextmanager
def single_blas_thread():
    """numpy's BLAS on one thread inside the block (process-wide while it runs; restored after)."""
    controller = None if blas_limit_off() else _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
