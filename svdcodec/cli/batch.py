"""Several files at once: a process pool over per-file jobs, with a progress line on a terminal.

Each job is a top-level function of the CLI that never raises for bad data and returns a
Result, so one bad file does not stop the batch; a worker that dies costs only its file.
Workers are separate processes (the encoder holds the GIL in places) started with "spawn", each
with one BLAS thread: with one file per core, more BLAS threads only make the workers compete.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, TextIO, TypeVar

from . import safe_io

if TYPE_CHECKING:
    from concurrent.futures import Future

Job = TypeVar("Job")


class Progress:
    """A one-line "[done/total] name" indicator, drawn only on a terminal."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = enabled and total > 1 and stream.isatty()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def step(self, name: str) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total} {name[-40:]}\x1b[K")
            self.stream.flush()


class Result(NamedTuple):
    """What a job reports: success, its message, and notes printed even with --quiet."""

    ok: bool
    message: str
    notes: tuple[str, ...] = ()


#: Test hook: a pool worker whose job name contains this variable's value kills itself with
#: SIGKILL before starting it, as the out-of-memory killer would (never in a serial run).
KILL_HOOK = "SVDCODEC_TEST_KILL_WORKER_ON"


def _start_worker() -> None:
    safe_io.exit_on_signals()


def _call(fn: Callable[[Job], Result], job: Job, name: str) -> Result:
    doomed = os.environ.get(KILL_HOOK)
    if doomed and doomed in name:
        os.kill(os.getpid(), signal.SIGKILL)
    return fn(job)


def _lost(name: str) -> Result:
    return Result(False, f"{name}: the worker process died while handling it (killed, e.g. "
                         "by the out-of-memory killer); nothing was written")


def _pool_pass(fn: Callable[[Job], Result], jobs: Sequence[Job], names: Sequence[str],
               todo: deque[int], size: int, orphans: list[int]) -> Iterator[tuple[int, Result]]:
    """Run jobs `todo` (taken from the left) in a fresh pool of `size` workers, with at most
    `size` in flight so that every submitted job is held by a worker. If a worker dies, the
    pool breaks: the jobs in flight go to `orphans` and the rest stay in `todo`.

    On any exception, ^C or Terminated, the workers are sent SIGTERM (they remove their
    temporary files and exit, `safe_io.exit_on_signals`) before the pool is shut down."""
    # Imported here, not at the top: they cost a one-file command (svdi-info, svdi-decode of
    # one image) a third of its start-up, and only a run of several files starts a pool.
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(size, mp_context=context, initializer=_start_worker)
    try:
        running: dict[Future[Result], int] = {}
        broken = False
        while todo or running:
            while todo and not broken and len(running) < size:
                i = todo.popleft()
                running[pool.submit(_call, fn, jobs[i], names[i])] = i
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    orphans.append(i)
                    continue
                yield i, result
            if broken and not running:
                return
    except BaseException:
        for process in multiprocessing.active_children():
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run(fn: Callable[[Job], Result], jobs: Sequence[Job], workers: int, names: Sequence[str],
        progress: Progress, again: Callable[[Job], Job] | None = None) -> Iterator[Result]:
    """Results of fn over jobs: in order in-process for one worker, else as they complete.

    A pool worker that dies (the out-of-memory killer's SIGKILL) costs only the file it held:
    the jobs it and its pool held are run again (as `again` makes them: a job may have
    finished its work before the pool broke), each alone in a fresh one-worker pool, the
    others continue in a new pool, and a job whose lone worker dies too is reported lost after
    all the other results."""
    if workers <= 1 or len(jobs) <= 1:
        for job, name in zip(jobs, names):
            result = fn(job)
            progress.clear()
            yield result
            progress.step(name)
        progress.clear()
        return
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})  # inherited by the spawned workers only
    try:
        todo, lost = deque(range(len(jobs))), []
        while todo:
            orphans: list[int] = []
            for i, result in _pool_pass(fn, jobs, names, todo, min(workers, len(todo)),
                                        orphans):
                progress.clear()
                yield result
                progress.step(names[i])
            for i in orphans:
                retry = [again(jobs[i]) if again else jobs[i]]
                died: list[int] = []
                for _, result in _pool_pass(fn, retry, names[i:i + 1], deque([0]), 1, died):
                    progress.clear()
                    yield result
                if died:
                    lost.append(i)
                progress.step(names[i])
        progress.clear()
        for i in lost:
            yield _lost(names[i])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        progress.clear()


def progress_for(total: int, quiet: bool) -> Progress:
    return Progress(total, sys.stderr, not quiet)
