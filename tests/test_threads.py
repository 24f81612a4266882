"""svdcodec's own thread count: threads(n), set_threads(n), SVDCODEC_THREADS, and that it
changes neither the bytes nor the pixels."""

from __future__ import annotations

import threading
from importlib import resources

import numpy as np
import pytest
from PIL import Image
from support import photo

import svdcodec
from svdcodec.evaluation.metrics import psnr
from svdcodec.runtime import band_sizes, kernels
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


def recorded_pools(monkeypatch) -> list[int]:
    """The thread count of every pool the runtime is asked for from now on (the pools still
    run)."""
    pools: list[int] = []
    real_pool = runtime._pool

    def recording_pool(count: int):
        pools.append(count)
        return real_pool(count)
    monkeypatch.setattr(runtime, "_pool", recording_pool)
    return pools


def test_one_thread_gives_the_same_bytes_and_pixels(monkeypatch) -> None:
    """With threads(1) no pool thread runs (band work stays in the calling thread), and the
    file and the pixels are those of the default thread count (the plain layout's: within
    BLAS rounding)."""
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        rgb = np.tile(np.asarray(im), (2, 2, 1))  # 768 x 512
    # (encoded in threads by default, as a larger image is, band by band: not in plane jobs)
    monkeypatch.setattr(band_sizes, "ENCODE_SERIAL_SAMPLES", 0)
    monkeypatch.setattr(band_sizes, "ENCODE_PLANE_JOB_MAX_SAMPLES", 0)
    data = svdcodec.encode(rgb, 80)
    plain = svdcodec.encode(rgb, 80, layout="plain")
    # Decoded in several bands: a photo of one band sets each plane up whole in the calling
    # thread (`decoder.plane.WholePlane`), where the pool would have nothing to do.
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 16)
    pixels = svdcodec.decode(data)
    pools = recorded_pools(monkeypatch)
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


def test_deferred_runs_once_and_returns_its_value() -> None:
    calls = []

    def call() -> int:
        calls.append(threading.get_ident())
        return 42
    with svdcodec.threads(1):  # no pool thread: the call waits for result(), in this thread
        deferred = runtime.defer(call)
        assert calls == []
        assert deferred.result() == 42 and deferred.result() == 42
        assert calls == [threading.get_ident()]
    calls.clear()
    with svdcodec.threads(2):
        deferred = runtime.defer(call)
        assert deferred.result() == 42 and deferred.result() == 42
    assert len(calls) == 1


def test_deferred_error_reaches_the_caller() -> None:
    def fails() -> None:
        raise OverflowError("value does not fit 32 bits")
    for count in (1, 2):
        with svdcodec.threads(count), pytest.raises(OverflowError, match="32 bits"):
            runtime.defer(fails).result()


def test_deferred_never_waits_for_a_busy_pool() -> None:
    """Every pool thread busy: result() runs the call in the calling thread at once instead of
    waiting for one to become free (the queued start then finds it claimed)."""
    release = threading.Event()
    started = [threading.Event() for _ in range(2)]

    def occupy(k: int) -> None:
        started[k].set()
        assert release.wait(60)
    pool = runtime._pool(2)
    busy = [pool.submit(occupy, k) for k in range(2)]
    try:
        assert all(event.wait(60) for event in started)
        ran_in = []
        deferred = runtime.Deferred(lambda: ran_in.append(threading.get_ident()) or 7, 2)
        assert deferred.result() == 7 and deferred.result() == 7  # no wait for the queue
        assert ran_in == [threading.get_ident()]
    finally:
        release.set()
        for future in busy:
            future.result()
    # the queued start, once a pool thread took it, found the call claimed and did not run it
    assert deferred._started is not None and deferred._started.result(timeout=60) is False
    assert ran_in == [threading.get_ident()]


def test_cancelled_deferred_does_not_run() -> None:
    calls = []
    with svdcodec.threads(1):
        runtime.defer(lambda: calls.append(1)).cancel()
    assert calls == []


def test_small_encodes_stay_in_the_calling_thread(monkeypatch) -> None:
    """An image of at most band_sizes.ENCODE_SERIAL_SAMPLES samples, below the plane jobs'
    ENCODE_PLANE_JOB_MIN_SAMPLES, is encoded without a pool thread (on 2 cores a second
    thread shortens no such encode); a larger one uses the pool (two threads asked for), and
    writes the same bytes."""
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        rgb = np.asarray(im)
    monkeypatch.setattr(band_sizes, "ENCODE_SERIAL_SAMPLES", rgb.size)
    monkeypatch.setattr(band_sizes, "ENCODE_PLANE_JOB_MIN_SAMPLES", rgb.size + 1)
    pools = recorded_pools(monkeypatch)
    with svdcodec.threads(2):
        data = svdcodec.encode(rgb, 75)
        assert pools == []
        monkeypatch.setattr(band_sizes, "ENCODE_SERIAL_SAMPLES", rgb.size - 1)
        assert svdcodec.encode(rgb, 75) == data
    assert pools


def test_concurrent_decodes_keep_their_own_planes(monkeypatch) -> None:
    """Decodes in several threads at once, each of small images whose planes are set up in
    the shared pool's threads (`decoder.stream.whole_jobs`) and rendered in a band per
    thread: each gives its own file's pixels (a plane set up in a pool thread lives in the
    memory of the thread that asked, not in the pool thread's, which its next job reuses)."""
    monkeypatch.setattr(band_sizes, "SERIAL_SAMPLES", 0)
    files = [svdcodec.encode(photo(64 + 16 * k, 96, 3, seed=k), 60 + 10 * k) for k in range(4)]
    with svdcodec.threads(1):
        expected = [svdcodec.decode(data) for data in files]
    wrong: list[int] = []

    def decode_all(first: int) -> None:
        with svdcodec.threads(2):
            for k in range(24):
                i = (first + k) % len(files)
                if not np.array_equal(svdcodec.decode(files[i]), expected[i]):
                    wrong.append(i)
    workers = [threading.Thread(target=decode_all, args=(t,)) for t in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert wrong == []


def test_pool_runs_each_call_once_on_at_most_its_size_of_threads() -> None:
    """The runtime's own pool (no concurrent.futures): each call runs once, in a pool thread,
    and gives its value or raises its exception in result(); no more threads start than its
    size, and none while one is idle; a call cancelled before any thread took it never runs."""
    pool = runtime.Pool(2)
    where: list[int] = []
    jobs = [pool.submit(lambda k: where.append(threading.get_ident()) or k * k, k)
            for k in range(8)]
    assert [job.result(timeout=60) for job in jobs] == [k * k for k in range(8)]
    assert len(where) == 8 and threading.get_ident() not in where
    assert len(set(where)) <= 2 and len(pool.threads) <= 2

    def fails() -> None:
        raise KeyError("inside")
    with pytest.raises(KeyError, match="inside"):
        pool.submit(fails).result(timeout=60)
    release, started = threading.Event(), threading.Event()

    def occupy() -> None:
        started.set()
        assert release.wait(60)
    busy = [pool.submit(occupy) for _ in range(2)]
    assert started.wait(60)
    calls: list[int] = []
    queued = pool.submit(calls.append, 1)
    assert queued.cancel() and not queued.cancel()
    release.set()
    for job in busy:
        job.result(timeout=60)
    assert pool.submit(int).result(timeout=60) == 0 and calls == []
    assert len(pool.threads) == 2
    one = runtime.Pool(4)
    for _ in range(5):  # one call at a time: the idle thread takes each
        one.submit(int).result(timeout=60)
    assert len(one.threads) == 1


@pytest.mark.parametrize("quality", [75, 95])  # Cb and Cr halved; all three planes full-size
def test_plane_jobs_write_the_same_bytes(monkeypatch, quality: int) -> None:
    """An image in the plane jobs' range (band_sizes.ENCODE_PLANE_JOB_MIN_SAMPLES to
    ENCODE_PLANE_JOB_MAX_SAMPLES) has each plane coded, and its deblocking strengths tried, in
    a job of one thread: with two threads the jobs go to the pool, and the file is the one of
    one thread, and the one of the planes coded one after the other with no jobs."""
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        rgb = np.asarray(im)  # 384 x 256: 294,912 samples
    assert band_sizes.ENCODE_PLANE_JOB_MIN_SAMPLES <= rgb.size \
        <= min(band_sizes.ENCODE_PLANE_JOB_MAX_SAMPLES, band_sizes.ENCODE_SERIAL_SAMPLES)
    with svdcodec.threads(1):
        one = svdcodec.encode(rgb, quality)
    job_threads: set[int] = set()
    real_run_jobs = runtime.run_jobs

    def recorded(task, count):
        def job(i):
            job_threads.add(threading.get_ident())
            assert runtime.band_workers() == 1  # the job's own bands stay in its thread
            return task(i)
        return real_run_jobs(job, count)
    from svdcodec.encoder import deblock, schedule
    monkeypatch.setattr(schedule, "run_jobs", recorded)
    monkeypatch.setattr(deblock, "run_jobs", recorded)
    pools = recorded_pools(monkeypatch)
    with svdcodec.threads(2):
        assert svdcodec.encode(rgb, quality) == one
        assert pools and job_threads  # the jobs were offered to a pool thread
        monkeypatch.setattr(band_sizes, "ENCODE_PLANE_JOB_MAX_SAMPLES", rgb.size - 1)
        job_threads.clear()
        assert svdcodec.encode(rgb, quality) == one
        assert not job_threads


def test_run_jobs_in_order_each_job_serial(monkeypatch) -> None:
    """Each job runs whole in one thread with its bands there; results in job order, and the
    first failing job's error reaches the caller."""
    def job(i: int) -> tuple[int, int]:
        return i, runtime.band_workers()
    pools = recorded_pools(monkeypatch)
    with svdcodec.threads(2), runtime.serial():  # jobs go to threads inside serial() too
        assert runtime.run_jobs(job, 3) == [(0, 1), (1, 1), (2, 1)]
        assert runtime.band_workers() == 1  # the caller's own setting is back
    assert pools and set(pools) == {2}  # (`pool_ready` asks for it too)
    with svdcodec.threads(2):
        assert runtime.run_jobs(job, 3) == [(0, 1), (1, 1), (2, 1)]
        assert runtime.band_workers() == 2

    def fails(i: int) -> int:
        if i == 1:
            raise ValueError(f"job {i} failed")
        return i
    for count in (1, 2):
        with svdcodec.threads(count), pytest.raises(ValueError, match="job 1 failed"):
            runtime.run_jobs(fails, 2)


def test_a_new_processs_first_small_decode_and_encode_start_the_threads(monkeypatch) -> None:
    """With no pool thread running yet (a new process), a photo's decode (cut into a band per
    thread once threads run: `decoder.stream.whole_jobs`) and its encode (plane jobs) run in
    the calling thread, and start the pool's threads for the next calls, which use them; the
    pixels and bytes are the same either way."""
    monkeypatch.setattr(band_sizes, "SERIAL_SAMPLES", 0)
    monkeypatch.setattr(band_sizes, "ENCODE_PLANE_JOB_MIN_SAMPLES", 0)
    rgb = photo(96, 128, 3)
    monkeypatch.setattr(runtime, "_pools", {})
    ran: list[str] = []
    real_run = runtime.Job.run

    def recording_run(self) -> bool:
        # Only jobs of the pools made since the last reset: a previous pool's thread may
        # still take a late band-sharing job of the call before it (it finds no band left),
        # when the machine is busy.
        current = threading.current_thread()
        if any(current in pool.threads for pool in runtime._pools.values()):
            ran.append(current.name)
        return real_run(self)
    monkeypatch.setattr(runtime.Job, "run", recording_run)
    with svdcodec.threads(1):
        data, pixels = svdcodec.encode(rgb), svdcodec.decode(svdcodec.encode(rgb))
    with svdcodec.threads(2):
        # (its planes in the calling thread; the deblocking judgement's jobs after them may
        # take the threads the plane jobs started)
        assert svdcodec.encode(rgb) == data and len(runtime._pools[2].threads) == 1
        monkeypatch.setattr(runtime, "_pools", {})
        ran.clear()
        split = kernels.get() is not None  # (the split needs the compiled planes)
        np.testing.assert_array_equal(svdcodec.decode(data), pixels)
        assert ran == [] and len(runtime._pools.get(2, runtime.Pool(2)).threads) == split
        np.testing.assert_array_equal(svdcodec.decode(data), pixels)
        assert bool(ran) == split
        ran.clear()
        assert svdcodec.encode(rgb) == data and ran


def test_jobs_keep_blas_at_one_thread() -> None:
    """Inside a `run_jobs` job, `threaded_blas` leaves OpenBLAS at one thread: its thread count
    is process-wide, so raising it for one job's factorization would change the rounding of
    another job's products run meanwhile, and the file's bytes with the jobs' timing (a
    96 x 128 photo's plane jobs wrote two different files in eight encodes). Outside a job it
    still gives the whole-plane factorization OpenBLAS's own threads."""
    with runtime.single_threaded():
        api = runtime._api
        if api is None or runtime._saved == 1:
            pytest.skip("no OpenBLAS thread API here, or it runs one thread anyway")

        def blas_threads(i: int) -> int:
            with runtime.threaded_blas():
                return int(api[0]())
        with svdcodec.threads(2):
            assert runtime.run_jobs(blas_threads, 2) == [1, 1]
            assert blas_threads(0) == runtime._saved > 1


def test_pool_holds_nothing_of_a_finished_call() -> None:
    """Once a call has run, neither the pool's thread (waiting for the next) nor its job keeps
    what the call held: a band's arrays would otherwise stay alive until the thread's next
    call (five more MiB at the peak of a 19 MP save)."""
    import gc
    import weakref

    class Held:
        pass
    pool = runtime.Pool(1)
    held = Held()
    gone = weakref.ref(held)
    job = pool.submit(lambda kept=held: 1)
    del held
    assert job.result(timeout=60) == 1
    for _ in range(100):  # the thread lets go of it once it is back to waiting
        gc.collect()
        if gone() is None:
            break
        threading.Event().wait(0.01)
    assert gone() is None
