"""svdcodec's own thread count: threads(n), set_threads(n), SVDCODEC_THREADS, and that it
changes neither the bytes nor the pixels."""

from __future__ import annotations

import threading
from importlib import resources

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec.evaluation.metrics import psnr
from svdcodec.runtime import band_sizes
from svdcodec.runtime import threads as runtime


@pytest.fixture(autouse=True)
def no_process_setting(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_VARIABLE, raising=False)
    previous = svdcodec.set_threads(None)
    yield
    svdcodec.set_threads(previous)


def test_precedence(monkeypatch) -> None:
    default = max(1, min(runtime.cores(), 4))
    assert runtime.configured_threads() == (None, "default") and runtime.workers() == default
    monkeypatch.setenv(runtime.THREADS_VARIABLE, "3")
    assert runtime.workers() == 3
    assert svdcodec.set_threads(2) is None
    assert runtime.configured_threads() == (2, "set_threads()")
    with svdcodec.threads(5):
        assert runtime.configured_threads() == (5, "threads()")
        seen = []
        other = threading.Thread(target=lambda: seen.append(runtime.workers()))
        other.start()
        other.join()
        assert seen == [2]  # threads() is this thread's only
    assert runtime.workers() == 2
    assert svdcodec.set_threads(None) == 2
    assert runtime.workers() == 3


@pytest.mark.parametrize("bad", ["0", "-2", "four", "1.5"])
def test_bad_values_are_refused(monkeypatch, bad: str) -> None:
    monkeypatch.setenv(runtime.THREADS_VARIABLE, bad)
    with pytest.raises(ValueError, match="SVDCODEC_THREADS must be a positive integer"):
        runtime.workers()
    with pytest.raises(ValueError, match="positive integer"):
        svdcodec.set_threads(0)
    with pytest.raises(ValueError, match="positive integer"), svdcodec.threads(True):
        pass


def test_not_a_dask_worker_here() -> None:
    assert not runtime.in_dask_worker()


def test_one_thread_gives_the_same_bytes_and_pixels(monkeypatch) -> None:
    """With threads(1) no pool thread runs (band work stays in the calling thread), and the
    file and the pixels are those of the default thread count (the plain layout's: within
    BLAS rounding)."""
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        rgb = np.tile(np.asarray(im), (2, 2, 1))  # 768 x 512
    data = svdcodec.encode(rgb, 80)
    plain = svdcodec.encode(rgb, 80, layout="plain")
    pixels = svdcodec.decode(data)
    pools = []
    real_pool = runtime._pool

    def recording_pool(count: int):
        pools.append(count)
        return real_pool(count)
    monkeypatch.setattr(runtime, "_pool", recording_pool)
    with svdcodec.threads(1):
        assert svdcodec.encode(rgb, 80) == data
        # The plain layout factorizes the whole plane with OpenBLAS's own threads (one large
        # product): their count changes its rounding, and on some CPUs the file's bytes, never
        # more than rounding does (docs/performance.md, "Bands and threads").
        one = svdcodec.encode(rgb, 80, layout="plain")
        assert abs(len(one) - len(plain)) <= 0.005 * len(plain)
        assert psnr(svdcodec.decode(one), svdcodec.decode(plain)) > 50
        assert np.array_equal(svdcodec.decode(data), pixels)
    assert pools == []
    if runtime.cores() > 1:  # the default does use the pool, so the check above means something
        # (jobs this small run in the calling thread: every job is worth a hand-off here)
        monkeypatch.setattr(band_sizes, "THREAD_BYTES", 0)
        svdcodec.decode(data)
        assert pools
