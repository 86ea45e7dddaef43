"""The HelpPet recordings API on FastAPI: ``uvicorn examples.fastapi_app.main:app``.

Six endpoints under ``/api/v1/recordings`` (the design document's), plus the
routes LocalStorage needs (``/local-storage/upload`` and
``/local-storage/download/{key}``). Configured from the environment (see
:mod:`.config`); ``create_app`` takes ready-made backends instead, for tests
and embedding.

This module only routes, authenticates and maps errors. Validation, the
recording life cycle, signing and receiving uploads all live in the package.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helppet_recordings import (
    CompleteUploadRequest,
    DownloadUrlResponse,
    ErrorResponse,
    InitiateUploadRequest,
    InitiateUploadResponse,
    RecordingListResponse,
    RecordingResponse,
    RecordingService,
    RecordingStatus,
)
from helppet_recordings.storage.local import (
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
    serve_download,
)

from .auth import authenticate
from .config import LOCAL_STORAGE_PATH, AppConfig, Backends, build_backends
from .errors import error_body, install_error_handlers

__all__ = ["MAX_JSON_BODY_BYTES", "app", "create_app"]

MAX_JSON_BODY_BYTES: Final = 64 * 1024
"""Largest request body the JSON API reads (uploads go to storage, not here)."""

API_PREFIX: Final = "/api/v1/recordings"

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 410, 413, 415, 422, 503)
}
_bearer = HTTPBearer(auto_error=False, description="A JWT (HS256) whose `sub` is your user id")


# ------------------------------------------------------------------------ dependencies


def _backends(request: Request) -> Backends:
    lazy: _LazyBackends = request.app.state.backends
    return lazy.get()


BackendsDep = Annotated[Backends, Depends(_backends)]


def _current_user(
    backends: BackendsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> uuid.UUID:
    token = None if credentials is None else credentials.credentials
    return authenticate(token, backends.jwt_secret)


def _service(backends: BackendsDep) -> RecordingService:
    return backends.service


UserId = Annotated[uuid.UUID, Depends(_current_user)]
Service = Annotated[RecordingService, Depends(_service)]


class _AuthenticatedRoute(APIRoute):
    """A route that checks the bearer token before FastAPI reads the request.

    FastAPI parses the JSON body before it solves dependencies, so a caller
    without a valid token who sent a malformed body would otherwise get 422
    instead of the contract's 401. The ``UserId`` dependency still names the
    caller (and declares the security scheme in the OpenAPI schema).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            backends = await run_in_threadpool(_backends, request)
            credentials = await _bearer(request)
            token = None if credentials is None else credentials.credentials
            authenticate(token, backends.jwt_secret)
            return await handler(request)

        return authenticated


# ------------------------------------------ the design's six routes, and ticket renewal

recordings = APIRouter(
    prefix=API_PREFIX, tags=["recordings"], responses=_ERRORS, route_class=_AuthenticatedRoute
)


@recordings.post("/upload/initiate")
def initiate_upload(
    body: InitiateUploadRequest, user_id: UserId, service: Service
) -> InitiateUploadResponse:
    """Create a recording and return a signed ticket to upload its audio directly to storage."""
    return service.initiate_upload(user_id, body)


@recordings.post("/upload/complete/{recording_id}")
def complete_upload(
    recording_id: uuid.UUID, body: CompleteUploadRequest, user_id: UserId, service: Service
) -> RecordingResponse:
    """Verify the uploaded audio in storage and mark the recording uploaded."""
    return service.complete_upload(user_id, recording_id, body)


@recordings.post("/upload/renew/{recording_id}")
def renew_upload(
    recording_id: uuid.UUID, user_id: UserId, service: Service
) -> InitiateUploadResponse:
    """Return a fresh upload ticket for a recording whose upload URL expired."""
    return service.renew_upload(user_id, recording_id)


@recordings.get("/")
@recordings.get("", include_in_schema=False)
def list_recordings(
    *,
    user_id: UserId,
    service: Service,
    appointment_id: uuid.UUID | None = None,
    visit_id: uuid.UUID | None = None,
    status: RecordingStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> RecordingListResponse:
    """List the caller's recordings, newest first, optionally narrowed."""
    return service.list_recordings(
        user_id,
        appointment_id=appointment_id,
        visit_id=visit_id,
        status=status,
        limit=limit,
        offset=offset,
    )


@recordings.get("/{recording_id}")
def get_recording(recording_id: uuid.UUID, user_id: UserId, service: Service) -> RecordingResponse:
    """Return one of the caller's recordings."""
    return service.get_recording(user_id, recording_id)


@recordings.get("/{recording_id}/download-url")
def get_download_url(
    recording_id: uuid.UUID, user_id: UserId, service: Service
) -> DownloadUrlResponse:
    """Return a signed, expiring URL to play or download the recording."""
    return service.get_download_url(user_id, recording_id)


@recordings.delete("/{recording_id}", status_code=204, response_class=Response)
def delete_recording(recording_id: uuid.UUID, user_id: UserId, service: Service) -> Response:
    """Soft-delete one of the caller's recordings."""
    service.delete_recording(user_id, recording_id)
    return Response(status_code=204)


# ------------------------------------------------------------- LocalStorage's routes

local_storage_routes = APIRouter(prefix=LOCAL_STORAGE_PATH, include_in_schema=False)


def _local(backends: Backends) -> LocalStorage:
    if backends.local_storage is None:
        raise HTTPException(404, "Not Found")
    return backends.local_storage


@local_storage_routes.post("/upload")
async def local_upload(request: Request) -> Response:
    """Receive a POST upload with a signed ticket (what S3 does for S3Storage)."""
    backends = await run_in_threadpool(_backends, request)
    receiver = LocalUploadReceiver(_local(backends))
    answer = await receiver.receive_async(request.headers.get("content-type"), request.stream())
    return _response(answer, send_body=True)


@local_storage_routes.api_route("/download/{key:path}", methods=["GET", "HEAD"])
def local_download(key: str, request: Request, backends: BackendsDep) -> Response:
    """Serve a signed download URL."""
    answer = serve_download(
        _local(backends), key, request.query_params, range_header=request.headers.get("range")
    )
    return _response(answer, send_body=request.method != "HEAD")


def _response(answer: LocalResponse, *, send_body: bool) -> Response:
    if answer.stream is not None and send_body:
        return StreamingResponse(answer.stream, status_code=answer.status, headers=answer.headers)
    answer.close()
    return Response(answer.body if send_body else b"", answer.status, headers=answer.headers)


# ------------------------------------------------------------------------ the factory


class _LazyBackends:
    """The backends: given, or built from the environment on first use (at start-up)."""

    def __init__(self, factory: Callable[[], Backends]) -> None:
        self._factory = factory
        self._backends: Backends | None = None
        self._lock = threading.Lock()

    def get(self) -> Backends:
        if self._backends is None:
            with self._lock:
                if self._backends is None:
                    self._backends = self._factory()
        return self._backends

    def close(self) -> None:
        backends, self._backends = self._backends, None
        if backends is not None:
            backends.close()


class _LimitJsonBody:
    """Refuse API request bodies over ``limit`` bytes with 413 before they are buffered."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY_BYTES) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._limit):
            too_large = error_body("The request body is too large", "REQUEST_TOO_LARGE")
            await JSONResponse(too_large, status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._limit:
                raise HTTPException(413, "The request body is too large")
            return message

        await self._app(scope, limited, send)


def create_app(
    service: RecordingService | None = None,
    *,
    jwt_secret: str | None = None,
    local_storage: LocalStorage | None = None,
    config: AppConfig | None = None,
) -> FastAPI:
    """Build the API.

    With ``service`` (and ``jwt_secret``; ``local_storage`` when the service
    uses LocalStorage) the app runs on those. Without, it builds them from
    ``config`` or, by default, from the environment when it starts, so
    importing this module never connects anywhere.
    """

    def factory() -> Backends:
        if service is not None:
            secret = jwt_secret
            if secret is None:
                secret = (config or AppConfig.from_env()).jwt_secret
            return Backends(service=service, jwt_secret=secret, local_storage=local_storage)
        return build_backends(config or AppConfig.from_env())

    backends = _LazyBackends(factory)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(backends.get)  # a bad configuration fails at start-up
        try:
            yield
        finally:
            await run_in_threadpool(backends.close)

    api = FastAPI(
        title="HelpPet recordings",
        summary="Direct-to-storage audio uploads with a tracked, verified life cycle",
        version="1",
        lifespan=lifespan,
    )
    api.state.backends = backends
    install_error_handlers(api)
    api.add_middleware(_LimitJsonBody)
    api.include_router(recordings)
    api.include_router(local_storage_routes)
    return api


app = create_app()
"""The app ``uvicorn examples.fastapi_app.main:app`` serves, configured from the environment."""
