"""Resumable uploads as deployed: the example app under uvicorn, parts PUT over real HTTP.

The phone's side of contract section 7 against ``uvicorn examples.fastapi_app.main:app``
on LocalStorage and on SeaweedFS: parts out of order and in parallel, one part missing and then
resumed with only its bytes re-sent, a part of the wrong size refused by
storage, a declared size over the maximum refused, after completion no
part URL can change the audio served, and a completion sent while another
still assembles the parts answers as that one does. The sweeper, run in-process on the
same database and bucket, aborts an abandoned upload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from examples.fastapi_app.auth import mint_token

from helppet_recordings import (
    LocalStorage,
    MultipartStorage,
    RecordingService,
    RecordingSettings,
    RecordingStorage,
    S3Storage,
)
from helppet_recordings.multipart import PREFERRED_PART_SIZE
from helppet_recordings.repositories.sqlalchemy import SqlAlchemyRepository
from tests.support.seaweedfs import SeaweedEndpoint, make_client
from tests.support.uvicorn_app import UvicornProcess

pytestmark = pytest.mark.e2e

SECRET = "e2e-multipart-secret-0123456789abcdefghij"
API = "/api/v1/recordings"
SIZE = 2 * PREFERRED_PART_SIZE + 54_321
"""Three parts: two of 8 MiB and a short last one."""
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + random.Random(11).randbytes(SIZE - 16)


@pytest.fixture(params=["local", "s3"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """The example app on SQLite and LocalStorage or S3Storage (SeaweedFS), from its environment.

    Also a storage object on the same files or bucket, for what the test checks in storage.
    """
    env = {"HELPPET_JWT_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}"}
    storage: MultipartStorage
    if request.param == "local":
        env |= {"HELPPET_STORAGE": "local", "HELPPET_LOCAL_STORAGE_DIR": str(tmp_path / "files")}
        storage = LocalStorage(tmp_path / "files", "http://127.0.0.1/unused", "x" * 32)
    else:
        seaweed: SeaweedEndpoint = request.getfixturevalue("seaweed")
        bucket: str = request.getfixturevalue("seaweed_bucket")
        env |= {
            "HELPPET_STORAGE": "s3",
            "AWS_ENDPOINT_URL": seaweed.endpoint_url,
            "AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_REGION": seaweed.region,
            "S3_BUCKET_NAME": bucket,
        }
        storage = S3Storage(bucket, client=make_client(seaweed))
    process = UvicornProcess(tmp_path, env)
    process.start()
    yield Deployment(process, storage, f"sqlite:///{tmp_path / 'api.db'}")
    process.stop()


@attrs.frozen
class Deployment:
    """A running example app, its storage seen from the test, and its database URL."""

    server: UvicornProcess
    storage: MultipartStorage
    database_url: str


@pytest.fixture
def api(deployment: Deployment) -> Iterator[httpx.Client]:
    """An HTTP client of the API with a caller's token."""
    headers = {"Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4())}"}
    base_url = deployment.server.base_url
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        yield client


def _initiate(api: httpx.Client, size: int = SIZE) -> dict[str, Any]:
    response = api.post(
        f"{API}/upload/multipart/initiate",
        json={"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": size},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _put(parts: Iterable[dict[str, Any]], part_size: int, source: bytes = AUDIO) -> list[int]:
    """PUT each part's planned bytes to its URL, four at a time; return the status codes."""

    def put(part: dict[str, Any]) -> int:
        offset = (part["part_number"] - 1) * part_size
        body = source[offset : offset + part["size"]]
        return httpx.put(part["url"], content=body, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(put, parts))


def _complete(api: httpx.Client, rid: str, size: int = SIZE) -> httpx.Response:
    return api.post(f"{API}/upload/complete/{rid}", json={"file_size_bytes": size})


def _download(api: httpx.Client, rid: str) -> bytes:
    url = api.get(f"{API}/{rid}/download-url")
    assert url.status_code == 200, url.text
    return httpx.get(url.json()["download_url"], timeout=60).content


def test_parts_out_of_order_a_gap_resumed_and_replays_refused(api: httpx.Client) -> None:
    """Parts 3 and 1 in parallel, complete: 2 missing; resume sends only part 2; replays fail."""
    started = _initiate(api)
    rid, part_size = started["recording_id"], started["part_size"]
    parts = {part["part_number"]: part for part in started["parts"]}
    assert sorted(parts) == [1, 2, 3]
    assert _put([parts[3], parts[1]], part_size) == [200, 200]
    sent = parts[3]["size"] + parts[1]["size"]

    incomplete = _complete(api, rid)
    assert incomplete.status_code == 409
    assert incomplete.json()["error_code"] == "UPLOAD_INCOMPLETE"
    assert incomplete.json()["details"]["missing_parts"] == [2]

    resumed = api.post(f"{API}/upload/multipart/{rid}/parts")
    assert resumed.status_code == 200, resumed.text
    assert [p["part_number"] for p in resumed.json()["parts"]] == [2]
    assert sorted(p["part_number"] for p in resumed.json()["uploaded_parts"]) == [1, 3]
    assert _put(resumed.json()["parts"], part_size) == [200]
    sent += resumed.json()["parts"][0]["size"]
    assert sent == SIZE  # only the missing bytes were sent again

    done = _complete(api, rid)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["file_size_bytes"]) == ("uploaded", SIZE)
    original = hashlib.sha256(AUDIO).hexdigest()
    assert hashlib.sha256(_download(api, rid)).hexdigest() == original

    other = random.Random(99).randbytes(SIZE)
    every_url = [*started["parts"], *resumed.json()["parts"]]
    assert all(status >= 400 for status in _put(every_url, part_size, other))
    assert hashlib.sha256(_download(api, rid)).hexdigest() == original
    assert _complete(api, rid).json()["status"] == "uploaded"


def test_a_part_of_the_wrong_size_is_refused_by_storage(api: httpx.Client) -> None:
    """One byte short or long: storage refuses the PUT and the part stays missing."""
    started = _initiate(api)
    first = started["parts"][0]
    for body in (AUDIO[: first["size"] - 1], AUDIO[: first["size"]] + b"x"):
        refused = httpx.put(first["url"], content=body, timeout=60)
        assert 400 <= refused.status_code < 500
    again = api.post(f"{API}/upload/multipart/{started['recording_id']}/parts")
    assert again.json()["uploaded_parts"] == []
    assert [p["part_number"] for p in again.json()["parts"]] == [1, 2, 3]


def test_a_declared_size_over_the_maximum_is_refused(api: httpx.Client) -> None:
    """Over the 100 MiB default: 413 FILE_TOO_LARGE, before any upload starts."""
    response = api.post(
        f"{API}/upload/multipart/initiate",
        json={
            "filename": "visit.wav",
            "content_type": "audio/wav",
            "file_size_bytes": 100 * 1024 * 1024 + 1,
        },
    )
    assert (response.status_code, response.json()["error_code"]) == (413, "FILE_TOO_LARGE")


def test_the_sweeper_aborts_an_abandoned_upload(api: httpx.Client, deployment: Deployment) -> None:
    """A part sent, then silence: past the deadline the sweeper fails it and aborts the upload."""
    started = _initiate(api)
    assert _put(started["parts"][:1], started["part_size"]) == [200]
    storage = deployment.storage
    assert len(storage.list_multipart_uploads(prefix="")) == 1
    repository = SqlAlchemyRepository.from_url(deployment.database_url)
    assert isinstance(storage, RecordingStorage)
    service = RecordingService(storage, repository, RecordingSettings())
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert service.expire_stale_uploads(now=later) == 1
    assert storage.list_multipart_uploads(prefix="") == []
    gone = api.get(f"{API}/{started['recording_id']}")
    assert gone.json()["status"] == "failed"
    repository.close()


def test_a_completion_during_anothers_assembly_answers_the_recording(
    api: httpx.Client, deployment: Deployment, tmp_path: Path
) -> None:
    """A second completion sent while the first assembles (a retry) waits for it: 200 twice.

    On LocalStorage the second is sent once the first has taken the upload
    (its directory moved to ``.done-*``) and is still copying 64 MiB of parts.
    """
    size = 8 * PREFERRED_PART_SIZE
    source = b"RIFF\x00\x00\x00\x00WAVEfmt " + random.Random(5).randbytes(size - 16)
    started = _initiate(api, size)
    rid = started["recording_id"]
    assert set(_put(started["parts"], started["part_size"], source)) == {200}
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(_complete, api, rid, size)
        if isinstance(deployment.storage, LocalStorage):
            _wait_for_assembly(tmp_path / "files" / ".multipart")
        second = pool.submit(_complete, api, rid, size)
        answers = [first.result(), second.result()]
    assert [answer.status_code for answer in answers] == [200, 200], answers[1].text
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["status"] == "uploaded"
    assert api.get(f"{API}/{rid}").json()["file_size_bytes"] == size


def _wait_for_assembly(multipart: Path) -> None:
    """Return once a LocalStorage completion has taken an upload out of reach to assemble it."""
    deadline = time.monotonic() + 30
    while not any(path.name.startswith(".done-") for path in multipart.iterdir()):
        assert time.monotonic() < deadline, "no assembly started"
        time.sleep(0.001)
