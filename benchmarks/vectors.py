"""Vectors: FAISS in memory against Milvus Lite (issue 13), on `similar`-style queries.

    python benchmarks/vectors.py [--sizes 100000,1000000] [--queries 200] [--drift 0.01] [--hnsw 0]

For each size, 200-d vectors clustered like embeddings (as in ``benchmarks/similar.py``) are put
in a :class:`~tuneseek.store.vectors.FaissStore` and in a Milvus Lite collection
(:class:`~tuneseek.store.milvus.MilvusStore`, a local file), both centred by the vectors' mean, and
queried as ``Library.similar`` queries them: one stored vector at a time, its own id excluded,
k = 10. It prints the build time (FAISS: storing and indexing; Milvus: inserting, flushing and the
first search), query latency p50/p95 (one core: BLAS and OpenMP pinned to one thread), and how
many results are identical to FAISS (ids in order) or recall@10 against exact search.

``--drift`` also queries the Milvus collection against a mean moved as by adding that share of
the library again from one cluster (so the stored centre is no longer the mean: candidates are
rescored and the result proved exact, see ``store/milvus.py``), compared with FAISS built for the
moved mean. ``--hnsw N`` builds an HNSW collection of the first N vectors too (Milvus above a million).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_load import ONE_CORE_ENV, cpu_busy_seconds, wait_quiet  # noqa: E402

os.environ.update(ONE_CORE_ENV)

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from tuneseek.store.milvus import MilvusVectors  # noqa: E402
from tuneseek.store.vectors import FaissStore, VectorsSpec  # noqa: E402

K = 10


def clustered(n: int, dim: int = 200, clusters: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in chunks: a million at once would hold float64 copies
        m = min(n, start + 100_000) - start
        out[start : start + m] = centres[rng.integers(clusters, size=m)] + 0.6 * rng.standard_normal((m, dim))
    return out


def timed(store, vectors: np.ndarray, ids: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, list]:
    """Latency (ms) and answers of one query per pick: the stored vector, its own id excluded."""
    ms, found = [], []
    for row in picks:
        t0 = time.perf_counter()
        _, got = store.search(vectors[row], K, exclude=np.array([ids[row]]))
        ms.append((time.perf_counter() - t0) * 1000)
        found.append(list(got[0]))
    return np.array(ms), found


def compare(found: list, truth: list) -> tuple[float, float]:
    """Share of queries answered identically (ids in order), and recall@10."""
    same = np.mean([f == t for f, t in zip(found, truth)])
    recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
    return float(same), float(recall)


def line(name: str, build: float, ms: np.ndarray, same: float | None = None, recall: float | None = None) -> str:
    agreed = "" if same is None else f" | {same:.1%} | {recall:.3f}"
    return f"| {name} | {build:.1f} s | {np.percentile(ms, 50):.2f} ms | {np.percentile(ms, 95):.2f} ms{agreed} |"


def milvus_collection(where: Path, vectors: np.ndarray, ids: np.ndarray, centre: np.ndarray, expected: int):
    spec = VectorsSpec("milvus", str(where / "vectors.db"), "bench")
    client = MilvusVectors(spec, where)
    t0 = time.perf_counter()
    store = client.create("bench", "segment", dim=vectors.shape[1], centre=centre, expected=expected)
    norms = []
    for start in range(0, len(ids), 50_000):
        chunk = vectors[start : start + 50_000]
        store.upsert(ids[start : start + 50_000], chunk)
        norms.append(np.linalg.norm(chunk - centre, axis=1))
    store = client.seal(store, float(np.median(np.concatenate(norms))))
    store.search(vectors[0], K)
    return client, store, time.perf_counter() - t0


def run(n: int, queries: int, drift: float, hnsw: int, where: Path) -> None:
    vectors = clustered(n)
    ids = np.arange(1, n + 1, dtype=np.int64) << 20  # segment-like ids, as the library gives them
    centre = vectors.mean(axis=0)
    picks = np.random.default_rng(1).choice(n, queries, replace=False)
    print(f"\n{n:,} vectors of 200 dimensions; {queries} queries, k = {K}, own id excluded", flush=True)
    print("| store | build | p50 | p95 | identical to FAISS | recall@10 |\n| --- | --- | --- | --- | --- | --- |")

    wait_quiet()
    busy = cpu_busy_seconds()
    t0 = time.perf_counter()
    faiss_store = FaissStore(vectors.shape[1], centre=centre)
    faiss_store.upsert(ids, vectors)
    faiss_store.search(vectors[0], K)
    build = time.perf_counter() - t0
    ms, truth = timed(faiss_store, vectors, ids, picks)
    print(line("FAISS, exact (IndexFlatIP)", build, ms), flush=True)
    del faiss_store

    client, store, build = milvus_collection(where / f"flat{n}", vectors, ids, centre, n)
    try:
        ms, found = timed(store, vectors, ids, picks)
        print(line(f"Milvus Lite, {store.index}", build, ms, *compare(found, truth)), flush=True)
        if drift:
            rng = np.random.default_rng(2)
            extra = vectors[rng.integers(n)] + 0.6 * rng.standard_normal((int(drift * n), vectors.shape[1]))
            moved = ((centre.astype(np.float64) * n + extra.sum(axis=0)) / (n + len(extra))).astype(np.float32)
            shifted = FaissStore(vectors.shape[1], centre=moved)
            shifted.upsert(ids, vectors)
            _, truth_moved = timed(shifted, vectors, ids, picks)
            del shifted
            delta = float(np.linalg.norm(moved - centre))
            ms, found = timed(store.at(moved), vectors, ids, picks)
            name = f"Milvus Lite, {store.index}, mean moved {delta / store.typical_norm:.2%} of a vector's length"
            print(line(name, 0.0, ms, *compare(found, truth_moved)), flush=True)
    finally:
        client.drop(store.name)
        client.close()
    if hnsw:
        m = min(hnsw, n)
        exact = FaissStore(vectors.shape[1], centre=centre)
        exact.upsert(ids[:m], vectors[:m])
        inside = picks[picks < m]
        _, truth_hnsw = timed(exact, vectors, ids, inside)
        del exact
        client, store, build = milvus_collection(where / f"hnsw{n}", vectors[:m], ids[:m], centre, 2 * 10**6)
        try:
            ms, found = timed(store, vectors, ids, inside)
            print(line(f"Milvus Lite, {store.index}, first {m:,}", build, ms, *compare(found, truth_hnsw)), flush=True)
        finally:
            client.drop(store.name)
            client.close()
    others = cpu_busy_seconds() - busy
    print(f"(CPU-seconds used by all processes during this size: {others:.0f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of vectors")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--drift", type=float, default=0.01, help="share of the library added to move the mean (0: not)")
    ap.add_argument("--hnsw", type=int, default=0, help="also an HNSW collection of this many vectors (0: not)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuneseek-vectors-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            (Path(tmp) / f"flat{n}").mkdir()
            (Path(tmp) / f"hnsw{n}").mkdir()
            run(n, args.queries, args.drift, args.hnsw, Path(tmp))


if __name__ == "__main__":
    main()
