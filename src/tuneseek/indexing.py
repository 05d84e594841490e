"""Indexing many files in parallel, results streamed back in the files' order.

Each :class:`Job` says what to compute for one file: its landmark fingerprint, the
analysis extractors (tags, embeddings) of :mod:`tuneseek.analysis`, or both. Jobs run in
worker processes (decoding and FFTs hold the GIL in places) from :func:`tuneseek.processes.pool`,
which says how they start, how many threads they use and how they end with their parent; any
executor with the same interface (a Ray- or Dask-backed one, for a cluster) can be passed in
instead (:mod:`tuneseek.executors`: Ray). At most :data:`~tuneseek.processes.IN_FLIGHT_PER_WORKER`
files per worker are in flight, and outcomes come back in the jobs' order, so memory stays
bounded however many files there are and the same files make the same catalogue wherever they ran.

SIGINT and SIGTERM stop a run promptly (:func:`run_jobs`): no new file starts, files in flight
get :data:`GRACE_SECONDS` to finish, the workers are ended, and :class:`Interrupted` says how
many files were left out.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from tuneseek import processes
from tuneseek.analysis import Description, describe_file
from tuneseek.errors import TuneseekError, WorkersLost
from tuneseek.fingerprint.extract import FileFingerprint, fingerprint_file
from tuneseek.processes import default_workers

#: After an interrupt, how long files already being computed may take to finish (they are kept).
GRACE_SECONDS = 1.0
#: How often the parent looks for an interrupt while it waits for results.
POLL_SECONDS = 0.2
#: Jobs submitted and not yet committed, per worker, at most: finished ones wait for a slower one before them.
REORDER_PER_WORKER = 8


class Interrupted(KeyboardInterrupt):
    """Indexing stopped by SIGINT or SIGTERM; the files finished before are kept.

    A :class:`KeyboardInterrupt`, so that an interrupted script stops as it would anyway;
    its message says what was kept.
    """

    def __init__(self, committed: int, not_indexed: int, report=None):
        self.committed = committed
        self.not_indexed = not_indexed
        self.report = report  # the interrupted run's AddReport, when Library.add raised it
        super().__init__(f"interrupted: {committed} files committed, {not_indexed} not indexed")


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
        else:
            describe_error = "; ".join(f"{ex}: {why}" for ex, why in description.skipped) or None
    return Outcome(job.path, fingerprint, None, description, describe_error)


class _JobInterrupted(BaseException):
    """Raised by the signal handler inside a job that runs in this process (``workers=1``)."""


class _Stop:
    """SIGINT and SIGTERM, while installed, ask the run to stop instead of killing it.

    The first signal sets :attr:`event` (and, while a job runs in this process, interrupts
    it); a second one raises :class:`KeyboardInterrupt` at once, as without tuneseek.
    Handlers can only be installed from the main thread; elsewhere nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.in_job = False
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        if self.in_job:
            raise _JobInterrupted

    @contextmanager
    def installed(self) -> Iterator[_Stop]:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield self
        finally:
            for sig, old in self._old.items():
                signal.signal(sig, old)


def run_jobs(
    jobs: Iterable[Job | str], *, workers: int | None = None, executor: Executor | None = None
) -> Iterator[Outcome]:
    """Run ``jobs`` (a bare path is a fingerprint job), yielding an :class:`Outcome` per file in the jobs' order.

    ``workers`` (default: the executor's, else all cores) bounds the jobs out at once.

    While it runs (between yields too), SIGINT and SIGTERM stop it: the files in flight get
    :data:`GRACE_SECONDS` to finish and are yielded in order up to the first that did not, the
    others are dropped (never a file after one left out), the workers of a
    pool made here are ended, and :class:`Interrupted` is raised with the number of files not
    run (``committed`` is 0: the caller knows what it kept). A second signal raises
    :class:`KeyboardInterrupt` at once.
    """
    jobs = [j if isinstance(j, Job) else Job(j) for j in jobs]
    workers = workers or getattr(executor, "workers", None) or default_workers()
    stop = _Stop()
    yielded = 0
    with stop.installed():
        if executor is None and workers == 1:
            for job in jobs:
                try:
                    stop.in_job = True
                    if stop.event.is_set():
                        break
                    outcome = _work(job)
                except _JobInterrupted:
                    break
                finally:
                    stop.in_job = False
                yielded += 1
                yield outcome
        else:
            for outcome in _run_pool(jobs, workers, executor, stop.event):
                yielded += 1
                yield outcome
    if stop.event.is_set():
        raise Interrupted(0, len(jobs) - yielded)


def _result(future: Future, job: Job) -> Outcome:
    """The outcome of a finished job. A pool whose workers died says so in one line; a job the executor
    itself failed (a Ray task whose worker died twice) is reported like a file that cannot be read."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkersLost(
            "indexing workers stopped abruptly: killed, out of memory, or started from a script "
            'that calls add() outside `if __name__ == "__main__":` (the workers import the main module)'
        ) from None
    except Exception as e:  # noqa: BLE001 - one file's failure on the executor, reported for that file
        return Outcome(job.path, error=f"its worker failed: {type(e).__name__}: {str(e).splitlines()[0]}")


def _kept(future: Future) -> bool:
    """Whether a job of an interrupted run is yielded: it finished on its own. One cancelled, unfinished, or
    failed on the executor (a Ray worker the same Ctrl-C reached) was not run, nor is any job after it: a
    file after one left out would take that file's place in the catalogue's order."""
    return future.done() and not future.cancelled() and future.exception() is None


def _run_pool(jobs: list[Job], workers: int, executor: Executor | None, stop: threading.Event) -> Iterator[Outcome]:
    """Run ``jobs`` on a pool (or ``executor``) and yield their outcomes in the jobs' order.

    In order, so that the writer commits the same tracks under the same ids whatever ran where
    and how fast (a Ray cluster and this machine's pool write the same catalogue). At most
    :data:`~tuneseek.processes.IN_FLIGHT_PER_WORKER` jobs per worker are out, and finished
    outcomes wait behind a slow one at most :data:`REORDER_PER_WORKER` per worker: memory stays
    bounded, at the cost of idle workers behind a file that takes far longer than the others.
    """
    own = executor is None
    if own:  # the fork server imports what the jobs run, once: the networks' torch when files are described
        preload = ["tuneseek.indexing"] + (
            ["tuneseek.embed.musicnn_extractor"] if any(j.describe for j in jobs) else []
        )
        pool = processes.pool(workers, preload=preload)
    else:
        pool = executor
    out: deque[tuple[Future, Job]] = deque()  # submitted and not yet yielded, in the jobs' order
    todo = iter(jobs)
    try:
        while not stop.is_set():
            running = sum(not f.done() for f, _ in out)
            while running < processes.IN_FLIGHT_PER_WORKER * workers and len(out) < REORDER_PER_WORKER * workers:
                job = next(todo, None)
                if job is None:
                    break
                out.append((pool.submit(_work, job), job))
                running += 1
            if not out:
                break
            wait([out[0][0]], timeout=POLL_SECONDS)
            while out and out[0][0].done() and not stop.is_set():
                yield _result(*out.popleft())
        if out:  # interrupted: the files in flight may finish in a moment; the run keeps an unbroken prefix
            if own:  # a local pool's queued jobs are dropped (an executor's futures may not say which started)
                for f, _ in out:
                    f.cancel()
            wait([f for f, _ in out], timeout=GRACE_SECONDS)
            while out and _kept(out[0][0]):
                yield _result(*out.popleft())
    finally:
        for f, _ in out:
            f.cancel()
        if own:
            if stop.is_set() or out:
                processes.end_workers(pool)
            else:
                pool.shutdown(wait=True, cancel_futures=True)
