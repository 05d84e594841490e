"""The HTTP API over one library: ``create_app(library)`` gives the FastAPI application ``tuneseek serve`` runs.

Every answer is a result's ``to_dict()`` (the keys of the command line's ``--json``), or an
error ``{"error": message}`` (:mod:`tuneseek.server.problems`). One :class:`~tuneseek.library.Library`
serves every request: FastAPI runs the endpoints in a thread pool, and the library answers
many threads at once while another process indexes.

Warm from the start: the index, the vector stores and the text model load in the background as the
server starts (:meth:`~tuneseek.library.Library.warm`), and ``/ready`` answers 503 until they have.

Safe by default: audio is served only by track id from the catalogue, never by a path from the
request; an upload is streamed to a temporary file under a size limit (413 beyond it, checked
on the ``Content-Length`` before any byte is read and again while reading), its kind told by its
bytes (415 for anything but audio), and always deleted; no CORS headers are sent.
"""

from __future__ import annotations

import hmac
import mimetypes
import os
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Header, Query, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from tuneseek import __version__
from tuneseek.errors import TrackNotFound
from tuneseek.library import Library
from tuneseek.server import problems, queries
from tuneseek.server.jobs import Jobs
from tuneseek.server.problems import Problem
from tuneseek.server.queries import Queries, told_as
from tuneseek.server.uploads import kept, saved, spooled

#: Uploads larger than this are refused (``tuneseek serve --max-upload-mb``).
DEFAULT_MAX_UPLOAD_MB = 50.0
#: Where uploaded files added to the library are kept, inside the library directory.
UPLOADS = "uploads"
#: Tag curves over time kept in memory (each is musicnn run over a whole track: seconds of work).
CURVES_KEPT = 64
#: The web page: plain HTML, CSS and JavaScript shipped in the package (nothing fetched from elsewhere).
STATIC = Path(__file__).parent / "static"


class AddRequest(BaseModel):
    """Files and folders on the server to add (recursively)."""

    paths: list[str] = Field(min_length=1, max_length=10_000)


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, whether it says its length or not."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = problems.answer(413, f"upload larger than {self.limit / 1e6:g} MB")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_big(scope, receive, send)
        seen, answered = 0, False

        async def counted():
            # past the limit: answer 413 here, and tell the application the client has gone
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    answered = True
                    await too_big(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_answered(message):
            if not answered:
                await send(message)

        await self.app(scope, counted, unless_answered)


#: Sent with every answer: the page runs only its own scripts and loads nothing from elsewhere (a
#: track name crafted as markup cannot become a script; inline styles are allowed, for the bars'
#: widths); no answer is sniffed into another type; no page may frame it.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self' blob:; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    library: Library,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    api_key: str | None = None,
    query_workers: int = 0,
) -> FastAPI:
    """The API of ``library`` (kept open for the application's life; the caller closes it).

    Writes (adding files, uploading, removing) need ``api_key`` in the ``X-API-Key`` header; with
    no key given they are refused, whoever asks. Uploaded clips are identified (and compared) in
    ``query_workers`` processes, or in the server's threads with 0 (:mod:`tuneseek.server.queries`).
    """
    limit = int(max_upload_mb * 1e6)
    jobs = Jobs()
    asker = Queries(library, workers=query_workers)
    ready = threading.Event()
    warm_error: list[str] = []

    def warm() -> None:
        try:
            asker.warm()
        except Exception as e:  # noqa: BLE001 - reported by /ready; the queries still answer
            warm_error.append(f"{type(e).__name__}: {e}")
        ready.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        warming = threading.Thread(target=warm, name="tuneseek-warm", daemon=True)
        warming.start()
        yield
        warming.join()  # a model half loaded while the library closes under it would take the process down
        jobs.close()
        asker.close()

    def writer(x_api_key: Annotated[str | None, Header()] = None) -> None:
        """Let a write through only with the server's key (compared in constant time)."""
        if api_key is None:
            raise Problem(403, "writes are off: start the server with --api-key-file to allow them")
        if x_api_key is None:
            raise Problem(401, "writes need the server's key in the X-API-Key header")
        if not hmac.compare_digest(x_api_key.encode(), api_key.encode()):
            raise Problem(403, "wrong API key")

    app = FastAPI(
        lifespan=lifespan,
        title="tuneseek",
        version=__version__,
        description="Which song is this, what does it sound like, what else sounds like it.",
    )
    problems.install(app)
    app.add_middleware(_BodyLimit, limit=limit)
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health", summary="Whether the library answers, and how many tracks it holds")
    def health() -> dict:
        return {"status": "ok", "tracks": library.stats().tracks}

    @app.get("/ready", summary="Whether the index and models are loaded (503 while they load)")
    def is_ready() -> dict:
        if not ready.is_set():
            raise Problem(503, "warming up: loading the index and the models")
        return {"ready": True, "warnings": warm_error}

    @app.get("/stats", summary="Size of the library and its index (and its shards, when sharded)")
    def stats() -> dict:
        out = library.stats().to_dict()
        if library.shards:
            out["shards"] = library.shard_info()
        return out

    @app.get("/tracks", summary="The tracks, oldest first; q keeps those whose name or path holds it")
    def tracks(
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000), q: str = Query("", max_length=200)
    ) -> dict:
        every = library.tracks()
        if q.strip():
            words = q.casefold().split()
            every = [t for t in every if all(w in f"{t.name} {t.path}".casefold() for w in words)]
        return {"total": len(every), "tracks": [t.to_dict() for t in every[offset : offset + limit]]}

    @app.get("/tracks/{track_id}", summary="One track's facts and what the library holds for it")
    def track(track_id: int) -> dict:
        t = library.track(track_id)
        return {**t.to_dict(), "extractors": library.extractors(t)}

    @app.get("/tracks/{track_id}/tags", summary="A track's stored tags, per vocabulary")
    def tags(track_id: int) -> dict:
        return {vocab: t.to_dict() for vocab, t in library.tags(library.track(track_id)).items()}

    curves: OrderedDict[tuple, dict] = OrderedDict()
    curves_lock = threading.Lock()

    @app.get(
        "/tracks/{track_id}/tags/curve",
        summary="A track's tags over time, every 3 s window (musicnn run on demand: seconds; then kept)",
    )
    def tag_curve(track_id: int, model: str = Query("mtt", pattern="^(mtt|msd)$")) -> dict:
        t = library.track(track_id)
        key = (t.id, t.content_hash, model)
        with curves_lock:
            if key in curves:
                curves.move_to_end(key)
                return curves[key]
        if not os.path.isfile(t.path):
            raise Problem(404, f"track {track_id}: its file is gone ({t.path})")
        curve = library.tag_file(t.path, model=model).to_dict(over_time=True)
        with curves_lock:
            curves[key] = curve
            while len(curves) > CURVES_KEPT:
                curves.popitem(last=False)
        return curve

    @app.get("/map", summary="Every embedded track on a plane, near those that sound like it (PCA)")
    def embedding_map(space: str = "musicnn") -> dict:
        points = library.embedding_map(space=space)
        return {"space": space, "method": "pca", "points": [p.to_dict() for p in points]}

    @app.get("/tracks/{track_id}/audio", summary="The track's audio file (range requests served: 206)")
    def audio(track_id: int) -> FileResponse:
        t = library.track(track_id)  # by id from the catalogue only: no path from the request reaches the disk
        if not os.path.isfile(t.path):
            raise Problem(404, f"track {track_id}: its file is gone ({t.path})")
        kind = mimetypes.guess_type(t.path)[0] or "application/octet-stream"
        return FileResponse(t.path, media_type=kind, filename=Path(t.path).name, content_disposition_type="inline")

    @app.get("/tracks/{track_id}/similar", summary="Tracks that sound like this one")
    def similar(track_id: int, k: int = Query(10, ge=1, le=100), space: str = "musicnn") -> dict:
        found = library.similar(library.track(track_id), k=k, space=space)
        return {"results": [s.to_dict() for s in found]}

    @app.post("/similar", summary="Tracks that sound like an uploaded clip or file, with where each matches best")
    def similar_to_upload(
        file: Annotated[UploadFile, File()], k: int = Query(10, ge=1, le=100), space: str = "musicnn"
    ) -> dict:
        with saved(file, limit) as path:
            return asker.run(queries.similar, path, file.filename or "the upload", k, space)

    @app.get("/search", summary='Tracks that fit a description ("calm solo piano, no drums")')
    def search(q: str = Query(..., max_length=1000), k: int = Query(10, ge=1, le=100)) -> dict:
        return library.search(q, k=k).to_dict()

    def add_job(paths: list[str], cleanup=None) -> dict:
        def work(job) -> dict:
            def counted(_outcome) -> None:
                with job.lock:
                    job.done += 1

            def total(n: int) -> None:
                with job.lock:
                    job.total = n

            return library.add(paths, progress=counted, on_files=total).to_dict()

        return jobs.start("add", work, cleanup=cleanup).to_dict()

    @app.post(
        "/tracks",
        status_code=202,
        dependencies=[Depends(writer)],
        summary="Add files or folders on the server to the library (a job: see /jobs/{id})",
    )
    def add(body: AddRequest) -> dict:
        return add_job(body.paths)

    @app.post(
        "/tracks/upload",
        status_code=202,
        dependencies=[Depends(writer)],
        summary="Upload a file and add it to the library (kept in the library's uploads/; a job)",
    )
    def upload(file: Annotated[UploadFile, File()]) -> dict:
        path = str(kept(file, limit, library.root / UPLOADS))

        def unless_added() -> None:
            """An upload the job could not add (unreadable audio, or a job that never ran) is not kept."""
            try:
                library.track(path)
            except TrackNotFound:
                Path(path).unlink(missing_ok=True)

        return add_job([path], cleanup=unless_added)

    @app.delete("/tracks/{track_id}", dependencies=[Depends(writer)], summary="Remove a track from the library")
    def remove(track_id: int) -> dict:
        return library.remove(track_id).to_dict()

    @app.get("/jobs/{job_id}", summary="How far a job has come, and at the end what it did")
    def job(job_id: int) -> dict:
        found = jobs.get(job_id)
        if found is None:
            raise Problem(404, f"no job {job_id}")
        return found.to_dict()

    @app.post("/identify", summary="Which track a clip comes from, and where (an empty list: no match)")
    def identify(
        file: Annotated[UploadFile, File()],
        top: int = Query(1, ge=1, le=20),
        engine: Literal["landmarks", "learned", "fused"] | None = Query(
            None,
            description="landmarks, or with a learned fingerprint: learned, fused (the default where the "
            "fingerprint's fusion was fitted, as the shipped one's is; else landmarks)",
        ),
    ) -> dict:
        with saved(file, limit) as path:
            return asker.run(queries.identify, path, file.filename or "the upload", top, engine)

    @app.post(
        "/monitor",
        status_code=202,
        summary="The timeline of an uploaded recording of any length (a job: see /jobs/{id}; done counts seconds)",
    )
    def monitor(file: Annotated[UploadFile, File()]) -> dict:
        path = spooled(file, limit)

        def work(job) -> dict:
            with told_as(file.filename or "the upload"):
                with job.lock:
                    job.total = round(library.recording_seconds(path)) or None
                segments = []
                for segment in library.monitor(path):
                    segments.append(segment.to_dict())
                    with job.lock:
                        job.done = round(segment.end)
            with job.lock:
                job.done = job.total or job.done
            return {"segments": segments}

        return jobs.start("monitor", work, unit="seconds", writes=False, cleanup=lambda: os.unlink(path)).to_dict()

    return app
