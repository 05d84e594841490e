"""The ``tuneseek`` command line: a thin face over :class:`tuneseek.library.Library`.

One module per group of commands, each adding its commands to the parser (``register``) and
holding their ``cmd_*`` functions:

- :mod:`~tuneseek.cli.library`: ``index``, ``list``, ``show``, ``remove``, ``stats``, ``compact``
- :mod:`~tuneseek.cli.identify`: ``identify``, ``monitor``, ``duplicates``
- :mod:`~tuneseek.cli.describe`: ``tag``, ``embed``, ``similar``, ``search``
- :mod:`~tuneseek.cli.train`: ``train``
- :mod:`~tuneseek.cli.evaluate`: ``evaluate identify``, ``evaluate model``, ``make-queries``
- :mod:`~tuneseek.cli.demo`: ``demo``

The commands call the API (``tuneseek.library``, the entry points of ``train``, ``evaluate`` and
``data.querysets``) and print what it returns, never the engines or stores below it.
Human-readable output by default; ``--json`` prints each result's ``to_dict()``, one JSON object
per line. Progress bars appear only on a terminal. Errors a person can act on print as one
line (``tuneseek: error: ...``) with exit status 1; bad usage exits with 2; an interruption
with 130. Heavy modules are imported inside the commands that use them, so that
``tuneseek identify`` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from tuneseek import __version__
from tuneseek.cli import demo, describe, evaluate, identify, library, serve, train
from tuneseek.cli.common import common_options, print_error
from tuneseek.errors import TuneseekError

__all__ = ["main", "build_parser"]

#: The command groups, in the order ``tuneseek --help`` lists their commands.
GROUPS = (library, identify, describe, train, evaluate, demo, serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``tuneseek`` parser: the common options, ``--version``, and every group's commands."""
    common = common_options()
    p = argparse.ArgumentParser(prog="tuneseek", parents=[common], description="Identify, index and search music.")
    p.add_argument("--version", action="version", version=f"tuneseek {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command line (``sys.argv[1:]`` by default); the exit status."""
    args = build_parser().parse_args(evaluate.shorthand(sys.argv[1:] if argv is None else list(argv)))
    args.library_given = hasattr(args, "library")
    if not args.library_given:
        args.library = None
    args.json = getattr(args, "json", False)
    try:
        return args.func(args)
    except TuneseekError as e:
        print_error(str(e))
        return 1
    except KeyboardInterrupt as e:  # an interrupted index says what it kept (tuneseek.library.Interrupted)
        print_error(str(e) or "interrupted; everything committed before this point is kept")
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
