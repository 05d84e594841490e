"""Work in worker processes: the one pool that every batch job of tuneseek runs on.

Indexing (:mod:`tuneseek.indexing`), decoding a training set into its cache
(:mod:`tuneseek.train.items`) and computing the musicnn features of text–audio pairs
(:mod:`tuneseek.train.text_audio`) all hand out pure jobs, a path in and a result out, to the
pool :func:`pool` makes, and collect what comes back: in the jobs' order (:func:`in_order`), or
as each finishes (indexing). One policy for all of them:

* **start method**: :data:`START_METHOD`, a fork server where the platform has one (else spawn),
  never a fork of the calling process: that process may have started torch's thread pools, and
  a fork of it can hang in its first parallel region. The fork server imports the modules a
  pool's jobs need once (``preload``: torch and Lightning take seconds to import, in every worker
  otherwise; importing starts no thread pool), and each worker is a fork of it. Training's data
  loaders start the same way (``DataLoader(multiprocessing_context=context(preload=...))``; their
  workers are torch's, which already run one thread each and end with their parent).
* **environment**: a worker sees this process's environment as it is when its pool is made (a fork
  server started by an earlier pool would hand it the one it started with): ``TUNESEEK_MODELS``
  set after the first pool still reaches the next.
* **threads**: each worker runs torch and the BLAS libraries on one thread
  (:data:`ONE_THREAD_ENV` set before torch loads; ``torch.set_num_threads(1)`` where it already
  has). One process per core is the efficient shape for many small networks and FFTs; more
  threads per process only fight over the cores.
* **lifetime**: workers end with the process that made the pool, however it ends (``kill -9``
  included): each watches it (:func:`watch_parent`). Left alone they would wait for work
  forever, and the fork server with them, as a worker holds it open. Workers ignore SIGINT
  (a terminal's Ctrl-C reaches the whole process group): the process that made the pool
  decides how to stop, and ends them (:func:`end_workers`).
* **executor**: every user also takes an ``executor``, anything with the
  :class:`concurrent.futures.Executor` interface (``submit(fn, *args) -> Future``), used
  instead of a pool of its own: a Ray- or Dask-backed executor runs the same jobs on a cluster.

This module is a base layer: it imports nothing of tuneseek but its errors, and not torch.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import TypeVar

from tuneseek.errors import UsageError

__all__ = [
    "START_METHOD",
    "ONE_THREAD_ENV",
    "IN_FLIGHT_PER_WORKER",
    "default_workers",
    "context",
    "pool",
    "end_workers",
    "in_order",
    "watch_parent",
]

#: How worker processes start: a fork server where there is one, else spawn (never fork).
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
#: Set in every worker before torch (or NumPy's BLAS) loads: one thread each.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: Jobs handed out ahead per worker: enough to keep every worker busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2

_preload: list[str] = []  # what this process's fork server is asked to import (see context)

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _wait_for_exit(pid: int) -> None:
    """Return when process ``pid`` has ended (at once if it already has)."""
    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable when the process ends
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        return
    while True:  # elsewhere: ask every half second
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(0.5)


def watch_parent(parent: int) -> None:
    """End this process as soon as process ``parent`` (which made its pool, or launched it) is gone.

    A worker's parent may not be that process (the fork server starts them), so a thread
    waits for ``parent`` itself to exit; where the parent is that process, on Linux, the
    kernel also sends SIGKILL when it dies (``PR_SET_PDEATHSIG``).
    """
    if os.getppid() == parent and os.uname().sysname == "Linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        _wait_for_exit(parent)
        os._exit(1)

    threading.Thread(target=watch, name="tuneseek-parent-watch", daemon=True).start()


def _init_worker(parent: int, environ: dict[str, str]) -> None:
    """Every worker, before its first job: ``parent``'s environment as it was when the pool was made (the
    fork server keeps the one it started with), one thread, SIGINT left to ``parent``, and an end with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in set(os.environ) - set(environ):
        del os.environ[name]
    os.environ.update(environ)
    os.environ.update(ONE_THREAD_ENV)
    torch = sys.modules.get("torch")  # loaded already (preloaded by the fork server): tell it too
    if torch is not None:
        torch.set_num_threads(1)
    watch_parent(parent)


def context(*, preload: Sequence[str] = ()) -> BaseContext:
    """The multiprocessing context that starts workers by :data:`START_METHOD`.

    ``preload``: modules the fork server imports before it forks the first worker (with the main
    module, as by default), so that every worker starts with them. A process has one fork server,
    started by its first pool: it holds what every call asked for until then; the workers of a
    pool that asks for more later import it themselves.
    """
    ctx = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver" and not set(preload) <= set(_preload):
        _preload.extend(m for m in preload if m not in _preload)
        ctx.set_forkserver_preload(["__main__", *_preload])
    return ctx


def pool(workers: int, *, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes under the module's policy: started by :data:`START_METHOD` (from
    a fork server holding ``preload``, see :func:`context`), with this process's environment as it is
    now, one thread each, ending with this process. Shut it down when done (``with pool(n) as p:``),
    or stop it at once with :func:`end_workers`."""
    if workers < 1:
        raise UsageError(f"workers must be 1 or more, not {workers}")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context(preload=preload),
        initializer=_init_worker,
        initargs=(os.getpid(), dict(os.environ)),
    )


def end_workers(executor: ProcessPoolExecutor) -> None:
    """Stop the pool's worker processes now (SIGTERM), jobs in flight included, then the pool."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def in_order(
    function: Callable[[T], R],
    jobs: Iterable[T],
    *,
    workers: int = 1,
    executor: Executor | None = None,
    preload: Sequence[str] = (),
) -> Iterator[R]:
    """``function(job)`` of each job, yielded in the jobs' order.

    Here, one after the other, when ``workers`` is 1 or less and no ``executor`` is given (or there
    is one job only); else on ``executor``, or on a :func:`pool` of ``workers`` made for the call
    (its fork server holding ``preload``),
    at most :data:`IN_FLIGHT_PER_WORKER` jobs per worker (an executor's too: say how many it runs at
    once) handed out ahead of the one awaited, so memory stays bounded however many jobs there are.
    ``function`` and the jobs must pickle (``function`` a module-level function). An exception of
    a job is raised here, as from :func:`map`; the pool made here is ended at once when the caller
    stops early or fails, and shut down in order otherwise.
    """
    jobs = list(jobs)
    if executor is None and (workers <= 1 or len(jobs) <= 1):
        yield from map(function, jobs)
        return
    own = executor is None
    runner = pool(workers, preload=preload) if own else executor
    pending: deque[Future] = deque()
    todo = iter(jobs)
    finished = False
    try:
        for job in todo:
            pending.append(runner.submit(function, job))
            if len(pending) >= IN_FLIGHT_PER_WORKER * max(1, workers):
                break
        while pending:
            result = pending.popleft().result()
            for job in todo:
                pending.append(runner.submit(function, job))
                break
            yield result
        finished = True
    finally:
        for future in pending:
            future.cancel()
        if own:
            if finished:
                runner.shutdown(wait=True)
            else:
                end_workers(runner)
