"""``tuneseek serve``: the HTTP API over the library (:mod:`tuneseek.server`), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

from tuneseek.cli.common import open_library
from tuneseek.errors import UsageError
from tuneseek.processes import default_workers

DEFAULT_PORT = 8750
#: Query worker processes at most, by default: each holds the models and the index's pages in use.
MAX_DEFAULT_WORKERS = 4


def register(sub, common) -> None:
    """Add ``serve`` to the ``tuneseek`` subparsers ``sub``; ``common`` holds the shared options."""
    s = sub.add_parser("serve", parents=[common], help="serve the library over HTTP (API at /docs)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that identify uploaded clips (default: one per core, at most 4; 0: in the server process)",
    )
    s.add_argument(
        "--shards",
        type=int,
        default=0,
        help="split the landmark index by track into N shards held in memory by Ray actors and query them "
        "in parallel, with the same answers (the scale extra; default 0: read from disk in this process)",
    )
    s.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="with --shards: the Ray cluster to place the shards on (auto, or ray://HOST:PORT); "
        "default: Ray started on this machine",
    )
    s.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload accepted (default 50 MB)")
    s.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="a file holding the key that writes (add, upload, remove) need in X-API-Key; without it, no writes",
    )
    s.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve HTTPS with this certificate (with --tls-key): browsers let a page use the microphone "
        "only over HTTPS or from localhost, so a phone on the network needs it",
    )
    s.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    s.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    workers = min(default_workers(), MAX_DEFAULT_WORKERS) if args.workers is None else args.workers
    if workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    if args.shards < 0:
        raise UsageError(f"--shards must be 0 or more, got {args.shards}")
    if args.ray and not args.shards:
        raise UsageError("--ray places shards: give --shards N too")
    if args.max_upload_mb <= 0:
        raise UsageError(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
    key = None
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text().strip()
        except OSError as e:
            raise UsageError(f"{args.api_key_file}: cannot read the API key ({e.strerror})") from None
        if len(key) < 16:
            raise UsageError(f"{args.api_key_file}: the API key must be at least 16 characters")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("HTTPS needs both --tls-cert and --tls-key")
    if args.tls_cert:
        try:  # the certificate checked here, in one line, rather than by uvicorn with a traceback
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            raise UsageError(f"{args.tls_cert}, {args.tls_key}: not a usable certificate and key ({e})") from None
    try:
        import uvicorn

        from tuneseek.server.app import create_app
    except ImportError as e:
        raise UsageError(
            f"serving needs the server extra ({e.name} is missing): pip install 'tuneseek[server]'"
        ) from None
    with open_library(args, create=True, shards=args.shards, ray_address=args.ray) as lib:
        if workers and lib.one_process_only:
            print(
                "note: this library's vectors are in a Milvus Lite file, which one process at a time may open: "
                "queries run in the server's process (--workers 0); a Milvus server lifts this",
                file=sys.stderr,
            )
            workers = 0
        if workers and lib.shards:
            print(
                f"note: the {lib.shards} shards answer every lookup; the server's process runs the rest of each "
                "query (--workers 0)",
                file=sys.stderr,
            )
            workers = 0
        app = create_app(lib, max_upload_mb=args.max_upload_mb, api_key=key, query_workers=workers)
        scheme = "https" if args.tls_cert else "http"
        writes = "writes with the API key" if key else "read-only: no --api-key-file"
        helpers = f"{workers} query worker{'s' if workers != 1 else ''}" if workers else "queries in this process"
        if lib.shards:
            helpers += f", the landmark index in {lib.shards} shards on Ray"
        print(
            f"serving {lib.root} at {scheme}://{args.host}:{args.port} (the page at /, the API at /docs; "
            f"{helpers}; {writes}); Ctrl-C stops",
            flush=True,
        )
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            ssl_certfile=args.tls_cert,
            ssl_keyfile=args.tls_key,
        )
    return 0
