"""Every error the HTTP API gives: a JSON body ``{"error": one clear message}`` and the right status.

Errors tuneseek raises on purpose map to statuses (a bad file 422, an unknown track 404, a
library busy writing or a model missing on the server 503, a request that cannot be carried out 400, a library without what the
question needs, such as tags for a search, 409); FastAPI's own validation
errors become one line naming the parameter; anything else is a 500 with no traceback in the
body (it is logged on the server).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tuneseek.errors import AudioError, LibraryBusyError, LibraryError, ModelError, TrackNotFound, TuneseekError

log = logging.getLogger("tuneseek.server")


class Problem(Exception):
    """An error to answer with ``status`` and ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self):  # crosses from a query worker process as it is
        return Problem, (self.status, self.message)


def answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def status_of(e: TuneseekError) -> int:
    """The HTTP status of an error tuneseek raised on purpose."""
    if isinstance(e, AudioError):
        return 422
    if isinstance(e, (LibraryBusyError, ModelError)):
        return 503  # busy writing, or the models this question needs are not installed on the server
    if isinstance(e, TrackNotFound):
        return 404
    if isinstance(e, LibraryError):
        return 409  # the library cannot answer that yet (no tags, no embeddings): index with the models
    return 400


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a :func:`answer`."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, e: Problem) -> JSONResponse:
        return answer(e.status, e.message)

    @app.exception_handler(TuneseekError)
    async def _tuneseek(request: Request, e: TuneseekError) -> JSONResponse:
        return answer(status_of(e), str(e))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("path", "query", "body"))
        return answer(422, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException) -> JSONResponse:
        return answer(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return answer(500, "internal error (logged on the server)")
