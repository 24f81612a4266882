"""Threads for band work, and one BLAS thread while they run.

Bands of rows are independent (decoding, projecting, coding symbols), and numpy, BLAS, Pillow and
zstd release the GIL, so `run_bands` runs them in a few threads; results come back in band
order, so every sum over bands is deterministic. Larger independent jobs (the planes of a
file) run through it too: the bands of a job are then shared with pool threads that have
finished their own jobs, instead of running in the job's thread alone, so no core idles
while one job has bands left. A long step whose inputs are ready before its output is needed
is offered to an idle pool thread with `defer`, and runs in the caller if none takes it.

Band work calls BLAS on small products from several Python threads at once. OpenBLAS then
hands each call to its own thread pool, and concurrent callers wait for one another: the band
threads would run one at a time. `single_threaded()` sets OpenBLAS's thread count
to 1 for the duration (through its C API, as threadpoolctl does, without the dependency) and
restores it when the last concurrent user leaves. Where OpenBLAS is not found it does nothing.

The encoder keeps BLAS single-threaded for its whole run, not just inside band work: after each
multi-threaded call (even a 64 x 64 eigh), OpenBLAS's idle worker spins for a while on the other
core, where it competes with the band threads. (Measurements: docs/design-notes.md.)

How many threads (`workers`), first match wins: `threads(n)` around the call (this thread and
async context only), `set_threads(n)` (process-wide), the environment variable SVDCODEC_THREADS,
one thread inside a Dask worker process (its scheduler already runs one task per thread; a
codec that started its own threads in each would fight it), else the usable cores, at most 4.
With one thread, band work runs in the calling thread and whole-plane factorizations keep BLAS
single-threaded too. Small images (encodes of at most band_sizes.ENCODE_SERIAL_SAMPLES
samples, decodes of at most SERIAL_SAMPLES) run their bands in the calling thread whatever the
count; an encode of at least ENCODE_PLANE_JOB_MIN_SAMPLES hands each plane to a thread once
(`run_jobs`).
(docs/arrays.md, "Threads".)
"""

from __future__ import annotations

import contextvars
import itertools
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")

_lock = threading.Lock()
_users = 0
_saved = 0
_api: tuple[Any, Any] | None = None
_looked_up = False


def _candidates() -> Iterator[str]:
    """Files that may be OpenBLAS: the libraries this process has mapped, then numpy's bundled
    copies, looked for (and glob imported) only if none of the mapped ones has the API."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "openblas" in line.lower() and ".so" in line})
    except OSError:
        pass
    yield from paths
    import glob

    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    yield from sorted(glob.glob(os.path.join(libs, "*openblas*")))


def openblas_thread_api() -> tuple[Any, Any] | None:
    """OpenBLAS's (get, set) thread-count functions, found in the loaded library, or None."""
    import ctypes

    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


@contextmanager
def single_threaded() -> Iterator[None]:
    """OpenBLAS runs single-threaded inside this block (process-wide; re-entrant)."""
    global _api, _looked_up, _users, _saved
    with _lock:
        if not _looked_up:
            _api, _looked_up = openblas_thread_api(), True
        if _api is not None and _users == 0:
            _saved = _api[0]()
            if _saved != 1:
                _api[1](1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _api is not None and _users == 0 and _saved != 1:
                _api[1](_saved)


@contextmanager
def threaded_blas() -> Iterator[None]:
    """OpenBLAS's own thread count again inside an enclosing `single_threaded()` block, for
    one large product run from the calling thread alone (a whole-plane factorization). Not
    inside a `run_jobs` job: the setting is process-wide, so another job's products, run
    meanwhile, would change their rounding with it (and the file's bytes with the jobs'
    timing); a job's products keep one BLAS thread, as with `threads(1)`."""
    with _lock:
        put = (_api[1] if _api is not None and _users > 0 and _saved != 1 and workers() > 1
               and not getattr(_worker, "job", False) else None)
        if put is not None:
            put(_saved)
    try:
        yield
    finally:
        with _lock:
            if put is not None:
                put(1)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: The environment variable that sets svdcodec's thread count (a positive integer).
THREADS_VARIABLE = "SVDCODEC_THREADS"
_scoped_threads: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "svdcodec_threads", default=None)
_process_threads: int | None = None


def _check_count(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def set_threads(n: int | None) -> int | None:
    """Set svdcodec's thread count for the whole process (None: back to the default); returns
    the previous setting. `threads(n)` and nothing else overrides it."""
    global _process_threads
    previous = _process_threads
    _process_threads = None if n is None else _check_count(n, "thread count")
    return previous


@contextmanager
def threads(n: int) -> Iterator[None]:
    """svdcodec uses `n` threads for the calls made inside this block, in this thread (or
    asyncio task) only; other threads keep their own setting. At most `n`: small images run in
    the calling thread (`band_sizes.ENCODE_SERIAL_SAMPLES`, `SERIAL_SAMPLES`), but for an
    encode's plane jobs (`band_sizes.ENCODE_PLANE_JOB_MIN_SAMPLES`)."""
    token = _scoped_threads.set(_check_count(n, "thread count"))
    try:
        yield
    finally:
        _scoped_threads.reset(token)


def in_dask_worker() -> bool:
    """Whether this process runs a Dask distributed worker. Cheap: only looks at modules
    already imported (a worker process has imported distributed.worker), never imports one."""
    module = sys.modules.get("distributed.worker")
    if module is None:
        return False
    worker_class = getattr(module, "Worker", None)
    return bool(getattr(worker_class, "_instances", None))


def configured_threads() -> tuple[int | None, str]:
    """The explicit thread count and where it comes from, or (None, "default")."""
    scoped = _scoped_threads.get()
    if scoped is not None:
        return scoped, "threads()"
    if _process_threads is not None:
        return _process_threads, "set_threads()"
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if text:
        try:
            return _check_count(int(text), THREADS_VARIABLE), THREADS_VARIABLE
        except ValueError:
            raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {text!r}"
                             ) from None
    if in_dask_worker():
        return 1, "Dask worker"
    return None, "default"


def workers() -> int:
    """Threads for band work: the configured count (see the module's docstring), else the
    usable cores, at most 4 (memory bandwidth saturates)."""
    count, _ = configured_threads()
    return count if count is not None else max(1, min(cores(), 4))


class Job(Generic[T]):
    """A call handed to a `Pool`: run once by a pool thread unless cancelled first (a
    `concurrent.futures.Future`'s `cancel` and `result`, no more)."""

    __slots__ = ("call", "claims", "error", "finished", "value")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call: Callable[[], T] | None = call
        self.claims = itertools.count()
        self.finished = threading.Lock()  # held until the call has run
        self.finished.acquire()
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> bool:
        """In a pool thread: the call, unless `cancel` came first; whether it ran (then
        `finish` tells the waiting thread)."""
        call, self.call = self.call, None  # what it holds (a band's arrays) goes with it
        if next(self.claims):  # atomic under the GIL
            return False
        try:
            self.value = call()
        except BaseException as exc:  # noqa: BLE001 (raised by result(), in its caller)
            self.error = exc
        return True

    def finish(self) -> None:
        self.finished.release()

    def cancel(self) -> bool:
        """True if the call will never run (no pool thread had started it)."""
        return not next(self.claims)

    def result(self, timeout: float = -1) -> T:
        """The call's value once it has run (its exception raised here); TimeoutError after
        `timeout` seconds (default: no limit). Not for a cancelled job."""
        if not self.finished.acquire(timeout=timeout):
            raise TimeoutError("the pool's call has not ended")
        self.finished.release()
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class Pool:
    """Threads that run the calls handed to them in turn: what `run_bands` and `defer` ask of
    a pool (a job that can be cancelled before it starts, or waited for), with nothing but
    `threading` and a deque: `concurrent.futures`' executor costs a small image's decode
    again in imports the first time a process uses it. The threads start as calls arrive
    while none is idle, up to `size`; they are daemons, idle between calls (every call
    handed to them is cancelled or waited for by the thread that handed it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        # the jobs in order, and their count for the threads to wait on (no `queue` import)
        self.jobs: deque[Job[Any]] = deque()
        self.waiting = threading.Semaphore(0)
        self.threads: list[threading.Thread] = []
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, call: Callable[..., T], *args: Any) -> Job[T]:
        job = Job(partial(call, *args) if args else call)
        with self.lock:
            if self.idle:
                self.idle -= 1  # (that thread counts itself idle again after this call)
            elif len(self.threads) < self.size:
                self._start()
        self.jobs.append(job)
        self.waiting.release()
        return job

    def ready(self, count: int) -> bool:
        """Whether `count` threads (at most the size) are running; if not, they are started
        now, idle, and False."""
        count = min(count, self.size)
        with self.lock:
            if len(self.threads) >= count:
                return True
            while len(self.threads) < count:
                self._start()
                self.idle += 1
        return False

    def _start(self) -> None:
        """A thread more (the caller holds the lock)."""
        thread = threading.Thread(target=self._serve, daemon=True,
                                  name=f"svdcodec_{len(self.threads)}")
        self.threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while True:
            self.waiting.acquire()
            job = self.jobs.popleft()
            ran = job.run()
            with self.lock:  # idle before the caller hears of it: its next call comes here
                self.idle += 1
            if ran:
                job.finish()
            del job  # nothing of it held while this thread waits for the next


_pools: dict[int, Pool] = {}
_pools_lock = threading.Lock()
_worker = threading.local()


def _forget_pools() -> None:
    global _pools_lock
    _pools.clear()  # a forked child has none of the parent's threads,
    _pools_lock = threading.Lock()  # and a lock one of them held would stay held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(threads: int) -> Pool:
    """A process-wide pool per size: creating one per call costs as much as a small image's
    band pass."""
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = Pool(threads)
        return _pools[threads]


def band_workers() -> int:
    """Threads run_bands would use here: 1 inside `serial()`, else `workers()`. For callers
    that cut work into one piece per thread: inside serial() one piece does the same work
    with fewer calls."""
    return 1 if getattr(_worker, "serial", False) else workers()


def run_bands(task: Callable[[int], T], count: int, threads: int | None = None) -> list[T]:
    """[task(0), ..., task(count - 1)], in threads when there is more than one band; numpy
    floating-point warnings are off inside (errstate is per thread: callers check overflow
    explicitly); the first error (by index) propagates. A task that calls run_bands takes part
    in its bands itself and offers them to pool threads that are idle (`_shared`)."""
    if count > 1 and not getattr(_worker, "serial", False):  # (workers() is a few calls)
        threads = workers() if threads is None else threads
        if threads > 1:
            if getattr(_worker, "busy", False):
                return _shared(task, count, threads)
            with single_threaded():
                return _shared(task, count, threads)
    # `quiet`: this thread is inside a serial run_bands' errstate, so a nested one (a small
    # encode's passes nest a few dozen) does not enter it again: each costs a context
    # variable's set and reset. No task turns warnings back on around a nested run_bands.
    if getattr(_worker, "quiet", False):
        return [task(i) for i in range(count)]
    _worker.quiet = True
    try:
        with np.errstate(all="ignore"):
            return [task(i) for i in range(count)]
    finally:
        _worker.quiet = False


def pool_ready(threads: int) -> bool:
    """Whether the pool of `threads` has its threads running (`threads` - 1: the caller is the
    other); if not, they start now, idle, and False. For work that is split over threads only
    to finish sooner, and is small (a photo's decode or encode): in a new process a new
    thread's first job costs more than it saves (its memory is all new pages), so the first
    such call runs in the caller while the threads start, for the next ones."""
    return _pool(threads).ready(threads - 1)


def run_jobs(task: Callable[[int], T], count: int) -> list[T]:
    """[task(0), ..., task(count - 1)] for a few independent jobs, each run whole in one
    thread with its own band passes in that thread (`serial`): one hand-off per job, for work
    whose bands are too small to repay handing each over (a small image's planes). The jobs
    are claimed in order by this thread and idle pool threads, as `run_bands`' bands are,
    inside `serial()` too (the caller's own bands stay serial); with one worker, all in the
    calling thread; the first error (by index) propagates."""
    threads = min(workers(), count)
    if threads < 2 or not pool_ready(threads):
        return run_bands(partial(_as_job, task), count)

    def job(i: int) -> T:
        with QuietSerial():
            return _as_job(task, i)
    if getattr(_worker, "busy", False):
        return _shared(job, count, threads)
    with single_threaded():
        return _shared(job, count, threads)


def _as_job(task: Callable[[int], T], i: int) -> T:
    """task(i) as a `run_jobs` job, wherever it runs (`threaded_blas` then leaves BLAS at one
    thread: the same bytes whether the jobs run in threads or not)."""
    before = getattr(_worker, "job", False)
    _worker.job = True
    try:
        return task(i)
    finally:
        _worker.job = before


@contextmanager
def serial(enabled: bool = True) -> Iterator[None]:
    """run_bands in the calling thread only, for the duration: for work too small to repay
    handing bands to other threads (a small image's every band pass)."""
    before = getattr(_worker, "serial", False)
    _worker.serial = before or enabled
    try:
        yield
    finally:
        _worker.serial = before


class QuietSerial:
    """`np.errstate(all="ignore")` and `serial(enabled)` as one context manager of this thread,
    which also counts as `run_bands`' own errstate (`quiet`): a run_bands inside it does not
    enter another. A class, not a generator (`contextlib.contextmanager` makes a helper
    object and steps a generator twice on every use: a small decode enters this once, or
    twice through Pillow). Not re-entrant: one `with` per instance."""

    __slots__ = ("before", "enabled", "errors")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.errors = np.errstate(all="ignore")
        self.before: tuple[bool, bool] = (False, False)

    def __enter__(self) -> None:
        self.errors.__enter__()
        self.before = (getattr(_worker, "serial", False), getattr(_worker, "quiet", False))
        _worker.serial = self.before[0] or self.enabled
        _worker.quiet = True

    def __exit__(self, *exc: object) -> None:
        _worker.serial, _worker.quiet = self.before
        self.errors.__exit__(*exc)


def _quiet(task: Callable[[int], T], i: int) -> T:
    _worker.busy = True
    try:
        with np.errstate(all="ignore"):
            return task(i)
    finally:
        _worker.busy = False


def _shared(task: Callable[[int], T], count: int, threads: int) -> list[T]:
    """This thread claims and runs bands in order, and so does any pool thread that is or
    becomes idle meanwhile (a helper that has not started by the time the bands are all
    claimed is cancelled, so no thread ever waits for a busy pool, and the caller never idles
    while its bands wait in a queue)."""
    claims = itertools.count()
    results: list[Any] = [None] * count
    failures: dict[int, BaseException] = {}

    def drain() -> None:
        busy = getattr(_worker, "busy", False)
        while not failures:
            i = next(claims)  # atomic under the GIL
            if i >= count:
                break
            try:
                results[i] = _quiet(task, i)
            except BaseException as exc:  # noqa: BLE001 (re-raised below, in index order)
                failures[i] = exc
        _worker.busy = busy

    helpers = [_pool(threads).submit(drain) for _ in range(min(threads, count) - 1)]
    drain()
    for helper in helpers:
        if not helper.cancel():
            helper.result()  # started: it finishes the band it claimed
    if failures:
        raise failures[min(failures)]
    return results


class Deferred(Generic[T]):
    """A call that an idle pool thread may start at once, while the thread that asked for it
    goes on with other work; `result()` runs it in the calling thread if no pool thread has
    started it yet (so nothing ever waits for a busy pool), else waits for it. For a long step
    whose inputs are ready before the caller needs its output (`defer`)."""

    def __init__(self, call: Callable[[], T], threads: int) -> None:
        self._call = call
        self._claims = itertools.count()
        # With no pool thread to start it, the call runs in the first result(), and only the
        # thread that made the Deferred asks for it (`defer`'s callers): nothing ever waits,
        # so no Event is made (a small encode makes several)
        self._done = threading.Event() if threads > 1 else None
        self._cancelled = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._started: Job[bool] | None = (_pool(threads).submit(self._run)
                                              if threads > 1 else None)

    def _run(self) -> bool:
        """Run the call here unless another thread has claimed it; whether this one did."""
        if next(self._claims):  # atomic under the GIL
            return False
        busy = getattr(_worker, "busy", False)
        _worker.busy = True  # run_bands inside shares its bands, as in a band of _shared
        try:
            with np.errstate(all="ignore"):
                self._value = self._call()
        except BaseException as exc:  # noqa: BLE001 (re-raised by result(), in its caller)
            self._error = exc
        finally:
            _worker.busy = busy
            if self._done is not None:
                self._done.set()
        return True

    def result(self) -> T:
        """The call's value (its exception raised here), waiting only for a thread that has
        started it."""
        if not self._run():
            assert not self._cancelled, "the call was cancelled"
            if self._done is not None:  # else an earlier result() of this thread ran it
                self._done.wait()  # the thread that claimed it is running it
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        """The result is not needed: no thread starts the call from now (one that has started
        finishes it, unwaited)."""
        if not next(self._claims):
            self._cancelled = True


def defer(call: Callable[[], T]) -> Deferred[T]:
    """`call()` offered to an idle pool thread now (see `Deferred`); in the calling thread,
    at `result()`, with one band thread or inside `serial()` (then only the calling thread
    may ask for the result)."""
    return Deferred(call, band_workers())
