"""modelsat.threads: numpy's BLAS held to one thread inside a block, restored after, with the same products."""

import numpy as np
from threadpoolctl import threadpool_info

from modelsat.threads import single_blas_thread


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_inside_the_block_numpys_blas_runs_on_one_thread_and_the_products_do_not_change(monkeypatch):
    monkeypatch.delenv("MODELSAT_BLAS_SINGLE", raising=False)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 384)).astype(np.float32), rng.normal(size=(384, 3000)).astype(np.float32)
    before = _blas_threads()
    assert before, "numpy without a BLAS threadpoolctl can see"
    outside = a @ b
    with single_blas_thread():
        assert set(_blas_threads()) == {1}
        inside = a @ b
    assert _blas_threads() == before
    np.testing.assert_array_equal(inside, outside)


def test_modelsat_blas_single_0_leaves_the_threads_alone(monkeypatch):
    monkeypatch.setenv("MODELSAT_BLAS_SINGLE", "0")
    before = _blas_threads()
    with single_blas_thread():
        assert _blas_threads() == before
