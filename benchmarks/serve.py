"""How fast does `tuneseek serve` answer? Identify requests at 1, 4 and 16 concurrent clients, and search.

Starts `tuneseek serve` on a library in a subprocess, waits for ``/ready``, then has N client
threads post 10 s clips to ``/identify`` (each client its own connection, clips taken in turn)
for a fixed number of requests, and reports requests per second and the p50/p95 latency seen by
the clients, over HTTP on this machine. Search is timed warm, one client, with the queries of
``text_search.py``. Needs what ``identify.py --steps accuracy,scale`` leaves in WORK
(``lib-10h`` and its query clips)::

    python benchmarks/serve.py --requests 200
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=REPO / "bench-work")
    ap.add_argument("--library", type=Path, help="the library served (default WORK/lib-10h)")
    ap.add_argument("--requests", type=int, default=200, help="identify requests per concurrency level")
    ap.add_argument("--clients", default="1,4,16", help="concurrency levels (default 1,4,16)")
    ap.add_argument("--port", type=int, default=8799)
    a = ap.parse_args()
    library = a.library or a.work / "lib-10h"
    clips = [p.read_bytes() for p in sorted((a.work / "queries/pt3-seed0/L10-clean/test/sample").rglob("*.wav"))]
    url = f"http://127.0.0.1:{a.port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tuneseek.cli", "--library", str(library), "serve", "--port", str(a.port)],
        stdout=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        t0 = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.perf_counter() - t0 > 120:
                raise SystemExit("the server did not become ready")
            time.sleep(0.2)
        ready = time.perf_counter() - t0
        tracks = httpx.get(f"{url}/stats").json()
        print(
            f"command: `python benchmarks/serve.py --requests {a.requests} --clients {a.clients}`; library "
            f"{library.name}: {tracks['tracks']} tracks, {tracks['audio_hours']:.1f} h; ready {ready:.1f} s after start"
        )
        print(
            f"machine: {os.cpu_count()} cores; server: one `tuneseek serve` process (uvicorn, FastAPI's thread pool)\n"
        )
        print("| concurrent clients | requests | requests/s | p50 ms | p95 ms | max ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        run_clients(url, clips[:4], 1, 4)  # warm: the first decode, the first pages of the index
        for n in (int(x) for x in a.clients.split(",")):
            rps, ms = run_clients(url, clips, n, a.requests)
            print(
                f"| {n} | {len(ms)} | {rps:.1f} | {statistics.median(ms):.1f} | {percentile(ms, 95):.1f} | "
                f"{max(ms):.1f} |"
            )
        with httpx.Client(base_url=url, timeout=60) as http:
            if http.get("/search", params={"q": QUERIES[0]}).status_code == 200:
                ms = []
                for _ in range(10):
                    for q in QUERIES:
                        t = time.perf_counter()
                        http.get("/search", params={"q": q, "k": 10}).raise_for_status()
                        ms.append((time.perf_counter() - t) * 1000)
                print(
                    f"\nsearch, one client, warm: p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 95):.1f} ms "
                    f"({len(ms)} queries)"
                )
            else:
                print("\nsearch: not measured (this library has no tags)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
