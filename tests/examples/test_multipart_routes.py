"""The example app's resumable-upload routes: initiate, sign parts, complete, errors."""

from __future__ import annotations

import hashlib
import random
import uuid
import warnings
from collections.abc import Iterator

import pytest
from examples.fastapi_app.auth import mint_token
from examples.fastapi_app.main import create_app
from starlette.exceptions import StarletteDeprecationWarning

from helppet_recordings import (
    InMemoryRepository,
    InMemoryStorage,
    RecordingService,
    RecordingSettings,
)
from helppet_recordings.multipart import PREFERRED_PART_SIZE as PART

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

SECRET = "multipart-routes-secret-" + "0123456789abcdef" * 3
BASE = "/api/v1/recordings"
SIZE = PART + 4_321
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + random.Random(5).randbytes(SIZE - 16)


@pytest.fixture
def storage() -> InMemoryStorage:
    """In-memory storage (its part PUTs are method calls)."""
    return InMemoryStorage()


@pytest.fixture
def client(storage: InMemoryStorage) -> Iterator[TestClient]:
    """The example app on in-memory backends, with a 16 MiB limit and small parts."""
    settings = RecordingSettings(max_file_size=16 * 1024 * 1024)
    service = RecordingService(storage, InMemoryRepository(), settings)
    with TestClient(create_app(service, jwt_secret=SECRET)) as test_client:
        yield test_client


@pytest.fixture
def headers() -> dict[str, str]:
    """A caller's bearer token."""
    return {"Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4())}"}


def _initiate(client: TestClient, headers: dict[str, str], size: int = SIZE) -> dict[str, object]:
    response = client.post(
        f"{BASE}/upload/multipart/initiate",
        headers=headers,
        json={"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": size},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_multipart_upload_over_the_routes(
    client: TestClient, storage: InMemoryStorage, headers: dict[str, str]
) -> None:
    """Initiate, send part 2, see part 1 missing, resume it, complete: uploaded."""
    started = _initiate(client, headers)
    parts = started["parts"]
    assert isinstance(parts, list)
    assert [(p["part_number"], p["size"]) for p in parts] == [(1, PART), (2, 4_321)]
    assert set(started) >= {
        "recording_id",
        "s3_key",
        "bucket",
        "part_size",
        "parts",
        "uploaded_parts",
        "expires_in",
        "max_file_size",
    }
    rid = started["recording_id"]
    storage.receive_part(parts[1]["url"], AUDIO[PART:])
    incomplete = client.post(
        f"{BASE}/upload/complete/{rid}", headers=headers, json={"file_size_bytes": SIZE}
    )
    assert incomplete.status_code == 409
    assert incomplete.json()["error_code"] == "UPLOAD_INCOMPLETE"
    assert incomplete.json()["details"]["missing_parts"] == [1]

    resumed = client.post(f"{BASE}/upload/multipart/{rid}/parts", headers=headers)
    assert resumed.status_code == 200, resumed.text
    assert [p["part_number"] for p in resumed.json()["parts"]] == [1]
    md5 = hashlib.md5(AUDIO[PART:]).hexdigest()  # noqa: S324 - a part's ETag
    assert resumed.json()["uploaded_parts"] == [{"part_number": 2, "size": 4_321, "etag": md5}]
    storage.receive_part(resumed.json()["parts"][0]["url"], AUDIO[:PART])

    done = client.post(
        f"{BASE}/upload/complete/{rid}", headers=headers, json={"file_size_bytes": SIZE}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "uploaded"
    assert done.json()["file_size_bytes"] == SIZE


def test_part_numbers_in_the_body_narrow_the_answer(
    client: TestClient, headers: dict[str, str]
) -> None:
    """``{"part_numbers": [2]}`` signs part 2 only; a number outside the plan is a 422."""
    rid = _initiate(client, headers)["recording_id"]
    one = client.post(
        f"{BASE}/upload/multipart/{rid}/parts", headers=headers, json={"part_numbers": [2]}
    )
    assert [p["part_number"] for p in one.json()["parts"]] == [2]
    bad = client.post(
        f"{BASE}/upload/multipart/{rid}/parts", headers=headers, json={"part_numbers": [9]}
    )
    assert bad.status_code == 422
    assert bad.json()["error_code"] == "VALIDATION_ERROR"
    worse = client.post(
        f"{BASE}/upload/multipart/{rid}/parts", headers=headers, json={"part_numbers": "all"}
    )
    assert worse.status_code == 422
    assert worse.json()["error_code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [
        (16 * 1024 * 1024 + 1, 413, "FILE_TOO_LARGE"),
        (0, 422, "VALIDATION_ERROR"),
        (-5, 422, "VALIDATION_ERROR"),
    ],
)
def test_declared_sizes_outside_the_limits(
    client: TestClient, headers: dict[str, str], size: int, status: int, code: str
) -> None:
    """A declared size over the maximum is a 413, zero or negative a 422; nothing is started."""
    response = client.post(
        f"{BASE}/upload/multipart/initiate",
        headers=headers,
        json={"filename": "visit.wav", "content_type": "audio/wav", "file_size_bytes": size},
    )
    assert (response.status_code, response.json()["error_code"]) == (status, code)


def test_routes_need_a_token_and_hide_other_users_recordings(
    client: TestClient, headers: dict[str, str]
) -> None:
    """No token: 401. Another user's recording: 404. A POST upload: 409 WRONG_UPLOAD_KIND."""
    rid = _initiate(client, headers)["recording_id"]
    assert client.post(f"{BASE}/upload/multipart/{rid}/parts").status_code == 401
    stranger = {"Authorization": f"Bearer {mint_token(SECRET, uuid.uuid4())}"}
    hidden = client.post(f"{BASE}/upload/multipart/{rid}/parts", headers=stranger)
    assert (hidden.status_code, hidden.json()["error_code"]) == (404, "RECORDING_NOT_FOUND")
    post = client.post(
        f"{BASE}/upload/initiate",
        headers=headers,
        json={"filename": "a.wav", "content_type": "audio/wav"},
    ).json()
    wrong = client.post(f"{BASE}/upload/multipart/{post['recording_id']}/parts", headers=headers)
    assert (wrong.status_code, wrong.json()["error_code"]) == (409, "WRONG_UPLOAD_KIND")
    renew = client.post(f"{BASE}/upload/renew/{rid}", headers=headers)
    assert (renew.status_code, renew.json()["error_code"]) == (409, "WRONG_UPLOAD_KIND")


def test_delete_aborts_the_upload(
    client: TestClient, storage: InMemoryStorage, headers: dict[str, str]
) -> None:
    """DELETE on an unfinished multipart recording aborts its upload in storage."""
    rid = _initiate(client, headers)["recording_id"]
    assert len(storage.list_multipart_uploads(prefix="")) == 1
    assert client.delete(f"{BASE}/{rid}", headers=headers).status_code == 204
    assert storage.list_multipart_uploads(prefix="") == []
