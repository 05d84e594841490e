"""The queries an upload asks (which track is this clip, what sounds like it), run where the cores are.

A query is seconds of NumPy between Python steps: threads of one process share one interpreter
lock, so a second core gained a single-process server only 1.2x. :class:`Queries` with
``workers`` > 0 runs them in that many worker processes (:func:`tuneseek.processes.pool`: a fork
server, workers that end with the server), each holding the library open: the memory-mapped
index is shared by the operating system, and each worker sees new tracks as any reader does.
The server process keeps the HTTP parsing, the jobs and the writes. With ``workers=0`` the
queries run in the server's own threads (tests, one-core machines).

What crosses between processes is a path in and the result's ``to_dict()`` out; an error
tuneseek raised comes back as a :class:`~tuneseek.server.problems.Problem` (its status and one
line), as it would in process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from tuneseek import processes
from tuneseek.errors import AudioError, TuneseekError
from tuneseek.library import Library
from tuneseek.server.problems import Problem, status_of

_opened: dict[str, Library] = {}  # in a worker process: the library it serves, opened at its first query


def identify(library: Library, path: str, name: str, top: int, engine: str | None) -> dict:
    """The matches of the clip at ``path`` (the client's ``name``) by ``engine``, as ``POST /identify`` answers."""
    with told_as(name):
        return {"matches": [m.to_dict() for m in library.candidates(path, k=top, engine=engine)]}


def similar(library: Library, path: str, name: str, k: int, space: str) -> dict:
    """The tracks that sound like the clip at ``path``, as ``POST /similar`` answers."""
    with told_as(name):
        return {"results": [s.to_dict() for s in library.similar(path, k=k, space=space)]}


def warm(library: Library) -> None:
    """Load what a worker's queries read: no text model, as search runs in the server's process."""
    library.warm(text_model=False)


@contextmanager
def told_as(name: str) -> Iterator[None]:
    """Audio errors raised inside name the client's file ``name``, not the server's temporary copy."""
    try:
        yield
    except AudioError as e:
        raise AudioError(name, e.reason) from None


def _in_worker(root: str, query: Callable, *args):
    """Run ``query(library, *args)`` in a worker; an error tuneseek raised comes back as a value."""
    library = _opened.get(root)
    if library is None:
        library = _opened[root] = Library.open(root, create=False)
    try:
        return query(library, *args)
    except TuneseekError as e:
        return Problem(status_of(e), str(e))


class Queries:
    """Runs the query functions of this module for one library: in ``workers`` processes, or here."""

    def __init__(self, library: Library, *, workers: int = 0):
        self.library = library
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = processes.pool(self.workers, preload=["tuneseek.server.queries"])
            return self._pool

    def run(self, query: Callable, *args):
        """``query(library, *args)``; :class:`Problem` for any error tuneseek raised."""
        if self.workers == 0:
            try:
                return query(self.library, *args)
            except TuneseekError as e:
                raise Problem(status_of(e), str(e)) from None
        pool = self._executor()
        try:
            answer = pool.submit(_in_worker, str(Path(self.library.root)), query, *args).result()
        except BrokenProcessPool:
            with self._lock:  # a worker died (killed, out of memory): the next query starts a new pool
                if self._pool is pool:
                    self._pool = None
            processes.end_workers(pool)
            raise Problem(503, "a query worker stopped; ask again") from None
        if isinstance(answer, Problem):
            raise answer
        return answer

    def warm(self) -> None:
        """Load the index and models where each query runs: here, and (clips) in every worker."""
        self.library.warm(clip_models=self.workers == 0)
        if self.workers:
            pool = self._executor()
            for future in [pool.submit(_in_worker, str(self.library.root), warm) for _ in range(self.workers)]:
                answer = future.result()
                if isinstance(answer, Problem):
                    raise TuneseekError(answer.message)

    def close(self) -> None:
        """Stop the workers (the server has stopped taking requests: none is in flight)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
