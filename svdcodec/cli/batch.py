"""Several files at once: a process pool over per-file jobs, with a progress line on a terminal.

Each job is a top-level function of the CLI that never raises for bad data and returns
(ok, message), so one bad file does not stop the batch. Workers are separate processes (the
encoder holds the GIL in places) started with "spawn", each with one BLAS thread: with one file
per core, more BLAS threads only make the workers compete.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TextIO, TypeVar

Job = TypeVar("Job")
Result = tuple[bool, str]


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


def run(fn: Callable[[Job], Result], jobs: Sequence[Job], workers: int, names: Sequence[str],
        progress: Progress) -> Iterator[Result]:
    """Results of fn over jobs: in order in-process for one worker, else as they complete."""
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
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            futures: dict[Future[Result], str] = {pool.submit(fn, job): name
                                                  for job, name in zip(jobs, names)}
            for future in as_completed(futures):
                progress.clear()
                yield future.result()
                progress.step(futures[future])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        progress.clear()


def progress_for(total: int, quiet: bool) -> Progress:
    return Progress(total, sys.stderr, not quiet)
