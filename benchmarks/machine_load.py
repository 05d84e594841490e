"""The other load on a shared benchmark machine: how busy its cores are, and waiting for a quiet moment.

The benchmark machine may be shared (tests of another checkout, another benchmark): timings are
taken when it is quiet where possible, and the CPU that others used during each timed run is
recorded beside it.
"""

from __future__ import annotations

import os
import sys
import time

#: Set in a process before NumPy (or torch) loads: its BLAS and OpenMP run one thread, as on one core.
ONE_CORE_ENV = {
    k: "1"
    for k in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    )
}


def cpu_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait: float = 120.0, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` cores over 2 s;
    returns the seconds waited (0 at once when ``max_wait`` is 0)."""
    t0 = time.perf_counter()
    while max_wait > 0:
        b0 = cpu_busy_seconds()
        time.sleep(2.0)
        busy = (cpu_busy_seconds() - b0) / 2.0
        waited = time.perf_counter() - t0
        if busy < threshold or waited >= max_wait:
            if waited > 2.5:
                print(
                    f"  waited {waited:.0f} s for the machine to be quiet (others: {busy:.2f} cores)",
                    file=sys.stderr,
                    flush=True,
                )
            break
    return time.perf_counter() - t0
