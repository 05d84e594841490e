"""Indexing many files in parallel, results streamed back in completion order.

Each :class:`Job` says what to compute for one file: its landmark fingerprint, the
analysis extractors (tags, embeddings) of :mod:`tuneseek.analysis`, or both. Workers are
separate processes (decoding and FFTs hold the GIL in places) fed through
:class:`concurrent.futures.ProcessPoolExecutor`; any executor with the same interface (a
Ray- or Dask-backed one, for a cluster) can be passed in instead. At most a few files per
worker are in flight, so memory stays bounded however many files there are.

Jobs that run a network use one torch thread per worker process (one process per core is
the efficient shape for batch inference on CPUs) and fresh processes from a fork server,
never forks of a parent that may already have started torch's thread pools.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from dataclasses import dataclass

from tuneseek.analysis import Description, describe_file
from tuneseek.errors import TuneseekError
from tuneseek.fingerprint.extract import FileFingerprint, fingerprint_file


@dataclass(frozen=True)
class Job:
    """What to compute for one file."""

    path: str
    fingerprint: bool = True
    describe: tuple[str, ...] = ()  # analysis extractors to run (see tuneseek.analysis)
    trained: tuple[tuple[str, str], ...] = ()  # (extractor, run folder) of the trained models among them


@dataclass(frozen=True)
class Outcome:
    """One file's results, or the one-line reasons they failed."""

    path: str
    fingerprint: FileFingerprint | None = None
    error: str | None = None  # the file could not be fingerprinted: it stays out of the library
    description: Description | None = None
    describe_error: str | None = None  # tags/embeddings failed; the landmarks, if any, still count


def _reason(e: BaseException) -> str:
    if isinstance(e, TuneseekError):
        return getattr(e, "reason", None) or str(e)
    if isinstance(e, MemoryError):
        return "out of memory while decoding"
    return f"unexpected {type(e).__name__}: {e}"


def _work(job: Job) -> Outcome:
    fingerprint = description = describe_error = None
    if job.fingerprint:
        try:
            fingerprint = fingerprint_file(job.path)
        except Exception as e:  # a decoder bug must cost one file, not the whole run
            return Outcome(job.path, error=_reason(e))
    if job.describe:
        try:
            description = describe_file(job.path, job.describe, trained=dict(job.trained))
        except Exception as e:
            describe_error = _reason(e)
    return Outcome(job.path, fingerprint, None, description, describe_error)


def _one_thread_per_process() -> None:
    """Pool initializer for network jobs: torch (imported later, in the job) uses one thread."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_jobs(jobs: Iterable[Job | str], workers: int | None = None, executor: Executor | None = None) -> Iterator[Outcome]:
    """Run ``jobs`` (a bare path is a fingerprint job), yielding an :class:`Outcome` per file as each completes."""
    jobs = [j if isinstance(j, Job) else Job(j) for j in jobs]
    workers = workers or default_workers()
    if executor is None and workers == 1:
        yield from map(_work, jobs)
        return
    own = executor is None
    if own:
        heavy = any(j.describe for j in jobs)
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver") if heavy else None,
            initializer=_one_thread_per_process if heavy else None,
        )
    else:
        pool = executor
    pending: set = set()
    try:
        for job in jobs:
            pending.add(pool.submit(_work, job))
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
