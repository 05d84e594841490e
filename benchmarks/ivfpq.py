#!/usr/bin/env python3
"""Compressed segment vectors for the learned fingerprint (issue 15): IVF-PQ against exact search.

    taskset -c 1 python benchmarks/ivfpq.py                       # everything, about 40 minutes on one core
    taskset -c 1 python benchmarks/ivfpq.py --steps recall --stores exact,ivfpq

The library is the benchmark's (``bench-work/learned/fp-v2/library``: Wesnoth and the muldjord songs with
the learned fingerprint fp-v2, 2.3 audio hours, about 17 000 audible segments), read only. ``pad`` copies
it (``WORK/padded``) and adds *distractor* tracks to the copy's catalogue until it holds ``--size``
segments, each as long as a real track and silent where it is: each of its segments is a real segment
drawn at random (from any track) and moved by Gaussian noise shaped like the real segments' covariance
(``--spread`` of it), re-normalised. The real segments put nearly all their variance in a few axes, and
a segment's nearest segment of another track lies at a cosine of 0.93 (median); the noise is sized so
that a distractor lies at a median cosine of 0.93 from its source, as near as a real neighbour, and
drawing the sources at random keeps any distractor from following a real track in time (one that did
would be a cover of it, and "no match" the right answer). Random unit vectors, or real ones rotated,
lie at 0.4-0.6 from every real segment and would leave a search nothing to confuse.

Stores (``--stores``): ``exact`` (``FaissStore`` with an unbounded exact limit: ``IndexFlatIP``),
``ivfflat`` (``FaissStore`` as it is above its exact limit of a million: ``IndexIVFFlat``), ``ivfpq``
(``CompressedFaissStore``, the learned search re-ranking its shortlist with the view's rows).

Steps (``--steps``, default all):

``pad``        the padded copy (reused when it holds ``--size`` segments); catalogue bytes per segment.
``recall``     per store, on the padded library: the view's build time and the memory it keeps (RSS,
               and less the view's float16 rows), the learned search's neighbours (``NEIGHBOURS`` per
               query segment, :func:`tuneseek.fingerprint.learned.neighbours`) of every query segment
               of the clips of ``--recall-sets`` (the model's own query path: 1 s segments every 0.25 s,
               audible ones) against exact search's (recall@8), how often one of them is of the clip's
               own track, and the search time per clip; for ``ivfpq`` at several probe shares and
               shortlists too; then ``identify`` on the same view (when that step is asked for).
``identify``   ``Library.candidates(clip, engine="learned")`` over ``--grid`` (top-1, as
               ``benchmarks/identify.py`` scores it) and the sectoid clips not in the library (false
               positives), for each store on the padded library, and for ``exact`` and ``ivfpq`` on the
               library as it is (its 17 000 segments, the compressed store forced on).
``rotations``  the compressed index's rotation: none, FAISS's trained ``OPQ``, and the store's own
               (principal axes dealt round the sub-quantisers): training time and recall@8.
``rebuild``    a view rebuilt after one track is added: the compressed store made afresh (trained and
               every segment encoded) against carried from the previous view (copied, the track encoded).

Results: ``WORK/results.json`` and a markdown report printed and written beside it (``WORK/report.md``).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_load import ONE_CORE_ENV  # noqa: E402

os.environ.update(ONE_CORE_ENV)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from identify import evaluate_set, log, slug  # noqa: E402  (a sibling script: the same sets and scoring)

ROOT = Path(__file__).resolve().parent.parent
HOUR = 7200  # segments per audio hour (0.5 s hop)
STORES = ("exact", "ivfpq", "ivfflat")
PROBES = (0.01, 0.02, 0.03, 0.06)
SHORTLISTS = (8, 32, 64, 128)


def resident() -> int:
    """This process's resident memory, bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """This process's resident memory, bytes, after handing freed heap memory back to the system (else the
    memory a previous store or the catalogue's rows left free would hide what the next one takes)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return resident()


class Peak:
    """The most resident memory seen (every 20 ms) while the block runs."""

    def __enter__(self):
        self.peak, self._stop = resident(), threading.Event()

        def watch():
            while not self._stop.wait(0.02):
                self.peak = max(self.peak, resident())

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident())


def factory(kind: str, *, probe: float | None = None):
    from tuneseek.store.vectors import PQ_PROBE_SHARE, CompressedFaissStore, FaissStore

    if kind == "exact":
        return lambda dim: FaissStore(dim, exact_limit=1 << 62)
    if kind == "ivfflat":
        return lambda dim: FaissStore(dim, exact_limit=0)
    return lambda dim: CompressedFaissStore(dim, probe=PQ_PROBE_SHARE if probe is None else probe)


# ----------------------------------------------------------------------------- the padded library


def copied(a, to: Path) -> Path:
    """A copy of the benchmark library at ``to`` whose learned fingerprint is a snapshot of its model folder
    in ``WORK/model`` (weights and calibration: another benchmark may refit the calibration meanwhile)."""
    from tuneseek.store.catalog import Catalog

    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(a.library, to, ignore=shutil.ignore_patterns("catalog.sqlite*", "*.lock"))
    with (
        sqlite3.connect(f"file:{a.library / 'catalog.sqlite'}?mode=ro", uri=True) as src,
        sqlite3.connect(to / "catalog.sqlite") as dst,
    ):
        src.backup(dst)
    catalog = Catalog(to, create=False)
    models = catalog.models()
    (name,) = [n for n, m in models.items() if m.get("role") == "fingerprint"]
    snapshot = a.work / "model" / Path(models[name]["folder"]).name  # the folder's name names the fingerprint
    if not snapshot.exists():
        shutil.copytree(models[name]["folder"], snapshot, ignore=shutil.ignore_patterns("lightning", "logs", "*.png"))
    with catalog.transaction():
        catalog.set_models({**models, name: {**models[name], "folder": str(snapshot)}})
    catalog.close()
    return to


def step_pad(a) -> dict:
    from tuneseek.embed.trained import load_trained
    from tuneseek.fingerprint.learned import HOP_SECONDS, LearnedIndex
    from tuneseek.store.catalog import Catalog

    done = a.work / "padded" / "done.json"
    if done.exists() and json.loads(done.read_text())["size"] == a.size:
        return json.loads(done.read_text())
    shutil.rmtree(a.work / "model", ignore_errors=True)
    copied(a, a.work / "real")
    padded = copied(a, a.work / "padded")
    before = (padded / "catalog.sqlite").stat().st_size
    catalog = Catalog(padded, create=False)
    (folder,) = [m["folder"] for m in catalog.models().values() if m.get("role") == "fingerprint"]
    learned = LearnedIndex.of(catalog, load_trained(folder))
    fitted = Path(folder) / "calibration.json"
    real = list(catalog.fingerprint_vectors(learned.name, learned.version))
    audible = np.concatenate([v[np.any(v != 0, axis=1)] for _, v in real]).astype(np.float64)
    shape = np.linalg.cholesky(np.cov(audible.T) + 1e-9 * np.eye(audible.shape[1]))
    rng = np.random.default_rng(a.seed)
    copies = int(round(a.size / len(audible))) - 1
    log(f"padding {len(real)} tracks, {len(audible)} audible segments, with {copies} distractors of each")
    t0, made, moved = time.perf_counter(), 0, []
    for c in range(copies):
        with catalog.transaction():
            for track, rows in real:
                on = np.any(rows != 0, axis=1)
                source = audible[rng.integers(len(audible), size=int(on.sum()))]
                v = np.zeros(rows.shape)
                v[on] = source + a.spread * rng.standard_normal(source.shape) @ shape.T
                v[on] /= np.linalg.norm(v[on], axis=1, keepdims=True)
                if c == 0:
                    moved.append(np.sum(v[on] * source, axis=1))
                facts = dict(
                    path=f"/distractors/{c:03d}/{track}.wav", content_hash=f"d{c:03d}{track:028x}", size=1,
                    mtime_ns=0, duration=len(rows) * HOP_SECONDS, sample_rate=8000, channels=1,
                    title=None, artist=None,
                )  # fmt: skip
                learned.add([(catalog.insert_track(facts), v.astype(np.float16))])
                made += int(on.sum())
    catalog.close()
    after = (padded / "catalog.sqlite").stat().st_size
    out = {
        "size": a.size,
        "real_tracks": len(real),
        "real_segments": len(audible),
        "distractor_segments": made,
        "segments": len(audible) + made,
        "spread": a.spread,
        "distractor_cosine_to_source_pct_5_50_95": [
            round(float(x), 3) for x in np.percentile(np.concatenate(moved), [5, 50, 95])
        ],
        "calibration": json.loads(fitted.read_text()).get("calibration") if fitted.exists() else None,
        "catalogue_bytes_real": before,
        "catalogue_bytes": after,
        "catalogue_bytes_per_segment": (after - before) / made,
        "pad_s": round(time.perf_counter() - t0, 1),
    }
    done.write_text(json.dumps(out, indent=1))
    return out


# ----------------------------------------------------------------------------- queries


def query_segments(lib, sets: list[Path]) -> list[dict]:
    """Per clip of ``sets``: its audible segment vectors by the library's learned fingerprint, the
    library's track id of its origin, and its set."""
    from tuneseek import audio
    from tuneseek.data.querysets import read_queryset
    from tuneseek.fingerprint.learned import HOP_SECONDS, SAMPLE_RATE, segment_vectors

    learned = lib.learned
    by_path = {os.path.realpath(t.path): t.id for t in lib.tracks()}
    clips = []
    for d in sets:
        qs = read_queryset(d, split="test")
        origin = {o.label: by_path[os.path.realpath(o.path)] for o in qs.origins}
        for s in qs.samples:
            q = segment_vectors(learned.net, audio.load(s.path, SAMPLE_RATE), hop=HOP_SECONDS / learned.phases)
            q = q[np.any(q != 0, axis=1)]
            if len(q):
                clips.append({"set": d.name, "track": origin[s.label], "q": q})
    return clips


def neighbours_of(view, clips: list[dict], **options) -> tuple[list[np.ndarray], float]:
    """The learned search's neighbours of every clip's segments, and the median search time per clip (ms)."""
    from tuneseek.fingerprint.learned import neighbours

    found, ms = [], []
    for c in clips:
        t0 = time.perf_counter()
        found.append(neighbours(view, c["q"], **options))
        ms.append((time.perf_counter() - t0) * 1000)
    return found, float(np.median(ms))


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    hits = total = 0
    for f, t in zip(found, truth):
        for fr, tr in zip(f, t):
            tr = tr[tr >= 0]
            hits, total = hits + len(np.intersect1d(fr, tr)), total + len(tr)
    return hits / total


def own_track(found: list[np.ndarray], clips: list[dict]) -> float:
    """Share of query segments with a neighbour of the clip's own track."""
    from tuneseek.fingerprint.learned import SEGMENT_BITS

    hit = [np.any((f >> SEGMENT_BITS) == c["track"], axis=1) for f, c in zip(found, clips)]
    return float(np.concatenate(hit).mean())


# ----------------------------------------------------------------------------- grid


def cells(a, text: str) -> list[Path]:
    """The query set folders of ``LENGTH/DEGRADATION,...`` cells."""
    return [a.queries / "pt3-seed0" / f"L{c.split('/')[0]}-{slug(c.split('/')[1])}" for c in text.split(",")]


def grid_sets(a) -> list[tuple[str, str, Path, bool]]:
    """(length, what, folder, negative) of the identification grid and its negatives."""
    out = [(c.split("/")[0], c.split("/")[1], d, False) for c, d in zip(a.grid.split(","), cells(a, a.grid))]
    for length in sorted({c.split("/")[0] for c in a.grid.split(",")}, key=int, reverse=True):
        out.append((length, "not in library", a.queries / "neg-pt15-seed0" / f"L{length}", True))
    return out


def grid(lib, a) -> dict:
    out = {}
    for length, spec, d, negative in grid_sets(a):
        res = evaluate_set(lib, d, negative, "learned")
        m = res["metrics"]
        out[f"{length}|{spec}"] = {
            "n": m["not_in_library"] if negative else m["in_library"],
            "false_positive_rate" if negative else "top1": m["false_positive_rate"] if negative else m["top1"],
            "latency_ms_median": m["latency_ms_median"],
        }
        what = f"FP {m['false_positive_rate']:.3f}" if negative else f"top1 {m['top1']:.3f}"
        log(f"    {length:>2} s {spec or 'clean':<16} {what}  median {m['latency_ms_median']:.0f} ms")
    return out


# ----------------------------------------------------------------------------- steps


def built(lib, kind: str) -> tuple[object, dict]:
    """The library's learned view with a ``kind`` store, built now; its build time and memory."""
    learned = lib.learned
    learned.store = factory(kind)
    learned.close()
    gc.collect()
    before = rss()
    t0 = time.perf_counter()
    with Peak() as peak:
        view = learned.view()
    seconds = time.perf_counter() - t0
    gc.collect()
    kept = rss() - before
    n = len(view.store)
    return view, {
        "segments": n,
        "build_s": round(seconds, 1),
        "rss_kept_bytes_per_segment": round(kept / n, 1),
        "rss_store_bytes_per_segment": round((kept - view.rows.nbytes - view.cohort.nbytes) / n, 1),
        "rss_peak_over_start_bytes_per_segment": round((peak.peak - before) / n, 1),
        "rows_bytes_per_segment": round(view.rows.nbytes / n, 1),
    }


def step_stores(a, padded: Path, want_recall: bool, want_identify: bool) -> dict:
    from tuneseek import Library
    from tuneseek.store.vectors import PQ_PROBE_SHARE

    out = {"padded": {}, "real": {}}
    truth = None
    with Library.open(padded, create=False) as lib:
        clips = query_segments(lib, cells(a, a.recall_sets)) if want_recall else []
        if clips:
            log(f"{len(clips)} clips, {sum(len(c['q']) for c in clips)} query segments for recall")
        for kind in a.stores:
            log(f"padded library, store {kind}")
            view, res = built(lib, kind)
            log(f"  built in {res['build_s']} s, {res['rss_store_bytes_per_segment']} bytes a segment in the store")
            if clips:
                found, ms = neighbours_of(view, clips)
                if kind == "exact":
                    truth = found
                res["search_ms_per_clip_median"] = round(ms, 2)
                res["own_track_among_neighbours"] = round(own_track(found, clips), 4)
                if truth is not None:
                    res["recall_at_8"] = round(recall(found, truth), 4)
                log(
                    f"  recall@8 {res.get('recall_at_8')}, search {ms:.1f} ms a clip, own track {res['own_track_among_neighbours']}"
                )
                if kind == "ivfpq" and truth is not None:
                    res["sweep"] = []
                    for probe in PROBES:
                        view.store.probe = probe
                        for shortlist in SHORTLISTS:
                            f, ms = neighbours_of(view, clips, shortlist=shortlist)
                            row = {"probe": probe, "shortlist": shortlist, "recall_at_8": round(recall(f, truth), 4),
                                   "own_track_among_neighbours": round(own_track(f, clips), 4), "search_ms_per_clip_median": round(ms, 2)}  # fmt: skip
                            res["sweep"].append(row)
                            log(f"    probe {probe} shortlist {shortlist}: recall@8 {row['recall_at_8']} {ms:.1f} ms")
                    view.store.probe = PQ_PROBE_SHARE
            if want_identify:
                res["grid"] = grid(lib, a)
            out["padded"][kind] = res
            del view
            lib.learned.close()
            gc.collect()
    if want_identify:
        with Library.open(a.work / "real", create=False) as lib:
            for kind in ("exact", "ivfpq"):
                log(f"the library as it is, store {kind}")
                view, res = built(lib, kind)
                del view
                res["grid"] = grid(lib, a)
                out["real"][kind] = res
    return out


def step_rotations(a, padded: Path) -> dict:
    """Training time and recall@8 of the compressed index under three rotations, on the padded library."""
    import faiss

    from tuneseek import Library
    from tuneseek.fingerprint.learned import NEIGHBOURS, SEGMENT_BITS
    from tuneseek.store.vectors import PQ_BYTES

    out = {}
    with Library.open(padded, create=False) as lib:
        clips = query_segments(lib, cells(a, a.recall_sets))
        view, _ = built(lib, "exact")
        truth, _ = neighbours_of(view, clips)
        on = np.flatnonzero(np.any(view.rows != 0, axis=1))
        track = np.repeat(np.arange(len(view.ids)), view.counts)[on]
        sids = (view.ids[track] << SEGMENT_BITS) + (on - view.starts[track])
        vectors = view.rows[on].astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        del view
        lib.learned.close()
        gc.collect()
        dim, lists = vectors.shape[1], int(np.sqrt(len(vectors)))
        for name in ("none", "opq", "store"):
            t0 = time.perf_counter()
            if name == "store":
                store = factory("ivfpq")(dim)
                store.upsert(sids, vectors)
                store.search(vectors[:1], 1)
                search = store.search
            else:
                ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, lists, PQ_BYTES, 8, faiss.METRIC_INNER_PRODUCT)
                index = ivf if name == "none" else faiss.IndexPreTransform(faiss.OPQMatrix(dim, PQ_BYTES), ivf)
                sample = np.random.default_rng(0).choice(len(vectors), max(64 * lists, 1 << 16), replace=False)
                index.train(vectors[np.sort(sample)])
                index.add_with_ids(vectors, sids)
                faiss.extract_index_ivf(index).nprobe = int(np.ceil(0.03 * lists))
                search = index.search
            seconds = time.perf_counter() - t0
            found = []
            for c in clips:
                ids = search(c["q"], 64)[1]
                exact = np.einsum("qkd,qd->qk", vectors[np.searchsorted(sids, np.maximum(ids, 0))], c["q"])
                order = np.argsort(np.where(ids >= 0, -exact, np.inf), axis=1, kind="stable")[:, :NEIGHBOURS]
                found.append(np.take_along_axis(ids, order, axis=1))
            out[name] = {"train_and_add_s": round(seconds, 1), "recall_at_8": round(recall(found, truth), 4)}
            log(f"  rotation {name}: {out[name]}")
    return out


def step_rebuild(a, padded: Path) -> dict:
    """The view rebuilt after one track is added, its compressed store made afresh against carried."""
    from tuneseek import Library
    from tuneseek.fingerprint.learned import View

    with Library.open(padded, create=False) as lib:
        learned = lib.learned
        t0 = time.perf_counter()
        with learned.catalog.snapshot():
            tracks = list(learned.catalog.fingerprint_vectors(learned.name, learned.version))
        read = time.perf_counter() - t0
    dim = tracks[0][1].shape[1]
    rng = np.random.default_rng(a.seed + 1)
    new = tracks[0][1].astype(np.float32) + 0.05 * rng.standard_normal(tracks[0][1].shape).astype(np.float32)
    more = [*tracks, (tracks[-1][0] + 1, (new / np.linalg.norm(new, axis=1, keepdims=True)).astype(np.float16))]
    out = {"catalogue_read_s": round(read, 1)}
    for kind in ("exact", "ivfpq"):
        t0 = time.perf_counter()
        first = View.of(0, tracks, dim, factory(kind))
        out[f"{kind}_fresh_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        View.of(1, more, dim, factory(kind), previous=first)
        out[f"{kind}_after_one_track_s"] = round(time.perf_counter() - t0, 1)
        del first
        gc.collect()
        log(f"  {kind}: {out}")
    return out


# ----------------------------------------------------------------------------- report


def per_hour(bytes_per_segment: float) -> str:
    return f"{bytes_per_segment * HOUR / 1e6:.2f} MB"


def report(res: dict) -> str:
    lines = []
    pad = res.get("pad")
    if pad:
        lines += [
            f"Padded library: {pad['real_segments']} real segments ({pad['real_tracks']} tracks) and "
            f"{pad['distractor_segments']} distractors, {pad['segments']} in all "
            f"({pad['segments'] / HOUR:.0f} audio hours); distractor cosine to its source, 5/50/95 %: "
            f"{pad['distractor_cosine_to_source_pct_5_50_95']}. The learned engine's calibration (a snapshot of "
            f"the model folder's): {pad.get('calibration')}.",
            "",
        ]
    stores = res.get("stores", {}).get("padded", {})
    if stores:
        lines += [
            "| store | build s | recall@8 | own track among neighbours | search ms/clip | store bytes/segment (RSS) | per audio hour in memory: store + rows | build's peak over start, bytes/segment |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for kind, r in stores.items():
            b = r["rss_store_bytes_per_segment"]
            lines.append(
                f"| {kind} | {r['build_s']} | {r.get('recall_at_8', '—')} | {r.get('own_track_among_neighbours', '—')} | "
                f"{r.get('search_ms_per_clip_median', '—')} | {b:.0f} | {per_hour(b)} + {per_hour(r['rows_bytes_per_segment'])} | "
                f"{r['rss_peak_over_start_bytes_per_segment']:.0f} |"
            )
        lines.append("")
        sweep = stores.get("ivfpq", {}).get("sweep")
        if sweep:
            lines += [
                "| probe share | shortlist | recall@8 | own track | search ms/clip |",
                "| --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {s['probe']} | {s['shortlist']} | {s['recall_at_8']} | {s['own_track_among_neighbours']} | {s['search_ms_per_clip_median']} |"
                for s in sweep
            ]
            lines.append("")
    for where, title in (("padded", "padded library"), ("real", "the library as it is")):
        found = {k: r["grid"] for k, r in res.get("stores", {}).get(where, {}).items() if "grid" in r}
        if not found:
            continue
        kinds = list(found)
        lines += [f"Identification, learned engine, {title}:", ""]
        lines += ["| clips | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
        for cell in next(iter(found.values())):
            length, spec = cell.split("|")
            r0 = found[kinds[0]][cell]
            key = "false_positive_rate" if "false_positive_rate" in r0 else "top1"
            what = "false positives" if key == "false_positive_rate" else "top-1"
            vals = " | ".join(
                f"{100 * found[k][cell][key]:.1f} % ({found[k][cell]['latency_ms_median']:.0f} ms)" for k in kinds
            )
            lines.append(f"| {length} s {spec or 'clean'} ({what}, n={r0['n']}) | {vals} |")
        lines.append("")
    if "rotations" in res:
        lines += ["| rotation | train + add s | recall@8 |", "| --- | --- | --- |"]
        lines += [f"| {k} | {r['train_and_add_s']} | {r['recall_at_8']} |" for k, r in res["rotations"].items()]
        lines.append("")
    if "rebuild" in res:
        lines += ["View rebuilds (s): " + ", ".join(f"{k} {v}" for k, v in res["rebuild"].items()), ""]
    if pad:
        lines.append(
            f"Catalogue on disk: {pad['catalogue_bytes_per_segment']:.0f} bytes a segment, {per_hour(pad['catalogue_bytes_per_segment'])} per audio hour."
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--library",
        type=Path,
        default=ROOT / "bench-work/learned/fp-v2/library",
        help="the benchmark library (read only)",
    )
    p.add_argument(
        "--queries", type=Path, default=ROOT / "bench-work/queries", help="the query sets of benchmarks/identify.py"
    )
    p.add_argument(
        "--work", type=Path, default=ROOT / "bench-work/ivfpq", help="where the padded copy and the results go"
    )
    p.add_argument("--size", type=int, default=2_000_000, help="segments of the padded library (default 2 000 000)")
    p.add_argument(
        "--spread", type=float, default=0.5, help="distractor noise, a share of the real segments' covariance"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", default="pad,recall,identify,rotations,rebuild")
    p.add_argument("--stores", default=",".join(STORES), help=f"of {', '.join(STORES)}; exact first for recall")
    p.add_argument("--recall-sets", default="5/noise:0db,3/noise:0db,10/", help="LENGTH/DEGRADATION cells for recall")
    p.add_argument(
        "--grid", default="10/,5/,3/,10/noise:0db,5/noise:0db,3/noise:0db", help="LENGTH/DEGRADATION cells to identify"
    )
    a = p.parse_args()
    a.stores = [s for s in a.stores.split(",") if s]
    steps = set(a.steps.split(","))
    a.work.mkdir(parents=True, exist_ok=True)
    out_path = a.work / "results.json"
    res = json.loads(out_path.read_text()) if out_path.exists() else {}
    res["command"] = " ".join(sys.argv)
    padded = a.work / "padded"
    if "pad" in steps:
        res["pad"] = step_pad(a)
        log(f"pad: {res['pad']}")
    if steps & {"recall", "identify"}:
        res["stores"] = step_stores(a, padded, "recall" in steps, "identify" in steps)
    if "rotations" in steps:
        res["rotations"] = step_rotations(a, padded)
    if "rebuild" in steps:
        res["rebuild"] = step_rebuild(a, padded)
    out_path.write_text(json.dumps(res, indent=1))
    text = report(res)
    (a.work / "report.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
