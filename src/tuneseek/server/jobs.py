"""Long work behind the HTTP API: one job at a time in a background thread, its progress readable by id.

Adding a folder can take minutes; a request that waited for it would time out. A write endpoint
starts a :class:`Job` and answers 202 at once with its id; ``GET /jobs/{id}`` says how far it has
come and, at the end, what it did (the :class:`~tuneseek.results.AddReport`) or why it failed.
Jobs run one after another (the library has one writer); queries keep answering meanwhile.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tuneseek.errors import TuneseekError


@dataclass
class Job:
    """One piece of long work and how far it has come."""

    id: int
    kind: str
    state: str = "queued"  # queued, running, done, failed
    done: int = 0  # files processed
    total: int | None = None  # files to process, once known
    result: dict | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self) -> dict:
        with self.lock:
            return {
                "job": self.id,
                "kind": self.kind,
                "state": self.state,
                "done": self.done,
                "total": self.total,
                "result": self.result,
                "error": self.error,
            }


class Jobs:
    """The jobs of one server, run in order on one thread."""

    def __init__(self):
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneseek-job")

    def start(self, kind: str, work: Callable[[Job], dict]) -> Job:
        """Queue ``work(job)``, which reports progress on ``job`` and returns the result's ``to_dict()``."""
        job = Job(next(self._ids), kind)
        self._jobs[job.id] = job

        def run() -> None:
            with job.lock:
                job.state = "running"
            try:
                result = work(job)
            except TuneseekError as e:
                with job.lock:
                    job.state, job.error = "failed", str(e)
            except Exception as e:  # noqa: BLE001 - a job's failure is reported on the job, never lost
                with job.lock:
                    job.state, job.error = "failed", f"internal error: {type(e).__name__}"
            else:
                with job.lock:
                    job.state, job.result = "done", result

        self._runner.submit(run)
        return job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def close(self) -> None:
        """Wait for the running job; drop the queued ones."""
        self._runner.shutdown(wait=True, cancel_futures=True)
