"""Fingerprinting many files in parallel, results streamed back in completion order.

Workers are separate processes (decoding and FFTs hold the GIL in places) fed
through :class:`concurrent.futures.ProcessPoolExecutor`; any executor with the
same interface (a Ray- or Dask-backed one, for a cluster) can be passed in
instead. At most a few files per worker are in flight, so memory stays bounded
however many files there are.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from dataclasses import dataclass

from tuneseek.errors import TuneseekError
from tuneseek.fingerprint.extract import FileFingerprint, fingerprint_file


@dataclass(frozen=True)
class Outcome:
    """One file's result: a fingerprint, or the one-line reason it failed."""

    path: str
    fingerprint: FileFingerprint | None = None
    error: str | None = None


def _work(path: str) -> Outcome:
    try:
        return Outcome(path, fingerprint=fingerprint_file(path))
    except TuneseekError as e:
        return Outcome(path, error=getattr(e, "reason", str(e)))
    except MemoryError:
        return Outcome(path, error="out of memory while decoding")
    except Exception as e:  # a decoder bug must cost one file, not the whole run
        return Outcome(path, error=f"unexpected {type(e).__name__}: {e}")


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fingerprint_all(paths: Iterable[str], workers: int | None = None, executor: Executor | None = None) -> Iterator[Outcome]:
    """Fingerprint ``paths``, yielding an :class:`Outcome` per file as each completes."""
    workers = workers or default_workers()
    if executor is None and workers == 1:
        yield from map(_work, paths)
        return
    own = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=workers)
    pending: set = set()
    try:
        for path in paths:
            pending.add(pool.submit(_work, path))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    finally:
        for f in pending:
            f.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
