"""LocalStorage's HTTP routes: receive POST uploads and part PUTs, serve signed downloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from helppet_recordings.storage.local import (
    LocalPartReceiver,
    LocalResponse,
    LocalStorage,
    LocalUploadReceiver,
    serve_download,
)

from ._body_limit import body_limit

__all__ = ["LOCAL_STORAGE_PREFIX", "LocalStorageSource", "local_storage_router"]

LOCAL_STORAGE_PREFIX: Final = "/local-storage"
"""Where :func:`install` routes LocalStorage's requests unless told otherwise."""

LocalStorageSource = LocalStorage | Callable[[], LocalStorage | None]
"""A LocalStorage, or a function returning the one in use (``None``: the app is on another)."""


def local_storage_router(
    storage: LocalStorageSource, *, prefix: str = LOCAL_STORAGE_PREFIX
) -> APIRouter:
    """Return a router with LocalStorage's routes under ``prefix``.

    - ``POST {prefix}/upload``: a multipart upload with a signed ticket,
      streamed to disk by :class:`~helppet_recordings.storage.local.LocalUploadReceiver`
      (exempt from the JSON body limit: the signed policy bounds it); 204, or
      S3's status and XML error.
    - ``PUT {prefix}/part/{key}``: one part of a multipart upload, to a signed
      part URL, streamed to disk by
      :class:`~helppet_recordings.storage.local.LocalPartReceiver` (exempt from
      the JSON body limit: the signed size bounds it); 200 with the part's
      ``ETag``, or S3's status and XML error.
    - ``GET``/``HEAD {prefix}/download/{key}``: a signed download URL, with
      ``Range`` support; 200 or 206, or S3's error.

    The storage's ``base_url`` must be the public URL of ``prefix`` (with any
    ``root_path`` or mount point in front). ``storage`` may be a function
    returning the storage in use, or ``None`` when the app runs on another
    backend: the routes then answer 404. The routes stay out of the OpenAPI
    schema.
    """

    def current() -> LocalStorage:
        local = storage if isinstance(storage, LocalStorage) else storage()
        if local is None:
            raise HTTPException(404, "Not Found")
        return local

    router = APIRouter(prefix=prefix, include_in_schema=False)

    @router.post("/upload")
    @body_limit(None)
    async def local_upload(request: Request) -> Response:
        """Receive a POST upload with a signed ticket (what S3 does for S3Storage)."""
        receiver = LocalUploadReceiver(current())
        answer = await receiver.receive_async(request.headers.get("content-type"), request.stream())
        return _response(answer, send_body=True)

    @router.put("/part/{key:path}")
    @body_limit(None)
    async def local_part(key: str, request: Request) -> Response:
        """Receive one part of a multipart upload (what S3 does for S3Storage)."""
        receiver = LocalPartReceiver(current())
        answer = await receiver.receive_async(
            key, request.query_params, request.headers.get("content-length"), request.stream()
        )
        return _response(answer, send_body=True)

    @router.api_route("/download/{key:path}", methods=["GET", "HEAD"])
    async def local_download(key: str, request: Request) -> Response:
        """Serve a signed download URL (the file is opened in a worker thread)."""
        answer = await run_in_threadpool(
            serve_download,
            current(),
            key,
            request.query_params,
            range_header=request.headers.get("range"),
        )
        return _response(answer, send_body=request.method != "HEAD")

    return router


def _response(answer: LocalResponse, *, send_body: bool) -> Response:
    if answer.stream is not None and send_body:
        return StreamingResponse(answer.stream, status_code=answer.status, headers=answer.headers)
    answer.close()
    return Response(answer.body if send_body else b"", answer.status, headers=answer.headers)
