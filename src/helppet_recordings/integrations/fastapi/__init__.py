"""The FastAPI integration: what a FastAPI app needs around ``RecordingService``.

Needs the ``fastapi`` extra (``pip install 'helppet-recordings[fastapi]'``);
importing it without FastAPI raises
:class:`~helppet_recordings.errors.MissingDependencyError` naming the extra.

:func:`install` adds it all to an app in one call:

- error handlers answering every error with the ``ErrorResponse`` body and the
  contract's status (:func:`install_error_handlers`);
- LocalStorage's upload, part and download routes (:func:`local_storage_router`);
- a limit on request bodies that follows the route, not the path, so it
  holds behind any ``root_path`` or mount point (:class:`JsonBodyLimitMiddleware`);
- CORS for the configured browser origins (:class:`CorsMiddleware`);
- no query strings in uvicorn's access log, where signed URLs would leave
  their signatures (:func:`hide_query_strings`).

The app keeps its own routes and authentication: each route calls the
service, e.g. ``await run_in_threadpool(service.get_recording, user_id, recording_id)``.
"""

from __future__ import annotations

from helppet_recordings.errors import MissingDependencyError

_PACKAGES = {"fastapi": "fastapi", "starlette": "starlette", "python_multipart": "python-multipart"}

try:
    from fastapi import FastAPI

    from ._access_log import ACCESS_LOGGER, QueryStringFilter, hide_query_strings
    from ._body_limit import MAX_JSON_BODY_BYTES, JsonBodyLimitMiddleware, body_limit
    from ._cors import (
        CORS_ALLOW_HEADERS,
        CORS_ALLOW_METHODS,
        CORS_EXPOSE_HEADERS,
        CorsMiddleware,
        OriginsSource,
        parse_cors_origins,
    )
    from ._errors import (
        BodyTooLargeError,
        UnexpectedErrorMiddleware,
        allowed_methods,
        error_body,
        install_error_handlers,
        recording_error_response,
    )
    from ._local_storage import LOCAL_STORAGE_PREFIX, LocalStorageSource, local_storage_router
    from ._paths import ControlCharacterPathMiddleware
except ImportError as exc:
    if isinstance(exc, MissingDependencyError) or exc.name not in _PACKAGES:
        raise
    raise MissingDependencyError(_PACKAGES[exc.name], "fastapi") from exc

__all__ = [
    "ACCESS_LOGGER",
    "CORS_ALLOW_HEADERS",
    "CORS_ALLOW_METHODS",
    "CORS_EXPOSE_HEADERS",
    "LOCAL_STORAGE_PREFIX",
    "MAX_JSON_BODY_BYTES",
    "BodyTooLargeError",
    "ControlCharacterPathMiddleware",
    "CorsMiddleware",
    "JsonBodyLimitMiddleware",
    "LocalStorageSource",
    "OriginsSource",
    "QueryStringFilter",
    "UnexpectedErrorMiddleware",
    "allowed_methods",
    "body_limit",
    "error_body",
    "hide_query_strings",
    "install",
    "install_error_handlers",
    "local_storage_router",
    "parse_cors_origins",
    "recording_error_response",
]


def install(
    app: FastAPI,
    *,
    local_storage: LocalStorageSource | None = None,
    local_storage_prefix: str = LOCAL_STORAGE_PREFIX,
    cors_origins: OriginsSource | None = None,
    max_json_body_bytes: int | None = MAX_JSON_BODY_BYTES,
    hide_access_log_queries: bool = True,
) -> None:
    """Add the error handlers, LocalStorage's routes, the body limit and CORS to ``app``.

    Every path with an ASCII control character is answered 404 ``NOT_FOUND``
    (Starlette would let ``/recordings/%0A`` reach the listing route).

    - ``local_storage``: the :class:`~helppet_recordings.LocalStorage` whose
      upload, part and download routes to serve under ``local_storage_prefix``
      (its ``base_url`` must be their public URL), or a function returning
      it (or ``None`` when the app runs on S3); without it, no routes.
    - ``cors_origins``: browser origins allowed to call the app (a list, or a
      function called at the first request); ``None`` or empty: no CORS
      headers. CORS then covers every route of ``app``.
    - ``max_json_body_bytes``: the largest request body any route reads,
      except those :func:`body_limit` gives their own (the upload route);
      ``None`` adds no limit.
    - ``hide_access_log_queries``: cut query strings (signatures of
      LocalStorage's URLs) out of uvicorn's access log lines.

    Call it once, before the app starts; add the app's own routes before or after.
    """
    install_error_handlers(app)
    if hide_access_log_queries:
        hide_query_strings()
    if local_storage is not None:
        app.include_router(local_storage_router(local_storage, prefix=local_storage_prefix))
    if max_json_body_bytes is not None:
        app.add_middleware(JsonBodyLimitMiddleware, max_body_bytes=max_json_body_bytes)
    app.add_middleware(ControlCharacterPathMiddleware)
    if cors_origins is not None:
        # Added last, so outermost: refusals from the layers inside get CORS headers too.
        app.add_middleware(CorsMiddleware, origins=cors_origins)
