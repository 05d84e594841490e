"""Similarity search speed and recall on synthetic vectors (for "What else sounds like this").

    python benchmarks/similar.py [--tracks 10000] [--segments 65] [--ivf 200000]

Times a 10-nearest query from a library track (exact FAISS, one thread) at the library size
given, the same through ``Library.similar`` on a library of that many tracks whose catalogue
holds synthetic vectors (a 4-minute track has 65 segments of 3.7 s), and the recall@10 and
speed of the inverted-file index against exact search at a larger size (forced with a lower
exact limit). Vectors: 200-d, clustered like embeddings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from tuneseek.analysis import SEGMENT_HOP, SEGMENT_WINDOW, SPACE
from tuneseek.library import Library
from tuneseek.store.catalog import Catalog
from tuneseek.store.vectors import FaissStore


def clustered(n: int, dim: int = 200, clusters: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(clusters, size=n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)


def timed_queries(index: FaissStore, vectors: np.ndarray, ids: np.ndarray, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    index.search(vectors[:1], k=10)  # build the FAISS index outside the timing
    times = []
    for row in rng.choice(len(ids), n, replace=False):
        t0 = time.perf_counter()
        index.search(vectors[row], k=10, exclude=[ids[row]])
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000


def library_queries(n_tracks: int, segments: int) -> None:
    """``Library.similar`` from a track, and the segment search behind clip queries, on a synthetic library."""
    with tempfile.TemporaryDirectory(prefix="tuneseek-bench-") as tmp:
        t0 = time.perf_counter()
        Library.open(Path(tmp) / "lib").close()
        # vectors written straight into the catalogue (no audio, no musicnn): a library of any size in seconds
        catalog = Catalog(Path(tmp) / "lib", create=False)
        centres = clustered(n_tracks, seed=4)
        rng = np.random.default_rng(5)
        with catalog.transaction():
            for i, centre in enumerate(centres):
                fields = dict(
                    path=f"/music/{i}.flac",
                    content_hash=f"{i:032x}",
                    size=1,
                    mtime_ns=0,
                    duration=240.0,
                    sample_rate=44100,
                    channels=2,
                    title=None,
                    artist=None,
                )
                track_id = catalog.insert_track(fields)
                segs = centre + 0.3 * rng.standard_normal((segments, len(centre))).astype(np.float32)
                catalog.set_embedding(track_id, SPACE, SEGMENT_WINDOW, SEGMENT_HOP, segs.mean(axis=0), segs)
        catalog.close()
        made = time.perf_counter() - t0
        with Library.open(Path(tmp) / "lib") as lib:
            t0 = time.perf_counter()
            lib.similar(1, k=10)
            cold = time.perf_counter() - t0
            picks = rng.choice(np.arange(1, n_tracks + 1), 200, replace=False)
            ms = []
            for track_id in picks:
                t0 = time.perf_counter()
                lib.similar(int(track_id), k=10)
                ms.append((time.perf_counter() - t0) * 1000)
            ms = np.array(ms)
            print(
                f"- `Library.similar(track, k=10)` on a library of {n_tracks} tracks: mean {ms.mean():.2f} ms, "
                f"p95 {np.percentile(ms, 95):.2f} ms warm; the first query {cold * 1000:.0f} ms (reads the track "
                f"vectors from the catalogue and builds the index); library made in {made:.0f} s"
            )
            space = lib._spaces.get(SPACE)  # the space behind similar(), to time its segment search alone
            t0 = time.perf_counter()
            _ = space.segments  # built here, to time the build alone
            build = time.perf_counter() - t0
            queries = centres[picks - 1] + 0.3 * rng.standard_normal((len(picks), centres.shape[1])).astype(np.float32)
            ms = []
            for q in queries:
                t0 = time.perf_counter()
                space.by_segment(q, 10, set())
                ms.append((time.perf_counter() - t0) * 1000)
            ms = np.array(ms)
            print(
                f"- clip queries, search over {n_tracks * segments:,} segment vectors (network time not included): "
                f"mean {ms.mean():.1f} ms, p95 {np.percentile(ms, 95):.1f} ms; loading the segment index "
                f"{build:.1f} s on the first clip query"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=10_000)
    ap.add_argument("--segments", type=int, default=65, help="3.7 s segments per track (65: 4 minutes)")
    ap.add_argument("--ivf", type=int, default=200_000, help="size at which to compare IVF with exact search")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)

    vectors = clustered(args.tracks)
    ids = np.arange(len(vectors))
    index = FaissStore(200)
    index.upsert(ids, vectors)
    ms = timed_queries(index, vectors, ids)
    print(
        f"- {args.tracks} tracks, exact: query from a track, k=10: mean {ms.mean():.2f} ms, "
        f"p95 {np.percentile(ms, 95):.2f} ms (one thread)"
    )

    library_queries(args.tracks, args.segments)

    big = clustered(args.ivf, seed=2)
    exact, ivf = FaissStore(200), FaissStore(200, exact_limit=args.ivf // 10)
    for ix in (exact, ivf):
        ix.upsert(np.arange(len(big)), big)
    queries = clustered(200, seed=3)
    t0 = time.perf_counter()
    ivf.search(queries[:1], k=10)
    build = time.perf_counter() - t0
    _, truth = exact.search(queries, k=10)
    _, found = ivf.search(queries, k=10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
    ms_exact = timed_queries(exact, big, np.arange(len(big)), 50)
    ms_ivf = timed_queries(ivf, big, np.arange(len(big)), 50)
    print(
        f"- {args.ivf} vectors: IVF recall@10 against exact {recall:.3f}; query mean {ms_ivf.mean():.2f} ms "
        f"(exact {ms_exact.mean():.2f} ms); IVF build {build:.1f} s"
    )


if __name__ == "__main__":
    main()
