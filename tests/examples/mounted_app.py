"""The example app mounted under a prefix in a host app, served by the tests over real HTTP.

``uvicorn --factory tests.examples.mounted_app:create_host_app`` serves it; the
example inside is configured from the environment, as when it runs alone, and
answers under :data:`MOUNT_POINT`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from examples.fastapi_app.main import create_app
from fastapi import FastAPI

MOUNT_POINT: Final = "/clinic"


def create_host_app() -> FastAPI:
    """Return a host app with the example mounted at :data:`MOUNT_POINT`."""
    recordings = create_app()

    @asynccontextmanager
    async def lifespan(_host: FastAPI) -> AsyncIterator[None]:
        # Starlette does not run a mounted app's lifespan; the host runs it.
        async with recordings.router.lifespan_context(recordings):
            yield

    host = FastAPI(lifespan=lifespan)

    @host.get("/health")
    async def health() -> dict[str, str]:
        """Answer the host's own route."""
        return {"status": "ok"}

    host.mount(MOUNT_POINT, recordings)
    return host
