"""The HelpPet recordings API on FastAPI: ``uvicorn examples.fastapi_app.main:app``.

Six endpoints under ``/api/v1/recordings`` (the design document's), ticket
renewal, resumable (multipart) uploads, Prometheus text at ``/metrics``, and
a browser page at ``/app/`` (``static/``) that records or picks audio,
uploads, lists and plays it. Configured from the environment (see
:mod:`.config`); ``create_app`` takes ready-made backends instead, for tests
and embedding.

This module only routes and authenticates. The package does the rest:
validation, the recording life cycle, signing and, through
:mod:`helppet_recordings.integrations.fastapi`, the error bodies,
LocalStorage's routes (``/local-storage/upload`` and
``/local-storage/download/{key}``), the JSON body limit and CORS.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import attrs
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from helppet_recordings import (
    CompleteUploadRequest,
    DownloadUrlResponse,
    ErrorResponse,
    InitiateMultipartUploadRequest,
    InitiateUploadRequest,
    InitiateUploadResponse,
    MultipartUploadResponse,
    RecordingListResponse,
    RecordingResponse,
    RecordingService,
    RecordingStatus,
)
from helppet_recordings.environment import LOCAL_STORAGE_PATH, build_backends
from helppet_recordings.integrations.fastapi import MAX_JSON_BODY_BYTES, install
from helppet_recordings.schemas import SignUploadPartsRequest
from helppet_recordings.storage.local import LocalStorage

from .auth import TokenVerifier, UnauthorizedError, install_unauthorized_handler
from .config import AppConfig
from .metrics import PrometheusMetrics, prometheus_metrics

__all__ = ["MAX_JSON_BODY_BYTES", "app", "create_app"]

API_PREFIX: Final = "/api/v1/recordings"
STATIC_DIR: Final = Path(__file__).parent / "static"
"""The browser page served at ``/app/`` (plain HTML and one ES module, no build step)."""

_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 410, 413, 415, 422, 503)
}
_bearer = HTTPBearer(auto_error=False, description="A JWT (HS256) whose `sub` is your user id")


# ------------------------------------------------------------------------ the runtime


@attrs.frozen(kw_only=True)
class Runtime:
    """What the app's requests use, resolved once at start-up."""

    service: RecordingService
    verifier: TokenVerifier
    local_storage: LocalStorage | None = None
    cors_origins: tuple[str, ...] = ()
    metrics: PrometheusMetrics | None = None
    close: Callable[[], None] = lambda: None


_USER_ID: Final = "helppet_recordings.example.user_id"
"""Where the route class leaves the authenticated caller, in the request's scope."""


def _runtime(request: Request) -> Runtime:
    # Built by the lifespan at start-up, so this is an attribute read; an app whose lifespan
    # did not run (mounted without it) builds it at its first request.
    lazy: _LazyRuntime = request.app.state.runtime
    return lazy.get()


def _caller(request: Request) -> tuple[uuid.UUID, RecordingService]:
    """Return the caller the route authenticated and the service."""
    user_id = request.scope.get(_USER_ID)
    if not isinstance(user_id, uuid.UUID):  # a route outside _AuthenticatedRoute
        raise UnauthorizedError
    return user_id, _runtime(request).service


class _AuthenticatedRoute(APIRoute):
    """A route that authenticates the caller once, before FastAPI reads the request.

    FastAPI parses the JSON body before it solves dependencies, so a caller
    without a valid token who sent a malformed body would otherwise get 422
    instead of the contract's 401. The token is decoded here, in the event
    loop (an HMAC over a few hundred bytes), and the caller left in the
    request's scope for the route to read; the router's ``Security``
    dependency only documents the scheme in OpenAPI. Every answer says
    ``Cache-Control: no-store``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            credentials = await _bearer(request)
            token = None if credentials is None else credentials.credentials
            request.scope[_USER_ID] = _runtime(request).verifier.authenticate(token)
            response = await handler(request)
            # Signed URLs and transcripts: no browser, proxy or CDN may keep a copy.
            response.headers["Cache-Control"] = "no-store"
            return response

        return authenticated


# ------------------------------------------ the design's six routes, and ticket renewal
# Each route is a coroutine that hands the (blocking) service call to a worker thread
# once; its dependencies are coroutines too, so a request costs one thread hand-off.

recordings = APIRouter(
    prefix=API_PREFIX,
    tags=["recordings"],
    responses=_ERRORS,
    route_class=_AuthenticatedRoute,
    dependencies=[Security(_bearer)],
)


@recordings.post("/upload/initiate")
async def initiate_upload(body: InitiateUploadRequest, request: Request) -> InitiateUploadResponse:
    """Create a recording and return a signed ticket to upload its audio directly to storage."""
    user_id, service = _caller(request)
    return await run_in_threadpool(service.initiate_upload, user_id, body)


@recordings.post("/upload/complete/{recording_id}")
async def complete_upload(
    recording_id: uuid.UUID, body: CompleteUploadRequest, request: Request
) -> RecordingResponse:
    """Verify the uploaded audio in storage and mark the recording uploaded."""
    user_id, service = _caller(request)
    return await run_in_threadpool(service.complete_upload, user_id, recording_id, body)


@recordings.post("/upload/renew/{recording_id}")
async def renew_upload(recording_id: uuid.UUID, request: Request) -> InitiateUploadResponse:
    """Return a fresh upload ticket for a recording whose upload URL expired."""
    user_id, service = _caller(request)
    return await run_in_threadpool(service.renew_upload, user_id, recording_id)


@recordings.post("/upload/multipart/initiate")
async def initiate_multipart_upload(
    body: InitiateMultipartUploadRequest, request: Request
) -> MultipartUploadResponse:
    """Create a recording uploaded in parts: the part plan and a signed PUT URL per part."""
    user_id, service = _caller(request)
    return await run_in_threadpool(service.initiate_multipart_upload, user_id, body)


@recordings.post("/upload/multipart/{recording_id}/parts")
async def sign_upload_parts(
    recording_id: uuid.UUID, request: Request, body: SignUploadPartsRequest | None = None
) -> MultipartUploadResponse:
    """Return fresh part URLs: those in ``part_numbers``, or every part storage lacks."""
    user_id, service = _caller(request)
    numbers = None if body is None else body.part_numbers
    return await run_in_threadpool(
        service.sign_upload_parts, user_id, recording_id, part_numbers=numbers
    )


@recordings.get("/")
@recordings.get("", include_in_schema=False)
async def list_recordings(
    *,
    request: Request,
    appointment_id: uuid.UUID | None = None,
    visit_id: uuid.UUID | None = None,
    status: RecordingStatus | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RecordingListResponse:
    """List the caller's recordings, newest first, optionally narrowed.

    ``cursor`` (a previous page's ``next_cursor``) returns the next page at the
    cost of the first, however deep.
    """
    user_id, service = _caller(request)
    return await run_in_threadpool(
        service.list_recordings,
        user_id,
        appointment_id=appointment_id,
        visit_id=visit_id,
        status=status,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


@recordings.get("/{recording_id}")
async def get_recording(recording_id: uuid.UUID, request: Request) -> RecordingResponse:
    """Return one of the caller's recordings."""
    user_id, service = _caller(request)
    return await run_in_threadpool(service.get_recording, user_id, recording_id)


@recordings.get("/{recording_id}/download-url")
async def get_download_url(recording_id: uuid.UUID, request: Request) -> DownloadUrlResponse:
    """Return a signed, expiring URL to play or download the recording."""
    user_id, service = _caller(request)
    return await run_in_threadpool(service.get_download_url, user_id, recording_id)


@recordings.delete("/{recording_id}", status_code=204, response_class=Response)
async def delete_recording(recording_id: uuid.UUID, request: Request) -> Response:
    """Soft-delete one of the caller's recordings."""
    user_id, service = _caller(request)
    await run_in_threadpool(service.delete_recording, user_id, recording_id)
    return Response(status_code=204)


async def _to_the_page() -> RedirectResponse:
    """Send ``/app`` on to the page at ``/app/`` (a relative redirect: no Host header in it)."""
    return RedirectResponse("/app/", status_code=307)


async def serve_metrics(request: Request) -> Response:
    """Serve the service's metrics as Prometheus text (no personal data: codes only)."""
    prometheus = _runtime(request).metrics
    if prometheus is None:
        raise HTTPException(404, "Metrics are not collected by this app")
    body, content_type = prometheus.exposition()
    return Response(body, media_type=content_type)


# ------------------------------------------------------------------------ the factory


class _LazyRuntime:
    """The runtime: given, or built from the environment on first use (at start-up)."""

    def __init__(self, factory: Callable[[], Runtime]) -> None:
        self._factory = factory
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()

    def get(self) -> Runtime:
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    self._runtime = self._factory()
        return self._runtime

    def close(self) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.close()


def build_runtime(config: AppConfig) -> Runtime:
    """Build the service from ``config`` (schema brought to head), its metrics and token checks."""
    prometheus = prometheus_metrics()
    backends = build_backends(
        config,
        create_schema=True,
        engine_options=config.engine_options(),
        metrics=None if prometheus is None else prometheus.recording,
    )

    def close() -> None:
        backends.close()
        if prometheus is not None:
            prometheus.shutdown()

    return Runtime(
        service=backends.service,
        verifier=config.token_verifier(),
        local_storage=backends.local_storage,
        cors_origins=config.cors_origins,
        metrics=prometheus,
        close=close,
    )


def _freeze_startup_objects() -> None:
    """Move what start-up built (modules, models, clients, pools) out of the collector's sight.

    Those objects live as long as the process, yet every full collection
    walks them all; with the package, FastAPI, SQLAlchemy and boto3 loaded
    that is a pause of tens of milliseconds that lands on whichever requests
    are in flight. ``gc.freeze`` (after a collection, so that no garbage is
    kept) leaves the collector only what requests allocate; see
    ``docs/deployment.md`` for what it did to tail latency.
    """
    gc.collect()
    gc.freeze()


def create_app(
    service: RecordingService | None = None,
    *,
    jwt_secret: str | None = None,
    jwt_audience: str | None = None,
    jwt_issuer: str | None = None,
    local_storage: LocalStorage | None = None,
    cors_origins: Iterable[str] | None = None,
    config: AppConfig | None = None,
    metrics: PrometheusMetrics | None = None,
) -> FastAPI:
    """Build the API.

    With ``service`` (and ``jwt_secret``, with ``jwt_audience`` and
    ``jwt_issuer`` to require them in tokens; ``local_storage`` when the
    service uses LocalStorage; ``cors_origins`` for browsers; ``metrics``
    when the service records into them) the app runs on those; what is not
    given comes from ``config``, or from the environment when there is no
    ``jwt_secret`` either. Without ``service``, it builds everything from
    ``config`` or, by default, from the environment when it starts, so
    importing this module never connects anywhere. Everything a request
    needs is resolved once, at start-up.
    """

    def factory() -> Runtime:
        if service is None:
            return build_runtime(config or AppConfig.from_env())
        defaults = config
        if defaults is None and jwt_secret is None:
            defaults = AppConfig.from_env()

        def given_or_configured(given: Any, name: str) -> Any:
            return given if given is not None else getattr(defaults, name, None)

        secret = jwt_secret
        if secret is None and defaults is not None:
            secret = defaults.require_jwt_secret()
        return Runtime(
            service=service,
            verifier=TokenVerifier(
                secret or "",
                given_or_configured(jwt_audience, "jwt_audience"),
                given_or_configured(jwt_issuer, "jwt_issuer"),
            ),
            local_storage=local_storage,
            cors_origins=tuple(given_or_configured(cors_origins, "cors_origins") or ()),
            metrics=metrics,
        )

    runtime = _LazyRuntime(factory)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.get)  # a bad configuration fails at start-up
        _freeze_startup_objects()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    api = FastAPI(
        title="HelpPet recordings",
        summary="Direct-to-storage audio uploads with a tracked, verified life cycle",
        version="1",
        lifespan=lifespan,
        # Starlette would answer /recordings/{id}/ with a 307 to a URL built from the Host
        # header; a path this API does not serve is a 404 in the error shape instead.
        redirect_slashes=False,
    )
    api.state.runtime = runtime
    install(
        api,
        local_storage=lambda: runtime.get().local_storage,
        local_storage_prefix=LOCAL_STORAGE_PATH,
        cors_origins=lambda: runtime.get().cors_origins,
        max_json_body_bytes=MAX_JSON_BODY_BYTES,
    )
    install_unauthorized_handler(api)
    api.include_router(recordings)
    api.add_api_route("/metrics", serve_metrics, methods=["GET"], include_in_schema=False)
    api.add_api_route("/app", _to_the_page, methods=["GET"], include_in_schema=False)
    api.mount("/app", StaticFiles(directory=STATIC_DIR, html=True), name="app")
    return api


app = create_app()
"""The app ``uvicorn examples.fastapi_app.main:app`` serves, configured from the environment."""
