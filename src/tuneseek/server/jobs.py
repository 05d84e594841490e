"""Long work behind the HTTP API, in background threads, its progress readable by id.

Adding a folder or monitoring an hour-long recording takes minutes; a request that waited for it
would time out. The endpoint starts a :class:`Job` and answers 202 at once with its id;
``GET /jobs/{id}`` says how far it has come and, at the end, what it did (the result's
``to_dict()``) or why it failed. Writing jobs run one after another (the library has one
writer); reading jobs (monitoring) run beside them, one at a time, so that a long add does not
hold them up and two hour-long recordings do not share the two cores. Queries keep answering
meanwhile. The last :data:`KEPT` jobs are remembered.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tuneseek.errors import TuneseekError

#: Finished jobs remembered (the oldest are forgotten first).
KEPT = 1000


@dataclass
class Job:
    """One piece of long work and how far it has come."""

    id: int
    kind: str
    state: str = "queued"  # queued, running, done, failed
    unit: str = "files"  # what done and total count: files added, or seconds of a recording monitored
    done: int = 0
    total: int | None = None  # once known
    result: dict | None = None
    error: str | None = None
    cleanup: Callable[[], None] | None = field(default=None, repr=False)  # run once, whether the work ran or not
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self) -> dict:
        with self.lock:
            return {
                "job": self.id,
                "kind": self.kind,
                "state": self.state,
                "unit": self.unit,
                "done": self.done,
                "total": self.total,
                "result": self.result,
                "error": self.error,
            }


class Jobs:
    """The jobs of one server: the writing ones in order on one thread, the reading ones on another."""

    def __init__(self):
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._runners = {
            writes: ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"tuneseek-job-{'write' if writes else 'read'}"
            )
            for writes in (True, False)
        }

    def start(
        self,
        kind: str,
        work: Callable[[Job], dict],
        *,
        unit: str = "files",
        writes: bool = True,
        cleanup: Callable[[], None] | None = None,
    ) -> Job:
        """Queue ``work(job)``, which reports progress on ``job`` (in ``unit``) and returns the result's
        ``to_dict()``; ``writes=False`` for work that only reads the library. ``cleanup()`` runs after
        the work, or at :meth:`close` for a job that never ran (deleting an uploaded file)."""
        with self._lock:
            job = Job(next(self._ids), kind, unit=unit, cleanup=cleanup)
            self._jobs[job.id] = job
            for old in [i for i, j in self._jobs.items() if j.state in ("done", "failed")][: -KEPT or None]:
                del self._jobs[old]

        def run() -> None:
            with job.lock:
                job.state = "running"
            result, error = None, None
            try:
                result = work(job)
            except TuneseekError as e:
                error = str(e)
            except Exception as e:  # noqa: BLE001 - a job's failure is reported on the job, never lost
                error = f"internal error: {type(e).__name__}"
            finally:
                _clean(job)  # before the job says it has ended: a client reading "done" finds it done
            with job.lock:
                job.state, job.result, job.error = ("failed" if error else "done"), result, error

        self._runners[writes].submit(run)
        return job

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def close(self) -> None:
        """Wait for the running jobs; drop the queued ones."""
        for runner in self._runners.values():
            runner.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for job in self._jobs.values():
                _clean(job)


def _clean(job: Job) -> None:
    """Run the job's cleanup, once."""
    with job.lock:
        cleanup, job.cleanup = job.cleanup, None
    if cleanup is not None:
        cleanup()
