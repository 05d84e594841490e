"""How fast does `tuneseek serve` answer? Identify requests at 1, 4 and 16 concurrent clients, and search.

Starts `tuneseek serve` (with each number of query worker processes asked) on a library in a
subprocess, waits for ``/ready``, then has N client
threads post 10 s clips to ``/identify`` (each client its own connection, clips taken in turn)
for a fixed number of requests, and reports requests per second and the p50/p95 latency seen by
the clients, over HTTP on this machine. Search is timed warm, one client, with the queries of
``text_search.py``. Needs what ``identify.py --steps accuracy,scale`` leaves in WORK
(``lib-10h`` and its query clips)::

    python benchmarks/serve.py --requests 200 --workers 0,2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from code_snapshot import REPO

QUERIES = ["calm solo piano", "heavy rock guitar", "dark ambient drone with slow strings", "no vocals", "fast drums"]


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_clients(url: str, clips: list[bytes], clients: int, requests: int) -> tuple[float, list[float]]:
    """``(requests per second, latencies in ms)`` of ``requests`` identify calls shared by ``clients`` threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in counter:
                t = time.perf_counter()
                r = http.post("/identify", files={"file": ("clip.wav", clips[i % len(clips)], "audio/wav")})
                r.raise_for_status()
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return requests / (time.perf_counter() - t0), latencies


def started(library: Path, port: int, workers: int) -> tuple[subprocess.Popen, float]:
    """A `tuneseek serve` process on ``library`` with ``workers`` query workers, and seconds until ``/ready``."""
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tuneseek.cli", "--library", str(library), "serve", "--port", str(port)]
        + ["--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    t0 = time.perf_counter()
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return server, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.perf_counter() - t0 > 120:
            server.terminate()
            raise SystemExit("the server did not become ready")
        time.sleep(0.2)


def search_latency(url: str) -> str:
    """One client's warm search latency over the queries, or why it was not measured."""
    with httpx.Client(base_url=url, timeout=60) as http:
        if http.get("/search", params={"q": QUERIES[0]}).status_code != 200:
            return "not measured (this library has no tags)"
        ms = []
        for _ in range(10):
            for q in QUERIES:
                t = time.perf_counter()
                http.get("/search", params={"q": q, "k": 10}).raise_for_status()
                ms.append((time.perf_counter() - t) * 1000)
    return f"p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 95):.1f} ms ({len(ms)} queries)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=REPO / "bench-work")
    ap.add_argument("--library", type=Path, help="the library served (default WORK/lib-10h)")
    ap.add_argument("--requests", type=int, default=200, help="identify requests per concurrency level")
    ap.add_argument("--clients", default="1,4,16", help="concurrency levels (default 1,4,16)")
    ap.add_argument("--workers", default="0,2", help="query worker processes of the server, each in turn (default 0,2)")
    ap.add_argument("--port", type=int, default=8799)
    a = ap.parse_args()
    library = a.library or a.work / "lib-10h"
    clips = [p.read_bytes() for p in sorted((a.work / "queries/pt3-seed0/L10-clean/test/sample").rglob("*.wav"))]
    url = f"http://127.0.0.1:{a.port}"
    print(
        f"command: `python benchmarks/serve.py --requests {a.requests} --clients {a.clients} --workers {a.workers}"
        + (f" --library {a.library}" if a.library else "")
        + f"`; machine: {os.cpu_count()} cores\n"
    )
    print("| query workers | concurrent clients | requests | requests/s | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    notes = []
    for workers in (int(w) for w in a.workers.split(",")):
        server, ready = started(library, a.port, workers)
        try:
            stats = httpx.get(f"{url}/stats").json()
            run_clients(url, clips[:8], 2, 8)  # warm: the first decode, the first pages of the index
            for n in (int(x) for x in a.clients.split(",")):
                rps, ms = run_clients(url, clips, n, a.requests)
                print(
                    f"| {workers} | {n} | {len(ms)} | {rps:.1f} | {statistics.median(ms):.1f} | "
                    f"{percentile(ms, 95):.1f} | {max(ms):.1f} |"
                )
            notes.append(
                f"{workers} query workers: {library.name} ({stats['tracks']} tracks, {stats['audio_hours']:.1f} h) "
                f"ready {ready:.1f} s after start; search, one client, warm: {search_latency(url)}"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print()
    print("\n".join(f"- {n}" for n in notes))


if __name__ == "__main__":
    main()
