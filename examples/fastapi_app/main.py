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

from .auth import TokenVerifier, UnauthorizedError, install_unauthorized_handler
from .config import LOCAL_STORAGE_PATH, AppConfig, Backends, build_backends

__all__ = ["MAX_JSON_BODY_BYTES", "app", "create_app"]

API_PREFIX: Final = "/api/v1/recordings"

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 410, 413, 415, 422, 503)
}
_bearer = HTTPBearer(auto_error=False, description="A JWT (HS256) whose `sub` is your user id")


# ------------------------------------------------------------------------ dependencies

_USER_ID: Final = "helppet_recordings.example.user_id"
"""Where the route class leaves the authenticated caller, in the request's scope."""


def _backends(request: Request) -> Backends:
    # Built by the lifespan at start-up, so this is an attribute read; an app whose lifespan
    # did not run (mounted without it) builds them at its first request.
    lazy: _LazyBackends = request.app.state.backends
    return lazy.get()


async def _current_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> uuid.UUID:
    """Return the caller the route authenticated (``Security`` documents the scheme)."""
    user_id = request.scope.get(_USER_ID)
    if not isinstance(user_id, uuid.UUID):
        raise UnauthorizedError
    return user_id


async def _service(request: Request) -> RecordingService:
    return _backends(request).service


UserId = Annotated[uuid.UUID, Depends(_current_user)]
Service = Annotated[RecordingService, Depends(_service)]


class _AuthenticatedRoute(APIRoute):
    """A route that authenticates the caller once, before FastAPI reads the request.

    FastAPI parses the JSON body before it solves dependencies, so a caller
    without a valid token who sent a malformed body would otherwise get 422
    instead of the contract's 401. The token is decoded here, in the event
    loop (an HMAC over a few hundred bytes); the ``UserId`` dependency reads
    the result.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            credentials = await _bearer(request)
            token = None if credentials is None else credentials.credentials
            request.scope[_USER_ID] = _backends(request).verifier.authenticate(token)
            return await handler(request)

        return authenticated


# ------------------------------------------ the design's six routes, and ticket renewal
# Each route is a coroutine that hands the (blocking) service call to a worker thread
# once; its dependencies are coroutines too, so a request costs one thread hand-off.

recordings = APIRouter(
    prefix=API_PREFIX, tags=["recordings"], responses=_ERRORS, route_class=_AuthenticatedRoute
)


@recordings.post("/upload/initiate")
async def initiate_upload(
    body: InitiateUploadRequest, user_id: UserId, service: Service
) -> InitiateUploadResponse:
    """Create a recording and return a signed ticket to upload its audio directly to storage."""
    return await run_in_threadpool(service.initiate_upload, user_id, body)


@recordings.post("/upload/complete/{recording_id}")
async def complete_upload(
    recording_id: uuid.UUID, body: CompleteUploadRequest, user_id: UserId, service: Service
) -> RecordingResponse:
    """Verify the uploaded audio in storage and mark the recording uploaded."""
    return await run_in_threadpool(service.complete_upload, user_id, recording_id, body)


@recordings.post("/upload/renew/{recording_id}")
async def renew_upload(
    recording_id: uuid.UUID, user_id: UserId, service: Service
) -> InitiateUploadResponse:
    """Return a fresh upload ticket for a recording whose upload URL expired."""
    return await run_in_threadpool(service.renew_upload, user_id, recording_id)


@recordings.get("/")
@recordings.get("", include_in_schema=False)
async def list_recordings(
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
    return await run_in_threadpool(
        service.list_recordings,
        user_id,
        appointment_id=appointment_id,
        visit_id=visit_id,
        status=status,
        limit=limit,
        offset=offset,
    )


@recordings.get("/{recording_id}")
async def get_recording(
    recording_id: uuid.UUID, user_id: UserId, service: Service
) -> RecordingResponse:
    """Return one of the caller's recordings."""
    return await run_in_threadpool(service.get_recording, user_id, recording_id)


@recordings.get("/{recording_id}/download-url")
async def get_download_url(
    recording_id: uuid.UUID, user_id: UserId, service: Service
) -> DownloadUrlResponse:
    """Return a signed, expiring URL to play or download the recording."""
    return await run_in_threadpool(service.get_download_url, user_id, recording_id)


@recordings.delete("/{recording_id}", status_code=204, response_class=Response)
async def delete_recording(recording_id: uuid.UUID, user_id: UserId, service: Service) -> Response:
    """Soft-delete one of the caller's recordings."""
    await run_in_threadpool(service.delete_recording, user_id, recording_id)
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
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
    local_storage: LocalStorage | None = None,
    cors_origins: Iterable[str] | None = None,
    config: AppConfig | None = None,
) -> FastAPI:
    """Build the API.

    With ``service`` (and ``jwt_secret``, with ``jwt_audience`` and
    ``jwt_issuer`` to require them in tokens; ``local_storage`` when the
    service uses LocalStorage; ``cors_origins`` for browsers) the app runs on
    those; what is not given comes from ``config``, or from the environment
    when there is no ``jwt_secret`` either. Without ``service``, it builds
    everything from ``config`` or, by default, from the environment when it
    starts, so importing this module never connects anywhere.
    """

    def factory() -> Backends:
        if service is None:
            return build_backends(config or AppConfig.from_env())
        defaults = config
        if defaults is None and jwt_secret is None:
            defaults = AppConfig.from_env()

        def given_or_configured(given: Any, name: str) -> Any:
            return given if given is not None else getattr(defaults, name, None)

        return Backends(
            service=service,
            verifier=TokenVerifier(
                given_or_configured(jwt_secret, "jwt_secret"),
                given_or_configured(jwt_audience, "jwt_audience"),
                given_or_configured(jwt_issuer, "jwt_issuer"),
            ),
            local_storage=local_storage,
            cors_origins=tuple(given_or_configured(cors_origins, "cors_origins") or ()),
        )

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
