"""The HelpPet recordings API on FastAPI: ``uvicorn examples.fastapi_app.main:app``.

Six endpoints under ``/api/v1/recordings`` (the design document's) and ticket
renewal. Configured from the environment (see :mod:`.config`); ``create_app``
takes ready-made backends instead, for tests and embedding.

This module only routes and authenticates. The package does the rest:
validation, the recording life cycle, signing and, through
:mod:`helppet_recordings.integrations.fastapi`, the error bodies,
LocalStorage's routes (``/local-storage/upload`` and
``/local-storage/download/{key}``), the JSON body limit and CORS.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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
from helppet_recordings.integrations.fastapi import MAX_JSON_BODY_BYTES, install
from helppet_recordings.storage.local import LocalStorage

from .auth import authenticate, install_unauthorized_handler
from .config import LOCAL_STORAGE_PATH, AppConfig, Backends, build_backends

__all__ = ["MAX_JSON_BODY_BYTES", "app", "create_app"]

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


def create_app(
    service: RecordingService | None = None,
    *,
    jwt_secret: str | None = None,
    local_storage: LocalStorage | None = None,
    cors_origins: Iterable[str] | None = None,
    config: AppConfig | None = None,
) -> FastAPI:
    """Build the API.

    With ``service`` (and ``jwt_secret``; ``local_storage`` when the service
    uses LocalStorage; ``cors_origins`` for browsers) the app runs on those.
    Without, it builds them from ``config`` or, by default, from the
    environment when it starts, so importing this module never connects
    anywhere.
    """

    def factory() -> Backends:
        if service is not None:
            secret, origins = jwt_secret, cors_origins
            if secret is None:
                configured = config or AppConfig.from_env()
                secret = configured.jwt_secret
                origins = configured.cors_origins if origins is None else origins
            elif origins is None and config is not None:
                origins = config.cors_origins
            return Backends(
                service=service,
                jwt_secret=secret,
                local_storage=local_storage,
                cors_origins=tuple(origins or ()),
            )
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
    install(
        api,
        local_storage=lambda: backends.get().local_storage,
        local_storage_prefix=LOCAL_STORAGE_PATH,
        cors_origins=lambda: backends.get().cors_origins,
        max_json_body_bytes=MAX_JSON_BODY_BYTES,
    )
    install_unauthorized_handler(api)
    api.include_router(recordings)
    return api


app = create_app()
"""The app ``uvicorn examples.fastapi_app.main:app`` serves, configured from the environment."""
