"""Commands that say what is playing: ``identify`` (clips), ``monitor`` (long recordings), ``duplicates``.

``identify`` is the command people wait on, so this module imports nothing heavy at its top:
the library is imported when the command opens it.
"""

from __future__ import annotations

import sys
import time

from tuneseek.cli.common import fmt_time, open_library, positive_int, print_json, report_failure
from tuneseek.errors import TuneseekError

#: The identification engines (tuneseek.fingerprint.engines, named here so that the command's help needs no import).
ENGINES = ("landmarks", "learned", "fused")


def register(sub, common) -> None:
    """Add this group's commands to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser("identify", parents=[common], help="say which track each clip comes from, and where")
    s.add_argument("clips", nargs="+", help="audio clips (at least 2 s)")
    s.add_argument(
        "--top",
        "-k",
        type=positive_int,
        default=1,
        help="show up to K candidate tracks, e.g. both songs of a clip that holds two (default 1)",
    )
    s.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="landmarks, the learned fingerprint, or both fused; the last two need a library indexed with "
        "one (`tuneseek index --fingerprint builtin`). Default: fused with a fingerprint whose fusion was "
        "fitted (the shipped one), else landmarks",
    )
    s.set_defaults(func=cmd_identify)

    s = sub.add_parser(
        "monitor",
        parents=[common],
        help="the timeline of a long recording (a radio show, a DJ mix): which track plays when",
    )
    s.add_argument("recordings", nargs="+", help="audio files of any length, read as a stream")
    s.add_argument(
        "--window", type=float, default=10.0, metavar="SECONDS", help="seconds identified at once (default 10)"
    )
    s.add_argument(
        "--hop", type=float, default=5.0, metavar="SECONDS", help="seconds between window starts (default 5)"
    )
    s.add_argument("--engine", choices=ENGINES, default=None, help="as for identify")
    s.set_defaults(func=cmd_monitor)

    s = sub.add_parser(
        "duplicates",
        parents=[common],
        help="tracks of the library that hold the same audio (other encodings, edits, one inside another)",
    )
    s.set_defaults(func=cmd_duplicates)


def cmd_identify(args) -> int:
    """Each clip's best match (or up to ``--top`` of them); a bad clip is one line, and the rest go on."""
    from tuneseek.library import LONG_CLIP_SECONDS

    lib = open_library(args)
    status = 0
    with lib:
        for clip in args.clips:
            t0 = time.perf_counter()
            try:
                long = lib.recording_seconds(clip) > LONG_CLIP_SECONDS
                if long and not args.json:
                    print(
                        f"{clip}: longer than {LONG_CLIP_SECONDS:g} s: identified window by window "
                        "(`tuneseek monitor` gives its whole timeline)",
                        file=sys.stderr,
                    )
                matches = lib.candidates(clip, k=args.top, engine=args.engine)
            except TuneseekError as e:
                status = report_failure(args, {"clip": clip}, e)
                continue
            ms = (time.perf_counter() - t0) * 1000
            if args.json:
                print_json(
                    {
                        "clip": clip,
                        "match": matches[0].to_dict() if matches else None,
                        **({"candidates": [m.to_dict() for m in matches]} if args.top > 1 else {}),
                        "ms": round(ms, 1),
                    }
                )
            elif not matches:
                print(f"{clip}: no match")
            else:
                for i, m in enumerate(matches):
                    lead = f"{clip}:" if i == 0 else " " * len(clip) + " "
                    print(f"{lead} {_describe_match(m, span=args.top > 1 or long)}")
    return status


def _describe_match(m, span: bool) -> str:
    """One line for a match: the track, where in it, where in the clip, how sure, how it was changed."""
    where = f" at {fmt_time(m.track_start)}"
    if m.clip_start >= 0.05:
        where += f", starting {m.clip_start:.1f} s into the clip"
    if span:
        where += f" (clip {fmt_time(m.clip_start)}–{fmt_time(m.clip_end)})"
    extra = "".join(f", {name} x{value:g}" for name, value in (("speed", m.speed), ("tempo", m.tempo)) if value != 1.0)
    return f"{m.track.name} [track {m.track.id}]{where} (score {m.score}, confidence {m.confidence:.2f}{extra})"


def cmd_monitor(args) -> int:
    """Each recording's timeline, segment by segment as the stream is read (flushed, so a pipe sees it live)."""
    lib = open_library(args)
    status = 0
    with lib:
        for recording in args.recordings:
            if len(args.recordings) > 1 and not args.json:
                print(f"{recording}:")
            try:
                for seg in lib.monitor(recording, window=args.window, hop=args.hop, engine=args.engine):
                    if args.json:
                        print_json({"recording": recording, **seg.to_dict()})
                    elif seg.track is None:
                        print(f"{fmt_time(seg.start):>10} – {fmt_time(seg.end):<10} unknown", flush=True)
                    else:
                        print(
                            f"{fmt_time(seg.start):>10} – {fmt_time(seg.end):<10} {seg.track.name} "
                            f"[track {seg.track.id}], its {fmt_time(seg.track_start)}–{fmt_time(seg.track_end)} "
                            f"(score {seg.score}, confidence {seg.confidence:.2f})",
                            flush=True,
                        )
            except TuneseekError as e:
                status = report_failure(args, {"recording": recording}, e)
    return status


def cmd_duplicates(args) -> int:
    with open_library(args) as lib:
        found = lib.duplicates()
    for d in found:
        if args.json:
            print_json(d.to_dict())
        else:
            print(
                f"{d.kind:<15} {d.track.name} [track {d.track.id}] {fmt_time(d.start)}–{fmt_time(d.end)}"
                f"  =  {d.other.name} [track {d.other.id}] {fmt_time(d.other_start)}–{fmt_time(d.other_end)}"
                f"  (score {d.score}, confidence {d.confidence:.2f})"
            )
    if not found and not args.json:
        print("no two tracks share audio")
    return 0
