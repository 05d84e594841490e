"""Where indexing's jobs run: this machine's worker processes, or a Ray cluster.

Indexing hands out pure jobs (a path in, a fingerprint and a description out) to any
:class:`concurrent.futures.Executor` and commits what comes back in one writer, in the jobs'
order (:mod:`tuneseek.indexing`). :func:`open_executor` turns what a person asks for into one:

* ``None`` or ``"local"``: none here; indexing makes its own pool (:func:`tuneseek.processes.pool`);
* ``"ray"``: a Ray instance started on this machine for the run, on its cores;
* ``"ray://HOST:PORT"`` (Ray Client) or ``"ray:auto"`` (the cluster this machine belongs to,
  as ``ray start`` left it): an existing Ray cluster, whose workers decode, fingerprint, tag and
  embed while this process commits. Every node needs tuneseek installed and the files at the same
  paths (a shared mount); a file a worker cannot read is reported like any unreadable file.

:class:`RayExecutor` is a thin adapter: each job a Ray task (one CPU), retried once by Ray if
its worker dies (a node lost, out of memory); a task that fails twice comes back as an error,
which indexing reports for that file alone. Ray is optional (``pip install 'tuneseek[scale]'``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path

from tuneseek.errors import UsageError

#: How often the watchdog of a Ray instance started here notes the processes it would have to end.
WATCH_SECONDS = 1.0
#: What ``--executor`` takes, for messages.
KINDS = "local, ray, ray://HOST:PORT or ray:auto"
#: Environment variables a Ray worker gets from the process that submits the jobs (where the models
#: are, offline or not, and one thread per task).
PASSED_ENV_PREFIXES = ("TUNESEEK_",)


def _ray(purpose: str):
    try:
        import ray
    except ImportError:
        raise UsageError(f"{purpose} needs Ray: pip install 'tuneseek[scale]'") from None
    return ray


class RaySession:
    """Ray for one user of it (indexing's executor, the shards of a landmark index).

    ``address`` None starts a Ray instance on this machine (``cpus``: how many of its cores;
    default all), watched so that its processes end with this one however it ends; otherwise
    it connects to the cluster at ``address`` (``"auto"`` or ``"ray://host:port"``). Where this
    process is already connected, that connection is used. :meth:`close` stops only what this
    session started. ``purpose`` names the user in messages.
    """

    def __init__(self, address: str | None = None, *, cpus: int | None = None, purpose: str = "the ray executor"):
        ray = self.ray = _ray(purpose)
        self._owns = False
        if not ray.is_initialized():
            try:
                with warnings.catch_warnings():  # Ray Client warns of a timeout before raising it: one line says it
                    warnings.simplefilter("ignore")
                    ray.init(
                        address=address or "local",  # "local": a new instance, never one found running
                        num_cpus=cpus if address is None else None,
                        include_dashboard=False,
                        log_to_driver=False,
                        configure_logging=False,
                    )
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = address or "this machine"
                raise UsageError(f"cannot start or reach Ray at {where}: {str(e).splitlines()[0]}") from None
            self._owns = address is None
        self._watchdog = _watch(os.getpid()) if self._owns else None

    def close(self) -> None:
        """Stop the Ray instance this session started (none when it connected to one)."""
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
        if self._watchdog is not None:
            self._watchdog.terminate()
            self._watchdog.wait()
            self._watchdog = None


class RayExecutor(Executor):
    """A :class:`concurrent.futures.Executor` whose jobs are Ray tasks.

    ``address`` None starts a Ray instance on this machine for the executor's life (``cpus``:
    how many of its cores; default all); otherwise it connects to the cluster at ``address``
    (``"auto"`` or ``"ray://host:port"``) and leaves it running at :meth:`shutdown`.
    """

    def __init__(self, address: str | None = None, *, cpus: int | None = None):
        self._session = RaySession(address, cpus=cpus)
        self._ray = self._session.ray
        # the tasks see tuneseek's settings as they are now, as a local pool's workers do
        self._env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIXES)}
        self._tasks: dict[Callable, object] = {}
        self._refs: dict[Future, object] = {}
        self._lock = threading.Lock()

    @property
    def workers(self) -> int:
        """The CPUs of the cluster: how many jobs run at once."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        with self._lock:
            task = self._tasks.get(fn)
            if task is None:
                task = self._tasks[fn] = self._ray.remote(fn).options(
                    num_cpus=1, max_retries=1, runtime_env={"env_vars": self._env}
                )
        ref = task.remote(*args, **kwargs)
        future = ref.future()
        with self._lock:
            self._refs[future] = ref
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._refs.pop(future, None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel the tasks still out when asked (or when not waiting); stop the Ray instance started here."""
        with self._lock:
            outstanding = list(self._refs.values())
        if cancel_futures or not wait:
            for ref in outstanding:
                self._ray.cancel(ref, force=True)
        elif outstanding:
            self._ray.wait(outstanding, num_returns=len(outstanding))
        self._session.close()


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (Linux: /proc), empty where that cannot be read."""
    try:
        kids = {int(k) for t in Path(f"/proc/{pid}/task").iterdir() for k in (t / "children").read_text().split()}
    except OSError:
        return set()
    return kids.union(*(_descendants(k) for k in kids))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie (dead, not yet reaped by its parent) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def watch_ray(driver: int) -> None:
    """Run in a watchdog process: once ``driver`` is gone (``kill -9`` included), end the processes of
    the Ray instance it started that outlived it (Ray's raylet and store go with their driver, but its
    node agents are left running otherwise). Notes them every :data:`WATCH_SECONDS` while it lives."""
    known: set[int] = set()
    while _alive(driver):
        known |= _descendants(driver)
        time.sleep(WATCH_SECONDS)
    for pid in known - {os.getpid()}:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if command.startswith("ray::") or "/ray/" in command:  # Ray's, not another child of the driver
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _watch(driver: int) -> subprocess.Popen | None:
    """Start :func:`watch_ray` for ``driver`` in a process of its own (Linux only)."""
    if not Path(f"/proc/{driver}/task").exists():
        return None
    return subprocess.Popen(
        [sys.executable, "-c", f"from tuneseek.executors import watch_ray; watch_ray({driver})"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # holding none of the driver's pipes: they close when it ends
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C is for the driver, not for its watchdog
    )


def open_executor(spec: str | Executor | None, *, workers: int | None = None) -> Executor | None:
    """The executor ``spec`` names (see the module docstring); an executor given is returned as it is.

    ``workers`` caps the cores a Ray instance started here uses.
    """
    if spec is None or isinstance(spec, Executor):
        return spec
    if spec == "local":
        return None
    if spec == "ray":
        return RayExecutor(cpus=workers)
    if spec == "ray:auto":
        return RayExecutor("auto")
    if spec.startswith("ray://"):
        return RayExecutor(spec)
    raise UsageError(f"unknown executor {spec!r}: use {KINDS}")
