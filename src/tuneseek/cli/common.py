"""What every command of the command line shares: the common options, printing, errors, times, the library.

Output: a result is one JSON line under ``--json`` (:func:`print_json`), else text; an error a
person can act on is one line on stderr (:func:`print_error`). Nothing heavy is imported here,
so that building the parser costs nothing: the library is imported when a command opens it.
"""

from __future__ import annotations

import argparse
import json
import sys

from tuneseek.errors import TuneseekError, UsageError


def common_options() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name: ``--library`` and ``--json``.

    They default to "not given" (``SUPPRESS``) so that a command's own parser does not overwrite
    what was given before the command's name; :func:`tuneseek.cli.main` fills them in.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--library",
        "-L",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="library directory (default: $TUNESEEK_LIBRARY or ~/.local/share/tuneseek/library)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output, one JSON object per line",
    )
    return common


def print_json(obj) -> None:
    """One JSON object on one line of stdout, flushed (so that a pipe sees each result as it comes)."""
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def print_error(msg: str) -> None:
    """``tuneseek: error: MSG`` on stderr: one line a person can act on."""
    print(f"tuneseek: error: {msg}", file=sys.stderr, flush=True)


def report_failure(args, about: dict, error: TuneseekError) -> int:
    """Report one input's error (a JSON line under --json, else one line on stderr); the exit status to keep."""
    if args.json:
        print_json({**about, "error": str(error)})
    else:
        print_error(str(error))
    return 1


def fmt_time(seconds: float) -> str:
    """``m:ss.s``, or ``h:mm:ss.s`` from an hour on."""
    sign = "-" if seconds < 0 else ""
    m, s = divmod(abs(seconds), 60)
    if m >= 60:
        h, m = divmod(int(m), 60)
        return f"{sign}{h}:{m:02d}:{s:04.1f}"
    return f"{sign}{int(m)}:{s:04.1f}"


def positive_int(text: str) -> int:
    """An argparse type for counts such as ``--top`` and ``-k``: an integer of at least 1.

    Zero or a negative count has no meaning (``--top 0`` used to crash with an IndexError and
    ``--top -1`` silently answered "no match"), so argparse rejects it as a usage error (exit 2).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def open_library(args, *, create: bool = False, shards: int = 0, ray_address: str | None = None):
    """The :class:`~tuneseek.library.Library` of ``--library`` (or the default one); imported here, when needed.

    ``shards`` above 0 holds its landmark index in that many Ray actors (on the cluster at ``ray_address``)."""
    from tuneseek.library import Library

    return Library.open(args.library, create=create, shards=shards, ray_address=ray_address)


def progress_bar(label: str):
    """A rich progress bar (done of total, time left, the current file) on a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[file]}"),
        transient=True,
    )


def key_values(pairs: list[str], what: str) -> dict:
    """``KEY=VALUE`` options, each VALUE read as JSON when it parses (numbers, lists, true/false), else as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out
