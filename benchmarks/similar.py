"""Similarity search speed and recall on synthetic vectors (for "What else sounds like this").

    python benchmarks/similar.py [--tracks 10000] [--ivf 200000]

Times a 10-nearest query from a library track (exact FAISS, one thread) at the library size
given, and the recall@10 and speed of the inverted-file index against exact search at a
larger size (forced with a lower exact limit). Vectors: 200-d, clustered like embeddings.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from tuneseek.store.vectors import VectorIndex


def clustered(n: int, dim: int = 200, clusters: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(clusters, size=n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)


def timed_queries(index: VectorIndex, vectors: np.ndarray, ids: np.ndarray, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    index.search(vectors[:1], k=10)  # build the FAISS index outside the timing
    times = []
    for row in rng.choice(len(ids), n, replace=False):
        t0 = time.perf_counter()
        index.search(vectors[row], k=10, exclude=[ids[row]])
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=10_000)
    ap.add_argument("--ivf", type=int, default=200_000, help="size at which to compare IVF with exact search")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)

    vectors = clustered(args.tracks)
    ids = np.arange(len(vectors))
    index = VectorIndex(200)
    index.add(ids, vectors)
    ms = timed_queries(index, vectors, ids)
    print(f"- {args.tracks} tracks, exact: query from a track, k=10: mean {ms.mean():.2f} ms, "
          f"p95 {np.percentile(ms, 95):.2f} ms (one thread)")

    big = clustered(args.ivf, seed=2)
    exact, ivf = VectorIndex(200), VectorIndex(200, exact_limit=args.ivf // 10)
    for ix in (exact, ivf):
        ix.add(np.arange(len(big)), big)
    queries = clustered(200, seed=3)
    t0 = time.perf_counter()
    ivf.search(queries[:1], k=10)
    build = time.perf_counter() - t0
    _, truth = exact.search(queries, k=10)
    _, found = ivf.search(queries, k=10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    ms_exact = timed_queries(exact, big, np.arange(len(big)), 50)
    ms_ivf = timed_queries(ivf, big, np.arange(len(big)), 50)
    print(f"- {args.ivf} vectors: IVF recall@10 against exact {recall:.3f}; query mean {ms_ivf.mean():.2f} ms "
          f"(exact {ms_exact.mean():.2f} ms); IVF build {build:.1f} s")


if __name__ == "__main__":
    main()
