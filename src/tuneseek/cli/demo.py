"""``tuneseek demo``: index, degrade and identify, on synthetic music or a folder, and print the table.

The work is :func:`tuneseek.demo.run_demo`; this module only says what happens and prints its results.
"""

from __future__ import annotations

import time

from tuneseek.cli.common import print_json


def register(sub, common) -> None:
    """Add ``demo`` to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser(
        "demo", parents=[common], help="index, degrade and identify: on synthetic music, or on a folder of yours"
    )
    s.add_argument("music", nargs="?", help="folder of music (default: synthesise a catalogue)")
    s.add_argument("--length", type=float, default=8.0, help="clip length in seconds (default 8)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", "-j", type=int, default=None)
    s.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from tuneseek.demo import run_demo

    def say(msg: str) -> None:
        if not args.json:
            print(f"· {msg}", flush=True)

    t0 = time.perf_counter()
    result = run_demo(args.music, clip=args.length, seed=args.seed, workers=args.workers, say=say)
    if args.json:
        print_json(
            {
                "source": result.source,
                "tracks": result.tracks,
                "rows": {title: rep.metrics for title, rep in result.rows},
                "not_in_library": result.negatives.metrics if result.negatives else None,
            }
        )
        return 0
    idx = result.index
    print(
        f"\nindexed {result.tracks} tracks, {idx.audio_seconds / 60:.1f} min of audio, in {idx.elapsed:.2f} s "
        f"({idx.audio_seconds / max(idx.elapsed, 1e-9):.0f}x real time)\n"
    )
    clips = f"clips of {args.length:g} s"
    print(f"{clips:<26}{'queries':>8}{'top-1':>9}{'offset ok':>11}{'latency':>10}")
    for title, rep in result.rows:
        m = rep.metrics
        print(
            f"{title:<26}{m['in_library']:>8}{100 * m['top1']:>8.1f}%{100 * m['offset_within_0.5s']:>10.1f}%"
            f"{m['latency_ms_median']:>8.0f}ms"
        )
    neg = result.negatives or next((r for _, r in result.rows if r.metrics["not_in_library"]), None)
    if neg is not None:
        m = neg.metrics
        print(
            f"{'not in the library':<26}{m['not_in_library']:>8}   false positives: "
            f"{round(m['false_positive_rate'] * m['not_in_library'])}"
        )
    print(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return 0
